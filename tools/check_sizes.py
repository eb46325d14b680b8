"""Unzipped size of every function of a `sam build` with its layers, against Lambda's limits.

Lambda counts a function's code and all its layers together, unzipped: 250 MiB at most. The
API function has a tighter budget of our own (30 MB, SPEC section 9) for its cold start. Prints
one JSON object and exits 1 when a function is over its limit.

    python tools/check_sizes.py [--build-dir .aws-sam/build]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cfn_tools import load_yaml

LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024
#: Functions with a budget tighter than Lambda's, by logical id.
BUDGETS_BYTES = {"ApiFunction": 30 * 1000 * 1000}


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (what Lambda unzips; symlinks are followed by
    `sam build`'s zip, so they count as their targets)."""
    total = 0
    for root, _dirs, files in os.walk(path, followlinks=True):
        total += sum((Path(root) / name).stat().st_size for name in files)
    return total


def load_built_template(build_dir: Path) -> dict:
    # cfn-flip's loader reads the short intrinsic tags (!Ref) a template may use.
    return load_yaml((build_dir / "template.yaml").read_text())


def function_layers(template: dict) -> dict[str, list[str]]:
    """Logical ids of the layers of each function, Globals included."""
    resources = template["Resources"]
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    layers = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        refs = [*global_layers, *resource["Properties"].get("Layers", [])]
        layers[logical_id] = [ref["Ref"] for ref in refs if isinstance(ref, dict) and "Ref" in ref]
    return layers


def measure(build_dir: Path) -> dict:
    """Sizes of each layer and each function (alone and with its layers), and the verdicts."""
    layers_of = function_layers(load_built_template(build_dir))
    layer_ids = sorted({layer for ids in layers_of.values() for layer in ids})
    layer_bytes = {layer: tree_bytes(build_dir / layer) for layer in layer_ids}
    functions = {}
    for function, layers in sorted(layers_of.items()):
        own = tree_bytes(build_dir / function)
        total = own + sum(layer_bytes[layer] for layer in layers)
        limit = min(LAMBDA_LIMIT_BYTES, BUDGETS_BYTES.get(function, LAMBDA_LIMIT_BYTES))
        functions[function] = {
            "code_bytes": own,
            "layers": layers,
            "total_bytes": total,
            "total_mib": round(total / 2**20, 1),
            "limit_bytes": limit,
            "ok": total <= limit,
        }
    return {
        "build_dir": str(build_dir),
        "layers": {k: {"bytes": v, "mib": round(v / 2**20, 1)} for k, v in layer_bytes.items()},
        "functions": functions,
        "ok": all(f["ok"] for f in functions.values()),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the sizes of a `sam build` as JSON; exit 1 when a function is over its limit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"))
    args = parser.parse_args(argv)
    if not (args.build_dir / "template.yaml").is_file():
        print(f"no sam build output in {args.build_dir} (run make build)", file=sys.stderr)
        return 2
    report = measure(args.build_dir)
    print(json.dumps(report, indent=1))
    for name, function in report["functions"].items():
        if not function["ok"]:
            print(
                f"{name}: {function['total_bytes']} bytes with its layers, "
                f"over its limit of {function['limit_bytes']}",
                file=sys.stderr,
            )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
