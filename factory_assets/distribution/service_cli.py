"""`factory score`, `factory services` and `factory serve`: the services from the command line.

    factory score <use_case> <input file> [--alias champion | --model-version V] [--out F] [--json]
    factory services [--json]                                 the catalogue
    factory services describe <name> [--json]                 owner, tier, version, input and output contracts
    factory services call <name> <input file> [--caller C] [--out F] [--json]
    factory services deliver-usage                            finished days' usage into the landing zone
    factory serve [--host 127.0.0.1] [--port 8000]            the catalogue over HTTP (OpenAPI at /openapi.json)

Exit codes of ``score``: 0 scored; 2 the input does not fit the model, or no such model (the
reason goes to stderr, one line per column, never a traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from factory_assets.settings import default_paths

OUTPUT_SUFFIXES = (".csv", ".parquet", ".json", ".jsonl")
PREVIEW_ROWS = 5


def registry_root() -> Path:
    return default_paths().artifacts / "models"


def register_commands(subparsers, help_of=None, formatter_class=None, only=("score", "services", "serve")) -> None:
    """Add ``score`` and ``serve`` (or those named in ``only``) to the ``factory`` command's subparsers.

    ``help_of``: one-line help by command name (the ``factory`` parser's table)."""
    help_of = help_of or {"score": "score a file against a registered model",
                          "services": "the catalogue of reusable services: list, describe, call",
                          "serve": "serve the services over HTTP (OpenAPI document at /openapi.json)"}
    extra = {"formatter_class": formatter_class} if formatter_class else {}
    if "score" in only:
        p = subparsers.add_parser(
            "score", help=help_of["score"], **extra,
            description="Score the rows of a file with a registered model of a use case (its champion by "
            "default). Exit code 2, with one line per problem on stderr, when the file does not fit the model.")
        p.add_argument("use_case", help="the use case, e.g. late_delivery (see `factory use-cases`)")
        p.add_argument("input", type=Path, metavar="INPUT", help="rows to score: .csv, .parquet, .json or .jsonl")
        which = p.add_mutually_exclusive_group()
        which.add_argument("--alias", default="champion", choices=["champion", "challenger"],
                           help="model alias (default champion)")
        which.add_argument("--model-version", metavar="VERSION",
                           help="a version id instead of an alias (see `factory models USE_CASE`)")
        p.add_argument("--out", type=Path, metavar="FILE",
                       help=f"write the rows with their predictions ({', '.join(OUTPUT_SUFFIXES)})")
        p.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")
        p.set_defaults(func=cmd_score)

    if "services" in only:
        p = subparsers.add_parser(
            "services", help=help_of["services"], **extra,
            description="The catalogue of reusable services: every use case's champion model and the function "
            "services (e.g. sentiment). Each has an owner, a risk tier and input and output contracts; the policy "
            "decides who may call a high-tier one. Every call is recorded as usage (never the rows).")
        p.add_argument("--json", action="store_true", help="print as JSON (for scripts)")
        p.set_defaults(func=cmd_services, action="list")
        actions = p.add_subparsers(dest="action")
        d = actions.add_parser("describe", help="a service's owner, tier, version and contracts", **extra,
                               description="A service's kind, version, owner, risk tier and its input and output "
                               "contracts (columns, types, whether null is allowed, categories and ranges).")
        d.add_argument("name", help="the service (see `factory services`)")
        d.add_argument("--json", action="store_true", help="print as JSON")
        c = actions.add_parser("call", help="call a service on the rows of a file", **extra,
                               description="Call a service on the rows of a file, as --caller (the policy decides "
                               "who may call a high-tier service). Exit code 2, with one line per problem, when the "
                               "rows do not fit the service's input contract or the caller is not allowed.")
        c.add_argument("name", help="the service (see `factory services`)")
        c.add_argument("input", type=Path, metavar="INPUT", help="rows: .csv, .parquet, .json or .jsonl")
        c.add_argument("--caller", default="cli", help="who calls: a department or system, not a person (default cli)")
        c.add_argument("--out", type=Path, metavar="FILE",
                       help=f"write one output row per input row ({', '.join(OUTPUT_SUFFIXES)})")
        c.add_argument("--json", action="store_true", help="print the result as JSON")
        help_text = "move finished days of usage into the landing zone (each call does it too)"
        actions.add_parser("deliver-usage", help=help_text, **extra, description=(
            "Move every finished day of the services' usage log (FACTORY_HOME/services/usage) into the landing "
            "zone as service_usage_<day>.jsonl, where the nightly run ingests it. Each call delivers the days "
            "before it; this is for a day without calls."))

    if "serve" in only:
        p = subparsers.add_parser(
            "serve", help=help_of["serve"], **extra,
            description="Serve the catalogue over HTTP (Starlette on uvicorn): POST /services/<name> with "
            "{\"rows\": [...]} and an X-Caller header, the OpenAPI document at /openapi.json, and the models at "
            "/models/<use_case>/<alias or version>/score. There is no authentication: keep it on loopback or "
            "behind a gateway that sets X-Caller.")
        p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default loopback only)")
        p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
        p.add_argument("--max-body-mb", type=float, default=10.0, help="largest request body accepted (default 10)")
        p.set_defaults(func=cmd_serve)


def cmd_score(args) -> int:
    from factory_assets.assembly.feature_schema import ScoringInputError
    from factory_assets.distribution.service import ModelNotFoundError, ScoringService

    if args.out and args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        return _fail(f"cannot write {args.out.name}: use one of {', '.join(OUTPUT_SUFFIXES)}")
    try:
        result = ScoringService(registry_root()).score(
            args.use_case, args.input, alias=args.alias, version=args.model_version)
    except ScoringInputError as exc:
        return _fail(str(exc))
    except ModelNotFoundError as exc:
        return _fail(_no_model(args.use_case, str(exc)))
    if args.out:
        try:
            _write(result.frame, args.out)
        except OSError as exc:
            return _fail(f"cannot write {args.out}: {exc.strerror or exc}")
    if args.json:
        print(json.dumps({
            "use_case": result.use_case, "model_version": result.model_version, "rows": result.frame.height,
            "predictions": result.predictions, "warnings": [w.to_dict() for w in result.warnings],
            "out": str(args.out) if args.out else None,
        }))
        return 0
    prediction = result.frame["prediction"]
    print(f"Scored {result.frame.height} rows of {args.input} with {args.use_case} model {result.model_version} "
          f"({args.model_version or args.alias})")
    print(f"  prediction: mean {prediction.mean():.4g}, min {prediction.min():.4g}, max {prediction.max():.4g}")
    if result.warnings:
        print(f"Warnings ({len(result.warnings)}), scored anyway:")
        print("\n".join(f"  - {w}" for w in result.warnings))
    if args.out:
        print(f"Wrote {args.out}")
    else:
        print(result.frame.head(PREVIEW_ROWS))
        print("(use --out predictions.csv to write every row)")
    return 0


def cmd_serve(args) -> int:
    from factory_assets.distribution.http_api import serve

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this port can score, there is no "
              "authentication", file=sys.stderr)
    from factory_assets.assembly.specs import UseCaseSpecError
    from factory_assets.distribution.services import home_catalogue

    try:
        catalogue = home_catalogue(default_paths())
    except UseCaseSpecError as exc:
        print(f"factory serve: {exc}", file=sys.stderr)
        return 2
    try:
        serve(catalogue, args.host, args.port, max_body_bytes=int(args.max_body_mb * 1024 * 1024))
    except OSError as exc:  # e.g. the port is taken
        print(f"factory serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; choose another "
              "--port (or stop what uses this one)", file=sys.stderr)
        return 2
    return 0


def cmd_services(args) -> int:
    from factory_assets.assembly.specs import UseCaseSpecError
    from factory_assets.assembly.feature_schema import ScoringInputError
    from factory_assets.distribution.service import ModelNotFoundError
    from factory_assets.distribution.services import CallerNotAllowedError, home_catalogue, usage_log
    from factory_assets.lib.formatting import format_table

    paths = default_paths()
    if args.action == "deliver-usage":
        delivered = usage_log(paths).deliver()
        print("\n".join(f"Delivered {p}" for p in delivered) or "No finished day of usage to deliver.")
        return 0
    try:
        catalogue = home_catalogue(paths)
        if args.action in (None, "list"):
            rows = [s.summary() for s in catalogue.specs()]
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print(format_table(["SERVICE", "KIND", "VERSION", "RISK", "OWNER"],
                                   [[r["name"], r["kind"], r["version"], r["risk_tier"], r["owner"]] for r in rows]))
            return 0
        if args.action == "describe":
            described = catalogue.spec(args.name).describe()
            if args.json:
                print(json.dumps(described, indent=2))
            else:
                print(f"{described['name']} ({described['kind']}, version {described['version']}, risk tier "
                      f"{described['risk_tier']}, owner {described['owner']})\n  {described['description']}")
                for title, key in (("input", "input_contract"), ("output", "output_contract")):
                    print(format_table([title.upper(), "TYPE", "NULL", "VALUES"],
                                       [[c["name"], c["type"], "yes" if c["nullable"] else "no",
                                         ", ".join(c["categories"]) if c["categories"] else _range(c)]
                                        for c in described[key]]))
            return 0
        if args.out and args.out.suffix.lower() not in OUTPUT_SUFFIXES:
            return _fail(f"cannot write {args.out.name}: use one of {', '.join(OUTPUT_SUFFIXES)}", "services call")
        result = catalogue.call(args.name, args.input, caller=args.caller, channel="cli")
    except (ScoringInputError, ModelNotFoundError, CallerNotAllowedError, UseCaseSpecError) as exc:
        return _fail(str(exc), f"services {args.action or 'list'}")
    if args.out:
        try:
            _write(result.outputs, args.out)
        except OSError as exc:
            return _fail(f"cannot write {args.out}: {exc.strerror or exc}", "services call")
    if args.json:
        print(json.dumps({"service": result.service, "version": result.version, "rows": result.outputs.height,
                          "outputs": result.outputs.to_dicts() if not args.out else None,
                          "warnings": [w.to_dict() for w in result.warnings],
                          "out": str(args.out) if args.out else None}))
        return 0
    print(f"Called {result.service} {result.version} on {result.outputs.height} rows of {args.input}")
    if result.warnings:
        print(f"Warnings ({len(result.warnings)}), called anyway:")
        print("\n".join(f"  - {w}" for w in result.warnings))
    print(f"Wrote {args.out}" if args.out else result.outputs.head(PREVIEW_ROWS))
    return 0


def _range(column: dict) -> str:
    low, high = column.get("minimum"), column.get("maximum")
    return "" if low is None and high is None else f"{'' if low is None else low} .. {'' if high is None else high}"


def _write(frame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = {".csv": frame.write_csv, ".parquet": frame.write_parquet,
              ".json": frame.write_json, ".jsonl": frame.write_ndjson}[out.suffix.lower()]
    writer(out)


def _no_model(use_case: str, message: str) -> str:
    """Say whether the use case is unknown, has no model yet, or lacks the version asked for."""
    from factory_assets.assembly.registry import ModelRegistry
    from factory_assets.assembly.specs import UseCaseSpecError, load_use_cases

    registered = ModelRegistry(registry_root()).use_cases()
    if use_case in registered:
        return message  # the use case has models: the alias or version is what is missing
    try:
        specs = set(load_use_cases())
    except UseCaseSpecError:
        specs = set()
    if use_case in specs:
        return f"no models registered for {use_case} yet: train one with `factory run --layer assembly`"
    return (f"unknown use case {use_case!r}; known: {', '.join(sorted(specs | set(registered))) or 'none'} "
            "(see `factory use-cases`)")


def _fail(message: str, command: str = "score") -> int:
    print(f"factory {command}: {message}", file=sys.stderr)
    return 2
