"""The `pokewatch` command (SPEC section 8): pipeline run, serve, invoke, backtest, models."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DEFAULT_STORE = ".pokewatch/store"


class CliError(Exception):
    """A problem to report in one line, with exit code 2."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pokewatch` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.command(args) or 0)
    except CliError as exc:
        print(f"pokewatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # A command that settles its own interrupt says more (`PipelineInterrupted`); this is
        # any other, or a second Ctrl-C while the first was being settled.
        print("pokewatch: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pokewatch", description="PokeWatch: Pokémon card fair prices, locally."
    )
    parser.add_argument(
        "--template",
        metavar="FILE",
        default=None,
        help="SAM template (default: template.yaml of the project)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    pipeline = _command(commands, "pipeline", "the daily pipeline")
    pipeline_commands = pipeline.add_subparsers(required=True, metavar="ACTION")
    run = _command(
        pipeline_commands,
        "run",
        "run statemachine/pipeline.asl.json locally, each Task calling its function in process",
    )
    _store_option(run)
    run.add_argument(
        "--source",
        metavar="S",
        choices=["sample", "pokemontcg", "pricetracker", "csv"],
        help="price source: sample, pokemontcg, pricetracker or csv "
        "(default: POKEWATCH_SOURCE, else sample)",
    )
    run.add_argument(
        "--input",
        metavar="PATH",
        help="the long CSV file of --source csv (default: POKEWATCH_CSV_INPUT)",
    )
    run.add_argument(
        "--as-of",
        metavar="DATE",
        type=_date,
        help="collection day, YYYY-MM-DD (default: today, UTC; at most tomorrow)",
    )
    run.add_argument(
        "--cards",
        metavar="N",
        type=_positive,
        help="size of the sample market (default: POKEWATCH_SAMPLE_CARDS, else 300)",
    )
    run.add_argument(
        "--history-days",
        metavar="N",
        type=_positive,
        help="days of history a first run backfills (default: POKEWATCH_SAMPLE_HISTORY_DAYS, "
        "else 400; a csv file: all of it)",
    )
    run.add_argument(
        "--sets",
        metavar="a,b",
        help="comma-separated set ids to collect (default: POKEWATCH_SETS, else every set)",
    )
    # For tests: retries without their waits.
    run.add_argument("--no-wait", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(command=_pipeline_run)

    serve = _command(commands, "serve", "serve the API as API Gateway would")
    _store_option(serve)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0: every "
        "interface)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=3000,
        help="TCP port to listen on (default: %(default)s; 0: any free one)",
    )
    serve.set_defaults(command=_serve)

    invoke = _command(
        commands,
        "invoke",
        "invoke one function in process (the no-Docker sam local invoke): its answer on "
        "stdout, its logs on stderr",
    )
    _store_option(invoke)
    invoke.add_argument(
        "function", metavar="FUNCTION", help="function folder (collect) or logical id"
    )
    invoke.add_argument("--event", metavar="FILE", type=Path, help="event JSON file (default: {})")
    invoke.set_defaults(command=_invoke)

    backtest = _command(
        commands,
        "backtest",
        "walk-forward backtest on a long CSV: the metrics on stdout, notes on stderr",
    )
    backtest.add_argument(
        "--input",
        metavar="PATH",
        required=True,
        help="the long CSV file (plain, .gz, .bz2, .xz or a one-file .zip)",
    )
    backtest.add_argument(
        "--horizon-days",
        metavar="N",
        type=_positive,
        default=None,
        help="days ahead the fair price forecasts (default: POKEWATCH_HORIZON_DAYS, else 28)",
    )
    backtest.add_argument("--json", action="store_true", help="print one JSON object")
    backtest.set_defaults(command=_backtest)

    models = _command(commands, "models", "the model registry")
    model_commands = models.add_subparsers(required=True, metavar="ACTION")
    listing = _command(model_commands, "list", "every model version (* marks the one in service)")
    _store_option(listing)
    listing.set_defaults(command=_models_list)
    promote = _command(model_commands, "promote", "put a version in service")
    _store_option(promote)
    promote.add_argument("version", metavar="VERSION", help="a version of `pokewatch models list`")
    promote.set_defaults(command=_models_promote)
    rollback = _command(model_commands, "rollback", "back to the model in service before")
    _store_option(rollback)
    rollback.set_defaults(command=_models_rollback)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand whose summary is its line in the parent's help and the top of its own."""
    return commands.add_parser(name, help=summary, description=f"{summary}.")


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URI",
        default=os.environ.get("POKEWATCH_STORE", DEFAULT_STORE),
        help=f"artifact store: a directory or s3://bucket[/prefix] (default: POKEWATCH_STORE, "
        f"else {DEFAULT_STORE})",
    )


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _whole_number(low: int, high: int | None, meaning: str) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (`meaning` says what they are)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {meaning}: {value}")
        return value

    return parse


_positive = _whole_number(1, None, "at least 1")
_port = _whole_number(0, 65535, "a TCP port, 0 (any free one) to 65535")


def _template(args: argparse.Namespace) -> Any:
    from pokewatch_local.template import SamTemplate, TemplateError

    path = Path(args.template) if args.template else _find_template()
    try:
        return SamTemplate(path)
    except TemplateError as exc:
        raise CliError(str(exc)) from exc


def _find_template() -> Path:
    """template.yaml in the working directory or above it, else the project's own."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "template.yaml").is_file() and (folder / "statemachine").is_dir():
            return folder / "template.yaml"
    project = Path(__file__).resolve().parents[2] / "template.yaml"
    if project.is_file():
        return project
    raise CliError("template.yaml not found; run from the project or pass --template")


def _open_store(uri: str) -> Any:
    from pokewatch.store import open_store

    try:
        return open_store(uri)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _settings(flags: dict[str, tuple[str, Any]] | None = None) -> Any:
    """The settings from the environment, with `flags` (setting: (option, its value)) given on
    the command line over it; a bad value is one line naming where the user wrote it, the
    option or the `POKEWATCH_*` variable (a setting's own name is found in neither)."""
    from pydantic import ValidationError

    from pokewatch.settings import Settings

    flags = flags or {}
    try:
        return Settings(**{setting: value for setting, (_, value) in flags.items()})
    except ValidationError as exc:
        named = []
        for error in exc.errors():
            setting = str(error["loc"][0]) if error["loc"] else ""
            origin = flags[setting][0] if setting in flags else f"POKEWATCH_{setting.upper()}"
            named.append(f"{origin if setting else 'settings'}: {_option_problem(error)}")
        raise CliError("; ".join(named)) from exc


def _input_file(text: str) -> Path:
    """The `--input` file, or a one-line error saying what it is instead (a URL, a folder, or
    nothing)."""
    if "://" in text:
        # A Path of it would be a local name (`s3:/bucket/...`) that is not there.
        raise CliError(
            f"--input: {text} is not a local file; the csv source reads a file on this disk "
            "(download it first)"
        )
    path = Path(text)
    if path.is_dir():
        raise CliError(f"--input: {path} is a directory; give the CSV file in it")
    if not path.exists():
        raise CliError(f"--input: no such file: {path}")
    if not path.is_file():
        # A pipe (`<(zcat ...)`) or a device: the file is read more than once, a pipe only once.
        raise CliError(f"--input: {path} is not a regular file; save the CSV to a file first")
    return path


def _pipeline_run(args: argparse.Namespace) -> int:
    from pokewatch.steps import cause_message
    from pokewatch_local.runner import PipelineInterrupted, run_pipeline

    settings = _settings()
    source = args.source or settings.source
    # The plan reads the settings' file (POKEWATCH_CSV_INPUT) when the run names none.
    if source == "csv" and not (args.input or settings.csv_input):
        raise CliError("--source csv needs --input PATH (or POKEWATCH_CSV_INPUT)")
    if args.input and source != "csv":
        raise CliError("--input is read only by --source csv")
    if args.cards and source != "sample":
        raise CliError("--cards sizes only the sample market (--source sample)")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else None
    if args.sets is not None and not sets:
        # Read as "every set", a blank list would collect the whole market.
        raise CliError(f"--sets names no set: {args.sets!r}")
    request = {
        "source": args.source,
        "as_of": args.as_of.isoformat() if args.as_of else None,
        "input": str(_input_file(args.input).resolve()) if args.input else None,
        "cards": args.cards,
        "history_days": args.history_days,
        "sets": sets,
    }
    request = {k: v for k, v in request.items() if v is not None}
    _check_run_request(request)
    store = _open_store(args.store)
    _check_writable(store)
    print(f"PokeWatch pipeline → store {store.uri}")
    try:
        result = run_pipeline(
            _template(args), store, request, sleep=(lambda _: None) if args.no_wait else None
        )
    except PipelineInterrupted as stop:
        print(f"pokewatch: {_interrupted(stop)}", file=sys.stderr)
        return 130
    if result.status == "SUCCEEDED":
        print(json.dumps(result.output, indent=1))
        return 0
    # The message alone: the Cause of a failed Task is the Lambda's JSON error document.
    reason = " ".join(cause_message(result.cause or "").split())
    print(f"pokewatch: error: pipeline failed: {result.error}: {reason}", file=sys.stderr)
    return 1


def _interrupted(stop: Any) -> str:
    """What an interrupted run (a `PipelineInterrupted`) left, in one line."""
    during = f"interrupted during {stop.state}" if stop.state else "interrupted"
    if stop.in_service:
        return (
            f"{during}, after model {stop.run.run_id} was put in service (its notice was not "
            "written)"
        )
    if stop.in_service is None:
        return f"{during}; `pokewatch models list` says which model is in service"
    removed = (
        f"; removed the run's partial files ({', '.join(stop.removed)})" if stop.removed else ""
    )
    return f"{during}: nothing in service changed{removed}; run the same command again to finish"


def _check_run_request(request: dict[str, Any]) -> None:
    """The execution input's own limits (`RunRequest`: the sample market's size, the backfill,
    the range of days), as an option's error before the run starts rather than a failed run."""
    from pydantic import ValidationError

    from pokewatch.steps import RunRequest

    try:
        RunRequest.model_validate(request)
    except ValidationError as exc:
        error = exc.errors()[0]
        option = str(error["loc"][0]).replace("_", "-")
        raise CliError(f"--{option}: {_option_problem(error)}") from exc


def _option_problem(error: Any) -> str:
    """One pydantic error of an option's value; for one item of a list (`--sets sv1,a b`), the
    item it is about, which the option's name alone does not say."""
    from pokewatch.validation import error_message

    problem = error_message(dict(error))
    return f"{problem}, found {error['input']!r}" if len(error["loc"]) > 1 else problem


def _check_writable(store: Any) -> None:
    """A local store that cannot be written, as one line before the run starts (an S3 store's
    permissions are the first write's to find)."""
    from pokewatch.store import LocalStore

    if not isinstance(store, LocalStore):
        return
    try:
        store.check_writable()
    except OSError as exc:
        raise CliError(f"store {store.uri}: cannot write there ({exc.strerror or exc})") from exc


def _serve(args: argparse.Namespace) -> int:
    from pokewatch_local.lambda_runtime import LocalLambda
    from pokewatch_local.server import ApiGatewayApp, make_server

    # A bad POKEWATCH_* value named now, not a 500 with a traceback on every request.
    _settings()
    store = _open_store(args.store)
    template = _template(args)
    lambdas = LocalLambda(template, {"POKEWATCH_STORE": store.uri})
    try:
        server = make_server(ApiGatewayApp(template, lambdas), args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror}") from exc
    except ValueError as exc:  # waitress's answer to a host name that does not resolve
        raise CliError(
            f"cannot serve on {args.host}:{args.port}: {exc} (not an address or a host name "
            "this machine resolves)"
        ) from exc
    url = f"http://{args.host}:{server.effective_port}"
    print(f"PokeWatch API on {url} (store {store.uri})")
    print(f"  try: curl {url}/health   (Ctrl-C stops)", flush=True)
    try:
        server.run()
    finally:
        server.close()
    return 0


def _invoke(args: argparse.Namespace) -> int:
    from pokewatch_local.lambda_runtime import LocalLambda

    # A bad POKEWATCH_* value named as such: inside the handler it reads as an invalid event.
    _settings()
    event: Any = {}
    if args.event:
        try:
            event = json.loads(args.event.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CliError(f"--event: cannot read {args.event}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise CliError(f"--event: {args.event}: not UTF-8 (byte {exc.start})") from exc
        except json.JSONDecodeError as exc:
            raise CliError(f"--event: {args.event}:{exc.lineno}:{exc.colno}: {exc.msg}") from exc
    store = _open_store(args.store)
    template = _template(args)
    from pokewatch_local.template import TemplateError

    try:
        spec = template.function(args.function)
    except TemplateError as exc:
        raise CliError(str(exc)) from exc
    # As `sam local invoke` does: the function's logs on stderr, its answer alone on stdout.
    failure: Exception | None = None
    with contextlib.redirect_stdout(sys.stderr):
        try:
            result = LocalLambda(template, {"POKEWATCH_STORE": store.uri}).invoke(spec, event)
        except Exception as exc:
            failure = exc
    if failure is None:
        print(json.dumps(result, indent=1, default=str))
        return 0
    # A handler that raised: Lambda answers with the error as the payload, not a traceback.
    print(json.dumps(_lambda_error(failure), indent=1))
    event_file = f" on {args.event}" if args.event else " on the event {}"
    print(
        f"pokewatch: error: {args.function} failed{event_file}: {_error_line(failure)}",
        file=sys.stderr,
    )
    return 1


def _error_line(exc: Exception) -> str:
    """An exception in one line: a step's invalid event by field (pydantic's message is several
    lines with a link), anything else as its class and message."""
    from pydantic import ValidationError

    from pokewatch.validation import problems

    if isinstance(exc, ValidationError):
        return f"invalid event: {problems(exc, whole='event')}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _lambda_error(exc: Exception) -> dict[str, Any]:
    """The payload Lambda answers for an invocation whose Python handler raised `exc`."""
    import traceback

    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _backtest(args: argparse.Namespace) -> int:
    from pokewatch.backtest import walk_forward
    from pokewatch.fair_price_model import NotEnoughHistory
    from pokewatch.sources.base import SourceError
    from pokewatch.sources.csv_file import read_long_csv

    # Through the settings, so that the command line is held to their bounds.
    horizon = {"horizon_days": ("--horizon-days", args.horizon_days)} if args.horizon_days else {}
    settings = _settings(horizon)
    path = _input_file(args.input)
    try:
        history = read_long_csv(
            path, settings.csv_max_bad_share, settings.price_spike_factor
        ).history
    except SourceError as exc:
        raise CliError(str(exc)) from exc
    try:
        backtest = walk_forward(history, settings)
    except NotEnoughHistory as exc:
        raise CliError(f"{path}: {exc}") from exc
    for caveat in backtest.caveats:
        print(f"pokewatch: note: {caveat}", file=sys.stderr)
    metrics = backtest.metrics
    if args.json:
        print(metrics.model_dump_json())
    else:
        for key, value in metrics.model_dump().items():
            print(f"{key:>24}: {value}")
    return 0


@contextlib.contextmanager
def _registry_errors(uri: str) -> Iterator[None]:
    """A registry command's failure as one line: what the registry refused, or a store that
    cannot be read or written (no such bucket, no credentials, a folder without permission)
    named, not a botocore traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pokewatch.registry import RegistryError

    try:
        yield
    except RegistryError as exc:
        raise CliError(str(exc)) from exc
    except (BotoCoreError, ClientError, OSError) as exc:
        raise CliError(f"store {uri}: {exc}") from exc


def _models_list(args: argparse.Namespace) -> int:
    from pokewatch import registry

    with _registry_errors(args.store):
        store = _open_store(args.store)
        try:
            models = registry.list_models(store)
        except registry.DamagedRecord as exc:
            # Its way out is `models promote VERSION`, and this is the command that lists them.
            known = ", ".join(registry.versions(store)) or "none"
            raise CliError(f"{exc}; versions in the store: {known}") from exc
    if not models:  # a mistyped --store is an empty store too: say so rather than print nothing
        print(f"no model in {args.store} yet: `pokewatch pipeline run` trains one", file=sys.stderr)
    for model in models:
        backtest = (model.metrics or {}).get("backtest", {})
        gate = (model.metrics or {}).get("gate", {})
        marker = "*" if model.in_service else " "
        verdict = "passed" if gate.get("passed") else ("rejected" if gate else "unvalidated")
        mape = backtest.get("mape_model")
        naive = backtest.get("mape_naive")
        # One score without the other (a file edited by hand) compares nothing.
        scores = (
            f"mape {mape:.4f} (naive {naive:.4f})"
            if mape is not None and naive is not None
            else "no metrics"
        )
        print(f"{marker} {model.version}  {scores}  gate {verdict}")
    return 0


def _models_promote(args: argparse.Namespace) -> int:
    from pokewatch import registry

    with _registry_errors(args.store):
        record = registry.promote(_open_store(args.store), args.version)
    print(f"in service: {record.version} (previous: {record.previous_version})")
    return 0


def _models_rollback(args: argparse.Namespace) -> int:
    from pokewatch import registry

    with _registry_errors(args.store):
        record = registry.rollback(_open_store(args.store))
    print(f"rolled back: {record.version} is in service")
    return 0
