"""PokeWatch's local runtime: the no-Docker, no-AWS stand-ins for Step Functions, Lambda and API
Gateway, driven by `template.yaml`. Development tooling only; never shipped in a Lambda artifact."""
