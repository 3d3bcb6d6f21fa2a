"""The argument parser of `factory`: the commands, their options and help, and the option types.

What each command does is in commands/ (score, services, serve, approve, promote, audit, keygen and
lake register their own subparsers, from distribution/service_cli.py, governance/cli.py and lake_cli.py)."""

from __future__ import annotations

import argparse
from datetime import date

from factory_assets.cli.commands import data, demo, models, run, ui
from factory_assets.cli.commands.data import DROP_NAMES
from factory_assets.cli.commands.run import LAYERS

#: One-line help of each subcommand, in the order `factory --help` lists them (the package
#: docstring, cli/__init__.py, lists the same; tests/test_cli.py keeps the two in step).
COMMANDS = {
    "data": "generate or drop demo data (landing files and all state under FACTORY_HOME)",
    "run": "run the nightly chain, or one layer, for a day or a range of days",
    "recover": "rebuild a damaged DuckDB-file warehouse from the raw store, then its products",
    "lake": "the warehouse's history: snapshots, rollback, maintenance, migration",
    "use-cases": "list the use cases with their risk tier, owner, champion and challenger",
    "models": "list the registered versions of a use case's model (metrics, aliases)",
    "score": "score a file against a registered model (distribution layer)",
    "approve": "record a signed approval or rejection of a model version (append-only)",
    "promote": "run a use case's promotion gate (the only way to change a champion)",
    "audit": "write the audit bundle (JSON + HTML) of a model version",
    "keygen": "create an approver's Ed25519 key pair and print the public key to declare",
    "ui": "open the Dagster UI on the embedded instance",
    "demo": "generate demo data and run the whole loop on it (products, training, scoring, monitoring)",
    "generate": "same as `factory data generate`",
    "services": "the catalogue of reusable services (models, sentiment): list, describe, call",
    "serve": "serve the services over HTTP (OpenAPI document at /openapi.json)",
}


class _Formatter(argparse.HelpFormatter):
    """Wrapped text, a wider help column, and room for subcommand names."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=110)

    def add_argument(self, action):
        super().add_argument(action)
        if action.help is not argparse.SUPPRESS and getattr(action, "_choices_actions", None):
            # argparse measures subcommand names without their extra indent; make room for it
            self._action_max_length = max(self._action_max_length, self._current_indent + 4 + max(
                len(a.metavar or a.dest) for a in action._choices_actions))


class _TopFormatter(argparse.RawDescriptionHelpFormatter, _Formatter):
    """The top-level help keeps the module docstring's own line breaks."""


def parse_day(value: str) -> date:
    """argparse type for YYYY-MM-DD; a bad value is an argparse error (exit 2, usage shown)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2025-02-04") from None


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def _json_flag(parser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON (for scripts)")


def _add_simulation_options(p) -> None:
    p.add_argument("--days", type=positive_int, default=90, help="days of history to simulate (default 90; "
                   "purchase propensity needs 28 days of history plus 30-day labels)")
    p.add_argument("--lines-per-day", type=positive_int, default=1500, help="mean order lines per day (default 1500)")
    p.add_argument("--products", type=positive_int, default=200, help="products in the catalogue (default 200; "
                   "demand is forecast per product, warehouse and day)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--end", type=parse_day, metavar="YYYY-MM-DD", help="last simulated day (default: yesterday)")
    p.add_argument("--drift-from", type=parse_day, metavar="YYYY-MM-DD",
                   help="turn on the simulator's drift scenario from this day")


def build_parser() -> argparse.ArgumentParser:
    from factory_assets import cli  # the package docstring is the top-level help

    intro, _, rest = cli.__doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="factory", description=intro.strip(),
                                     epilog=rest.split("\n\n", 1)[-1].strip(), formatter_class=_TopFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    def add(name: str, **kwargs):
        line = COMMANDS[name]
        return sub.add_parser(name, help=line, description=line[0].upper() + line[1:] + ".",
                              formatter_class=_Formatter, **kwargs)

    p = add("data")
    actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION", title="actions")
    g = actions.add_parser("generate", help="write simulated landing files under FACTORY_HOME/landing",
                           description="Simulate a distributor's ERP, IoT, support and external feeds and write one "
                           "landing file per source and day.", formatter_class=_Formatter)
    _add_simulation_options(g)
    _json_flag(g, "what was written")
    g.set_defaults(func=data.cmd_generate)
    d = actions.add_parser("drop", help="delete the demo state under FACTORY_HOME (needs --yes)",
                           description="Delete the demo state under FACTORY_HOME: " + ", ".join(DROP_NAMES)
                           + ". Nothing outside FACTORY_HOME is touched; without --yes nothing is deleted.",
                           formatter_class=_Formatter)
    d.add_argument("--yes", action="store_true",
                   help="really delete (without it the command only says what it would delete)")
    _json_flag(d, "what was removed")
    d.set_defaults(func=data.cmd_drop)

    p = add("run", epilog="Layers: all = the nightly job supply_chain_nightly (landing -> raw -> products -> feature "
            "sets -> champion scores -> monitoring); raw_material, processing, distribution, feedback = that "
            "group's assets of the nightly job; assembly = the assembly_training job (feature sets, training "
            "sets, models, promotion gates). Without a date, the last landed day is run. Exit code 0 when the run "
            "succeeded and no asset check of severity ERROR failed, 1 otherwise, 2 for a mistake in the options "
            "or no landed data.")
    p.add_argument("--layer", choices=LAYERS, default="all", metavar="LAYER",
                   help=f"what to run: {', '.join(LAYERS)} (default all: the whole chain)")
    p.add_argument("--date", type=parse_day, metavar="YYYY-MM-DD", help="one day (default: the last landed day)")
    p.add_argument("--from", dest="date_from", type=parse_day, metavar="YYYY-MM-DD",
                   help="first day of a range, run as one run")
    p.add_argument("--to", dest="date_to", type=parse_day, metavar="YYYY-MM-DD",
                   help="last day of the range (default: the last landed day)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout at the end (run_id, "
                   "success, ok, days, materialized assets, checks, failed steps, seconds) instead of the summary; "
                   "progress lines go to stderr")
    p.set_defaults(func=run.cmd_run)

    p = add("recover", epilog="The raw store (FACTORY_HOME/raw) keeps every ingested file as Parquet with its "
            "provenance, and the archive keeps the landing files: the raw tables are rebuilt from them to the "
            "same rows (the ingestion ledger and quarantine log too), in a new file that replaces the warehouse "
            "atomically; the old file is kept as warehouse.duckdb.damaged-<time>. Then the data products and "
            "feature sets are rebuilt by the processing layer. Prediction products are re-scored by `factory run "
            "--layer distribution --from FIRST --to LAST`. Exit code 0 when the warehouse was healthy or is rebuilt, "
            "1 when the product rebuild failed, 2 when there is nothing to recover from.")
    p.add_argument("--force", action="store_true",
                   help="rebuild even when the warehouse opens and holds every raw row (default: say so and stop)")
    p.add_argument("--raw-only", action="store_true",
                   help="restore the raw tables only; rebuild the products later with `factory run --layer processing`")
    _json_flag(p, "what was restored")
    p.set_defaults(func=run.cmd_recover)

    p = add("use-cases")
    _json_flag(p, "the use cases")
    p.set_defaults(func=models.cmd_use_cases)

    p = add("models")
    p.add_argument("use_case", metavar="USE_CASE", help="the use case, e.g. late_delivery (see `factory use-cases`)")
    _json_flag(p, "the versions (a list, newest first)")
    p.set_defaults(func=models.cmd_models)

    from factory_assets.distribution import service_cli
    from factory_assets import lake_cli
    from factory_assets.governance import cli as governance_cli

    service_cli.register_commands(sub, help_of=COMMANDS, formatter_class=_Formatter, only=("score", "services"))
    governance_cli.register_commands(sub, help_of=COMMANDS, formatter_class=_Formatter)
    lake_cli.register_commands(sub, COMMANDS["lake"], formatter_class=_Formatter)

    p = add("ui")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    p.add_argument("--artifacts-port", type=int, default=3001,
                   help="port of the read-only server for Evidently reports and audit bundles, which the UI's "
                   "report links point at (default 3001; see FACTORY_ARTIFACTS_URL)")
    p.set_defaults(func=ui.cmd_ui)

    p = add("demo")
    _add_simulation_options(p)
    p.add_argument("--no-train", action="store_true", help="stop after the data products")
    p.add_argument("--live-days", type=int, default=7, help="last days run night by night after training: scored, "
                   "monitored, and retrained where monitoring asks (default 7)")
    p.set_defaults(func=demo.cmd_demo)

    p = add("generate")
    _add_simulation_options(p)
    _json_flag(p, "what was written")
    p.set_defaults(func=data.cmd_generate)

    service_cli.register_commands(sub, help_of=COMMANDS, formatter_class=_Formatter, only=("serve",))
    return parser
