"""`factory score` and `factory serve`: the scoring service from the command line.

    factory score <use_case> <input file> [--alias champion | --model-version V] [--out F] [--json]
    factory serve [--host 127.0.0.1] [--port 8000]

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


def register_commands(subparsers) -> None:
    """Add ``score`` and ``serve`` to the ``factory`` command's subparsers."""
    p = subparsers.add_parser("score", help="score a file against a registered model")
    p.add_argument("use_case", help="the use case, e.g. late_delivery")
    p.add_argument("input", type=Path, help="rows to score: .csv, .parquet, .json or .jsonl")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion", help="model alias (default champion)")
    which.add_argument("--model-version", help="a version id instead of an alias")
    p.add_argument("--out", type=Path, help=f"write the rows with their predictions ({', '.join(OUTPUT_SUFFIXES)})")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_score)

    p = subparsers.add_parser("serve", help="serve the scoring HTTP endpoint")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-body-mb", type=float, default=10.0, help="largest request body accepted (default 10)")
    p.set_defaults(func=cmd_serve)


def cmd_score(args) -> int:
    from factory_assets.distribution.feature_schema import ScoringInputError
    from factory_assets.distribution.service import ModelNotFoundError, ScoringService

    if args.out and args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        return _fail(f"cannot write {args.out.name}: use one of {', '.join(OUTPUT_SUFFIXES)}")
    try:
        result = ScoringService(registry_root()).score(
            args.use_case, args.input, alias=args.alias, version=args.model_version)
    except ScoringInputError as exc:
        return _fail(str(exc))
    except ModelNotFoundError as exc:
        return _fail(str(exc))
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
    serve(registry_root(), args.host, args.port, max_body_bytes=int(args.max_body_mb * 1024 * 1024))
    return 0


def _write(frame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = {".csv": frame.write_csv, ".parquet": frame.write_parquet,
              ".json": frame.write_json, ".jsonl": frame.write_ndjson}[out.suffix.lower()]
    writer(out)


def _fail(message: str) -> int:
    print(f"factory score: {message}", file=sys.stderr)
    return 2
