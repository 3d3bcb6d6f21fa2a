"""`factory`: the command line of the AI Factory.

    factory data generate  write simulated landing files (demo data) under FACTORY_HOME
    factory data drop      delete the demo state under FACTORY_HOME (landing, raw, warehouse, models, runs)
    factory run            run the nightly chain, or one layer, for a day or a range of days
    factory recover        rebuild a damaged DuckDB-file warehouse from the raw store, then its products
    factory lake           the warehouse's history: snapshots, rollback, maintenance, migration
    factory use-cases      list the use cases with their risk tier, owner, champion and challenger
    factory models         list the registered versions of a use case's model (metrics, aliases)
    factory score          score a file against a registered model (distribution layer)
    factory approve        record a signed approval or rejection of a model version (append-only)
    factory promote        run a use case's promotion gate (the only way to change a champion)
    factory audit          write the audit bundle (JSON + HTML) of a model version
    factory keygen         create an approver's Ed25519 key pair and print the public key to declare
    factory ui             open the Dagster UI on the embedded instance
    factory demo           generate demo data and run the whole loop on it: products, training, nightly
                           scoring and monitoring of the last days, retraining where monitoring asks
    factory generate       same as `factory data generate`
    factory services       the catalogue of reusable services (models, sentiment): list, describe, call
    factory serve          serve the services over HTTP (OpenAPI document at /openapi.json)

A first session:

    factory data generate --days 90 --end 2025-03-31   # landing files for 2025-01-01 .. 2025-03-31
    factory run --from 2025-01-01                      # the chain up to the last landed day, one run
    factory run --layer assembly                       # train every use case, run the promotion gates
    factory use-cases                                  # champions and challengers
    factory models late_delivery --json                # its versions, metrics and aliases

Every command takes --help; listings, `run` and `data` take --json for scripts. State lives under
FACTORY_HOME (default ./.factory). Exit codes: 0 done, 1 a run failed (or one of its asset checks of
severity ERROR), 2 a mistake in the command or missing data (the message says what to do), 3 a
promotion the gate refused.
"""

from __future__ import annotations

import logging
import os
import sys

from factory_assets.cli.commands.data import landed_days
from factory_assets.cli.commands.run import plan_run
from factory_assets.cli.jobs import run_report
from factory_assets.cli.output import UsageError, explain_error, print_report
from factory_assets.cli.parser import COMMANDS, build_parser
from factory_assets.lib.formatting import format_table

# The package: parser.py builds the argument parser (COMMANDS, the one-line help of each command, is
# kept in step with the docstring above by tests/test_cli.py); commands/ holds what each command does
# (data, run and recover, use-cases and models, demo, ui; score, services and serve are in
# distribution/service_cli.py, approve, promote, audit and keygen in governance/cli.py, lake in
# lake_cli.py); jobs.py runs the Dagster jobs with progress lines; output.py holds the messages,
# the run summary and the exit code of an error.
__all__ = ["COMMANDS", "UsageError", "build_parser", "explain_error", "format_table", "landed_days", "main",
           "plan_run", "print_report", "run_report"]


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster marks some parameters of the project's assets beta/preview; a CLI user cannot act on that.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    # "Blocking asset check ... emitted no result": said when a use case without a champion scores
    # nothing; the run's progress and summary already say so.
    logging.getLogger("dagster._core.execution.plan.active").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    name = " ".join(filter(None, ["factory", args.command, getattr(args, "data_command", None),
                                  getattr(args, "lake_command", None)]))
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a message, not a traceback (FACTORY_DEBUG=1 shows it)
        if os.environ.get("FACTORY_DEBUG") == "1":
            raise
        code, message = explain_error(exc)
        print(f"{name}: error: {message}", file=sys.stderr)
        return code
