"""`factory`, the command line, used as an engineer uses it: the installed console script, in a
subprocess, with its own FACTORY_HOME.

One small world for the module: 35 days x ~60 order lines of simulated landing files, of which the
whole chain runs the last eight days as one run (`factory run --from D --json`: JSON on stdout,
progress on stderr) while the older days stay waiting in the landing zone, and one extra file that
breaks its contract is quarantined (the run succeeds, its check fails, the exit code is 1); the
warehouse is read back (read-only) to check what the command said it did. That one run is most of
the module's time (dbt builds every product). No model is trained here (tests/test_assembly_e2e.py
covers training). The pure helpers behind the commands (run planning, tables, the summary) are
checked in-process; the quick tests run without the chain with `-m "not e2e"`.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

from factory_assets.lib.warehouse import open_warehouse
from factory_assets.settings import FactoryPaths
import pytest

from factory_cli import FACTORY, factory  # noqa: F401 - the shared CLI runner
FIRST, LAST = date(2025, 1, 1), date(2025, 2, 4)  # the simulated days
DAYS = (LAST - FIRST).days + 1
RUN_FROM = LAST - timedelta(days=7)  # the chain runs RUN_FROM .. LAST (the last landed day by default)
BAD_FILE = f"weather_{LAST - timedelta(days=2)}_resend.csv"  # a second weather file that breaks the contract
RAW_SOURCES = tuple(sorted(__import__("factory_assets.settings", fromlist=["RAW_SOURCES"]).RAW_SOURCES))  # from the raw contracts
PROGRESS = re.compile(r"^\[\s*\d+ s\] (.+)$")



def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done


def usage_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, no traceback, and a message on stderr holding every fragment."""
    assert done.returncode == 2, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    for fragment in fragments:
        assert fragment in done.stderr, f"{fragment!r} not in stderr:\n{done.stderr}"
    return done.stderr


def data_rows(path: Path) -> int:
    lines = path.read_text().count("\n")
    return lines - 1 if path.suffix == ".csv" else lines


def query(home: Path, sql: str):
    with open_warehouse(FactoryPaths(home)) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    """A FACTORY_HOME with 35 days of landing files and nothing run yet (cheap: about a second)."""
    home = tmp_path_factory.mktemp("cli") / "home"
    generated = ok(factory(home, "data", "generate", "--days", DAYS, "--lines-per-day", 60, "--end", LAST, "--json"))
    files = {path.name: data_rows(path) for path in (home / "landing").rglob("*") if path.is_file()}
    return SimpleNamespace(home=home, generated=json.loads(generated.stdout), files=files)


@pytest.fixture(scope="module")
def world(landed):
    """The same home after `factory run --from RUN_FROM --json`: the whole chain over eight days, with
    one extra landing file that breaks its contract (quarantined: the run succeeds, its check fails)."""
    bad = landed.home / "landing" / "weather" / BAD_FILE
    bad.write_text("station;reading\n1;2\n")
    chain = factory(landed.home, "run", "--from", RUN_FROM, "--json")
    assert chain.returncode == 1, f"exit {chain.returncode}\nstdout:\n{chain.stdout}\nstderr:\n{chain.stderr}"
    assert "Traceback" not in chain.stderr
    return SimpleNamespace(**vars(landed), report=json.loads(chain.stdout), stderr=chain.stderr)


def day_of(name: str) -> str:
    return name.rsplit("_", 1)[-1].split(".")[0]


def landed_on(world, source: str, first: date, last: date) -> int:
    """Data rows of a source's landing files for the days first..last."""
    return sum(n for name, n in world.files.items()
               if name.startswith(f"{source}_") and str(first) <= day_of(name) <= str(last))


# ---- help ---------------------------------------------------------------------------------

#: Every subcommand and the options its --help must document.
OPTIONS = {
    "data": ["generate", "drop"],
    "data generate": ["--days", "--lines-per-day", "--products", "--seed", "--end", "--drift-from", "--json"],
    "data drop": ["--yes", "--json"],
    "run": ["--layer", "--date", "--from", "--to", "--json", "raw_material", "assembly", "feedback"],
    "use-cases": ["--json"],
    "models": ["USE_CASE", "--json"],
    "score": ["use_case", "INPUT", "--alias", "--model-version", "--out", "--json"],
    "approve": ["use_case", "version", "--approver", "--key", "--decision", "--note", "--sign-only", "--json"],
    "promote": ["use_case", "--json"],
    "audit": ["use_case", "--version", "--out", "--json"],
    "keygen": ["--approver", "--out", "--json", "approvers.yaml", "ssh-keygen"],
    "ui": ["--host", "--port"],
    "demo": ["--days", "--lines-per-day", "--products", "--seed", "--end", "--drift-from", "--no-train", "--live-days"],
    "generate": ["--days", "--lines-per-day", "--seed", "--end", "--drift-from", "--json"],
    "serve": ["--host", "--port", "--max-body-mb"],
    "services": ["--json", "describe", "call", "deliver-usage"],
    "services describe": ["name", "--json"],
    "services call": ["name", "INPUT", "--caller", "--out", "--json"],
    "services deliver-usage": ["landing"],
    "lake": ["snapshots", "rollback", "maintain", "migrate", "backup"],
    "lake snapshots": ["--last", "--json"],
    "lake rollback": ["snapshot", "--schema", "--json"],
    "lake maintain": ["--keep-days", "--json", "trained at"],
    "lake migrate": ["--from", "--json"],
    "lake backup": ["--to"],
}


def test_top_level_help_lists_every_subcommand_with_its_one_line_description(tmp_path):
    from factory_assets import cli

    done = ok(factory(tmp_path, "--help"))
    top_level = {name.split()[0] for name in OPTIONS}
    assert set(cli.COMMANDS) == top_level
    for name, line in cli.COMMANDS.items():
        assert re.search(rf"^\s+{re.escape(name)}\s+{re.escape(line)}$", done.stdout, re.M), name
        # the package docstring (what a reader of cli/__init__.py sees) lists the same commands
        assert re.search(rf"^\s+factory {re.escape(name)}\s", cli.__doc__, re.M), name
    assert "FACTORY_HOME" in done.stdout and "Exit codes" in done.stdout


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_every_subcommand_documents_its_options(tmp_path, command):
    done = ok(factory(tmp_path, *command.split(), "--help"))
    assert done.stdout.startswith(f"usage: factory {command}")
    for option in OPTIONS[command]:
        assert option in done.stdout, f"{command} --help does not mention {option}"


def test_every_option_has_help_text():
    import argparse

    from factory_assets.cli import build_parser

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{prefix} {choice.dest}: no help"
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{prefix} {name}")
            elif not isinstance(action, argparse._HelpAction):
                yield prefix, action

    undocumented = [f"{prefix} {a.dest}" for prefix, a in walk(build_parser(), "factory") if not a.help]
    assert undocumented == []


# ---- mistakes: exit 2, the problem and the fix, never a traceback ---------------------------


def test_run_without_landed_data_says_to_generate_first(tmp_path):
    home = tmp_path / "empty"
    usage_error(factory(home, "run"), f"no landed data under {home / 'landing'}", "factory data generate")
    usage_error(factory(home, "run", "--layer", "processing"), "no landed data")


def test_bad_dates_layers_and_ranges_are_refused(landed):
    home = landed.home
    usage_error(factory(home, "run", "--date", "2025-13-01"), "--date", "'2025-13-01' is not a date", "YYYY-MM-DD")
    usage_error(factory(home, "run", "--from", "04/02/2025"), "--from", "YYYY-MM-DD")
    usage_error(factory(home, "run", "--layer", "marts"), "--layer", "invalid choice: 'marts'", "processing")
    usage_error(factory(home, "run", "--date", LAST, "--from", FIRST), "either --date or --from/--to")
    usage_error(factory(home, "run", "--to", LAST), "--to", "needs --from")
    usage_error(factory(home, "run", "--from", LAST, "--to", FIRST), f"--from {LAST} is after --to {FIRST}", "swap")
    usage_error(factory(home, "run", "--date", "2024-12-31"), f"before the first daily partition {FIRST}",
                "FACTORY_PARTITIONS_START=2024-12-31")
    usage_error(factory(home, "run", "--date", "2999-01-01"), "not a complete day yet", "choose an earlier day")
    usage_error(factory(home, "data", "generate", "--days", "0"), "--days", "must be at least 1")
    usage_error(factory(home, "data", "generate", "--end", "yesterday"), "--end", "YYYY-MM-DD")
    usage_error(factory(home, "frobnicate"), "invalid choice: 'frobnicate'")


def test_unknown_use_cases_and_missing_models_are_named(landed):
    known = "demand_forecast, late_delivery, purchase_propensity"
    usage_error(factory(landed.home, "models", "nope"), "unknown use case 'nope'", known, "factory use-cases")
    usage_error(factory(landed.home, "promote", "nope"), "unknown use case 'nope'", known)
    usage_error(factory(landed.home, "approve", "late_delivery", "challenger", "--approver", "a.reviewer",
                        "--key", landed.home / "a.reviewer.pem", "--decision", "approve"), "late_delivery")
    usage_error(factory(landed.home, "approve", "late_delivery", "challenger", "--approver", "a.reviewer",
                        "--decision", "approve"), "--key")  # an approval is always signed
    usage_error(factory(landed.home, "audit", "late_delivery"), "late_delivery")
    rows = landed.home / "rows.csv"
    rows.write_text("customer_id\nC1\n")
    usage_error(factory(landed.home, "score", "nope", rows), "unknown use case")


# ---- data ---------------------------------------------------------------------------------


def test_generate_writes_the_landing_files_it_reports(landed):
    report = landed.generated
    assert report["days"] == DAYS and report["first_day"] == str(FIRST) and report["last_day"] == str(LAST)
    assert report["files"] == len(landed.files) == sum(report["files_by_source"].values())
    from factory_assets.lib.contracts import raw_contract_dirs, raw_contract_files

    # the simulated company's sources: the core's and the business units' (customer_care's ticket_outcomes)
    assert set(report["files_by_source"]) == set(raw_contract_files(raw_contract_dirs())) > set(RAW_SOURCES)
    assert report["files_by_source"]["transactions"] == DAYS
    assert report["landing"] == str(landed.home / "landing")


def test_the_partitions_start_with_the_generated_data(landed, tmp_path):
    """The code location and the CLI read FACTORY_HOME/partitions_start: the first generated day, so
    the UI's partition ranges start with the data; an earlier generation lowers it, a later one not."""
    import os
    import sys

    assert (landed.home / "partitions_start").read_text().strip() == str(FIRST)
    probe = ("from factory_assets.raw_material.assets import daily_partitions as d; "
             "print(d.get_first_partition_key(), len(d.get_partition_keys()))")
    env = {k: v for k, v in os.environ.items() if k != "FACTORY_PARTITIONS_START"}
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "FACTORY_HOME": str(landed.home)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(FIRST) and int(out[1]) >= DAYS
    home = tmp_path / "lowered"
    ok(factory(home, "data", "generate", "--days", 2, "--lines-per-day", 10, "--end", LAST))
    ok(factory(home, "data", "generate", "--days", 5, "--lines-per-day", 10, "--end", LAST))
    ok(factory(home, "data", "generate", "--days", 1, "--lines-per-day", 10, "--end", LAST))
    assert (home / "partitions_start").read_text().strip() == str(LAST - timedelta(days=4))
    env_start = str(LAST - timedelta(days=2))
    refused = subprocess.run([str(Path(sys.executable).parent / "factory"), "data", "generate", "--days", "9", "--end",
                              str(LAST)], env={**env, "FACTORY_HOME": str(home), "FACTORY_PARTITIONS_START": env_start},
                             capture_output=True, text=True)
    assert refused.returncode == 2 and f"before the first daily partition {env_start} (FACTORY_PARTITIONS_START)" in refused.stderr


def test_generate_stays_an_alias_of_data_generate(tmp_path):
    home = tmp_path / "alias"
    done = ok(factory(home, "generate", "--days", 2, "--lines-per-day", 10, "--end", LAST))
    assert f"for 2 days from {LAST - timedelta(days=1)}" in done.stdout
    assert f"factory run --from {LAST - timedelta(days=1)} --to {LAST}" in done.stdout
    assert len(list((home / "landing" / "transactions").iterdir())) == 2


def test_drop_refuses_without_yes_and_then_removes_only_the_demo_state(tmp_path):
    home = tmp_path / "home"
    ok(factory(home, "data", "generate", "--days", 2, "--lines-per-day", 10, "--end", LAST))
    (home / "warehouse.duckdb").write_bytes(b"not really a database")
    (home / "artifacts" / "models").mkdir(parents=True)
    (home / "notes.txt").write_text("mine")  # not demo state: stays
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.csv").write_text("a\n1\n")
    (home / "landing" / "linked").symlink_to(outside, target_is_directory=True)  # a link is removed, not followed
    files = len(list((home / "landing").rglob("*.*")))

    stderr = usage_error(factory(home, "data", "drop"), "add --yes", "nothing was deleted", str(home))
    assert "landing" in stderr and "warehouse.duckdb" in stderr
    assert (home / "landing").is_dir() and (home / "warehouse.duckdb").is_file()

    done = ok(factory(home, "data", "drop", "--yes", "--json"))
    report = json.loads(done.stdout)
    assert report["home"] == str(home)
    removed = {Path(r["path"]).name: r for r in report["removed"]}
    assert set(removed) == {"landing", "raw", "quarantine", "archive", "warehouse.duckdb", "artifacts", "dagster_home",
                            "partitions_start"}
    assert removed["landing"]["files"] == files
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]
    assert (outside / "keep.csv").read_text() == "a\n1\n"

    again = ok(factory(home, "data", "drop", "--yes"))
    assert "Nothing to remove" in again.stdout
    usage_error(factory(home, "run"), "no landed data", "factory data generate")


# ---- run ----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_run_reports_the_range_it_ran_as_one_json_object(world):
    report = world.report  # stdout parsed as JSON: nothing else (no dbt log) was printed there
    assert report["success"] is True and report["layer"] == "all" and report["job"] == "supply_chain_nightly"
    assert report["ok"] is False  # the run succeeded, but a check of severity ERROR failed: exit code 1
    assert (report["first_day"], report["last_day"]) == (str(RUN_FROM), str(LAST))  # --to: the last landed day
    assert report["trained_by"] is None and len(report["run_id"]) == 36 and report["seconds"] > 0
    materialized = set(report["materialized"])
    assert {f"raw_material/{s}" for s in RAW_SOURCES} <= materialized
    assert {"processing/fct_order_lines", "processing/daily_demand", "processing/customer_features",
            "assembly/customer_activity", "feedback/model_compliance"} <= materialized
    assert not any(k.endswith(("_predictions", "_monitoring", "_model")) for k in materialized)  # no champion yet
    daily = [f"raw_material/{s}" for s in RAW_SOURCES] + ["feedback/service_usage"]  # one per day of the range
    assert report["materializations"] == 8 * len(daily) + len(materialized) - len(daily)
    assert report["checks"]["failed"] == 1 and report["checks"]["failures"] == [
        {"asset": "raw_material/weather", "check": "landing_files_clean", "passed": False, "severity": "ERROR"}]
    assert report["checks"]["passed"] > 40
    assert report["failed_steps"] == []
    assert "feedback__late_delivery_monitoring" in report["skipped_steps"]


@pytest.mark.e2e
def test_run_shows_progress_as_it_goes(world):
    err = world.stderr.splitlines()
    waiting = (FIRST, RUN_FROM - timedelta(days=1))
    assert (f"note: landing files of {(waiting[1] - waiting[0]).days + 1} other day(s) are waiting in "
            f"{world.home / 'landing'} ({waiting[0]} .. {waiting[1]}); include them with --from {FIRST} --to {LAST}"
            ) in err
    assert f"Running supply_chain_nightly (the whole chain) for {RUN_FROM} .. {LAST} (8 days); " \
           f"FACTORY_HOME={world.home}" in err
    progress = [m.group(1) for line in err if (m := PROGRESS.match(line))]
    assert progress[0] == f"run {world.report['run_id']} started: supply_chain_nightly"
    span = f"8 days, {RUN_FROM} .. {LAST}"
    for source in RAW_SOURCES:
        assert f"raw_material/{source} materialized ({span})" in progress
    assert f"feedback/service_usage materialized ({span})" in progress
    for asset in world.report["materialized"]:
        if not asset.startswith("raw_material/") and asset != "feedback/service_usage":
            assert f"{asset} materialized" in progress
    assert progress.index(f"raw_material/transactions materialized ({span})") \
        < progress.index("processing/fct_order_lines materialized") \
        < progress.index("assembly/customer_activity materialized")
    assert ("  warning: late_delivery has no champion: no model has been through its promotion gate "
            "(run the assembly_training job): nothing scored.") in progress
    assert "raw_material/weather check landing_files_clean FAILED" in progress
    assert any(line.startswith(f"  error: Quarantined {BAD_FILE} (") for line in progress)
    seconds = [int(line[1:5]) for line in err if PROGRESS.match(line)]
    assert seconds == sorted(seconds)
    assert "Running with dbt" not in world.stderr and "PASS=" not in world.stderr  # dbt's own log is not echoed
    assert "Blocking asset check" not in world.stderr and "Warning" not in world.stderr


@pytest.mark.e2e
def test_the_warehouse_holds_exactly_what_landed_in_the_days_run(world):
    home = world.home
    lines = landed_on(world, "transactions", RUN_FROM, LAST)
    assert lines > 8 * 30
    assert query(home, "SELECT count(*) FROM raw.transactions")[0][0] == lines
    assert query(home, "SELECT count(*) FROM raw.deliveries")[0][0] == landed_on(world, "deliveries", RUN_FROM, LAST)
    assert query(home, "SELECT count(*) FROM marts.fct_order_lines")[0][0] == lines
    assert query(home, "SELECT sum(order_lines) FROM marts.daily_demand")[0][0] == lines
    assert query(home, "SELECT min(partition_date), max(partition_date), count(DISTINCT partition_date) "
                       "FROM raw.ingestion_log")[0] == (RUN_FROM, LAST, 8)
    # the core's sources: a business unit's files (customer_care's ticket_outcomes) wait for its own job
    still_landing = {p.name for p in (home / "landing").rglob("*") if p.is_file() and p.parent.name in RAW_SOURCES}
    assert still_landing == {name for name in world.files
                             if day_of(name) < str(RUN_FROM) and not name.startswith("ticket_outcomes_")}
    assert (home / "quarantine" / "weather" / BAD_FILE).is_file()  # the bad file added nothing
    assert query(home, "SELECT count(*) FROM raw.weather")[0][0] == landed_on(world, "weather", RUN_FROM, LAST)


@pytest.mark.e2e
def test_the_terminal_summary_of_the_same_run(world, capsys):
    from factory_assets.cli import print_report

    print_report(world.report)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"Run {world.report['run_id']} (supply_chain_nightly): SUCCESS in {world.report['seconds']:.0f} s"
    assert out[2] == f"Materialized: {len(world.report['materialized'])} assets " \
                     f"({world.report['materializations']} materializations)"
    assert out[3] == f"Asset checks: {world.report['checks']['passed']} passed, 1 failed"
    assert out[4] == "  failed: raw_material/weather landing_files_clean"
    assert out[5].startswith(f"Skipped {len(world.report['skipped_steps'])} steps whose inputs were not produced")
    assert out[6] == "Exit code 1: the run succeeded, but an asset check of severity ERROR failed"
    assert out[7] == f"Logs, failing rows and check details: `factory ui`, then Runs -> {world.report['run_id']}"


def test_run_plans_default_to_the_last_landed_day():
    from factory_assets.cli import UsageError, plan_run

    landed = [date(2025, 1, d) for d in (1, 2, 3, 5)]
    yesterday, landing = date(2026, 1, 1), Path("/x/landing")

    def plan(layer="all", day=None, first=None, last=None, waiting=()):
        return plan_run(layer, day, first, last, landed, list(waiting), yesterday, landing)

    assert (plan().first, plan().last, plan().notes) == (date(2025, 1, 5), date(2025, 1, 5), ())
    assert (plan(first=date(2025, 1, 2)).first, plan(first=date(2025, 1, 2)).last) == (date(2025, 1, 2), date(2025, 1, 5))
    assert plan(day=date(2025, 1, 3)).describe() == "supply_chain_nightly (the whole chain) for 2025-01-03"
    assert plan("raw_material", first=date(2025, 1, 1), last=date(2025, 1, 3)).describe() == \
        "layer raw_material for 2025-01-01 .. 2025-01-03 (3 days)"
    waiting = plan(waiting=landed[:3]).notes[0]
    assert "3 other day(s) are waiting in /x/landing (2025-01-01 .. 2025-01-03)" in waiting
    assert waiting.endswith("include them with --from 2025-01-01 --to 2025-01-05")
    assert plan("distribution", waiting=landed).notes == ()  # only layers that ingest mention the landing zone
    assert plan("assembly").trained_by is None and plan("assembly").first is None
    assert plan("assembly", day=date(2025, 1, 2)).describe() == \
        "assembly_training (feature sets, training, promotion gates) on what was known by the end of 2025-01-02"
    assert plan("processing").notes == () and "not partitioned" in plan("processing", day=date(2025, 1, 2)).notes[0]
    with pytest.raises(UsageError, match="no landed data under /x/landing"):
        plan_run("all", None, None, None, [], [], yesterday, landing)
    with pytest.raises(UsageError, match="not a complete day yet"):
        plan(day=date(2026, 1, 2))


def test_tables_align_their_columns():
    from factory_assets.cli import format_table

    assert format_table(["A", "LONGER"], [["xyz", None], ["w", 1.5]]).splitlines() == [
        "A    LONGER", "xyz  -", "w    1.5"]


# ---- listings -----------------------------------------------------------------------------


def test_use_cases_list_with_tiers_and_no_models_yet(landed):
    rows = json.loads(ok(factory(landed.home, "use-cases", "--json")).stdout)
    from factory_assets.assembly.specs import load_use_cases

    # every location's use cases, the business units' included
    assert {r["name"]: r["risk_tier"] for r in rows} == {n: s.risk_tier for n, s in load_use_cases().items()}
    assert {r["name"]: r["risk_tier"] for r in rows if r["business_unit"] != "customer_care"} == {
        "late_delivery": "medium", "demand_forecast": "low", "purchase_propensity": "high"}
    assert all(r["champion"] is None and r["challenger"] is None and r["owner"].startswith("team:") for r in rows)
    table = ok(factory(landed.home, "use-cases")).stdout.splitlines()
    assert table[0].split() == ["USE", "CASE", "TEMPLATE", "RISK", "BUSINESS", "UNIT", "OWNER", "CHAMPION", "METRIC",
                                "CHALLENGER"]
    late = next(line for line in table if line.startswith("late_delivery "))
    assert late.split()[:5] == ["late_delivery", "binary_classification", "medium", "logistics",
                                "team:logistics-analytics"]
    assert "factory run --layer assembly" in table[-1]


def test_models_of_a_use_case_without_training_is_an_empty_list(landed):
    assert json.loads(ok(factory(landed.home, "models", "late_delivery", "--json")).stdout) == []
    text = ok(factory(landed.home, "models", "late_delivery")).stdout
    assert "No models registered for late_delivery yet" in text and "factory run --layer assembly" in text


# ---- errors: one message naming the file and the field, never a traceback (issue 19, item 6) ----

#: `factory recover` (issue 19, item 12) and its options; test_top_level_help_... reads OPTIONS.
OPTIONS["recover"] = ["--force", "--raw-only", "--json"]

BAD_POLICY = "version: 1.0.0\ntiers: {low: {min_lift: high}}\n"


def _broken_contract(folder: Path) -> Path:
    """A copy of a product contract whose first column has a type no contract may have."""
    from factory_assets.settings import CONTRACTS_DIR

    text = (CONTRACTS_DIR / "products" / "calendar.odcs.yaml").read_text()
    path = folder / "calendar.odcs.yaml"
    path.write_text(text.replace("physicalType: DATE", "physicalType: DAYTE", 1))
    return path


def test_recover_documents_its_options(tmp_path):
    done = ok(factory(tmp_path, "recover", "--help"))
    assert done.stdout.startswith("usage: factory recover")
    assert all(option in done.stdout for option in OPTIONS["recover"]) and "raw store" in done.stdout


def test_a_bad_policy_file_is_one_message_naming_the_file_and_the_field(tmp_path, monkeypatch):
    policy = tmp_path / "policy.yaml"
    policy.write_text(BAD_POLICY)
    monkeypatch.setenv("FACTORY_POLICY_FILE", str(policy))
    err = usage_error(factory(tmp_path / "home", "promote", "late_delivery"), f"{policy}: invalid policy",
                      "field 'tiers.low.min_lift'")
    assert "pydantic" not in err and "ValidationError" not in err
    policy.write_text("tiers: [\n")  # not even YAML
    usage_error(factory(tmp_path / "home", "promote", "late_delivery"), f"{policy}, line 2, column 1: cannot read YAML")


def test_a_contract_error_reaching_the_command_line_is_its_message(tmp_path, monkeypatch, capsys):
    from factory_assets import cli
    from factory_assets.cli.commands import models
    from factory_assets.lib.contracts import load_contract

    contract = _broken_contract(tmp_path)
    monkeypatch.setattr(models, "cmd_use_cases", lambda _args: load_contract(contract))
    assert cli.main(["use-cases"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"factory use-cases: error: {contract}: ") and "physicalType 'DAYTE'" in err
    assert "Traceback" not in err


def test_a_run_step_failing_on_a_policy_or_contract_shows_the_file_and_the_field(tmp_path):
    """What `factory run` prints for a failed step: the project's error (file and field), not the
    pydantic ValidationError or YAML error it wraps (before: 'pydantic_core._pydantic_core.ValidationError:
    14 validation errors for Policy')."""
    import dagster as dg

    from factory_assets.cli import run_report
    from factory_assets.governance.policy import load_policy
    from factory_assets.lib.contracts import load_contract

    policy, contract = tmp_path / "policy.yaml", _broken_contract(tmp_path)
    policy.write_text(BAD_POLICY)

    @dg.asset
    def scores():
        load_policy(policy)

    @dg.asset
    def reads_contract():
        load_contract(contract)

    report = run_report(dg.materialize([scores, reads_contract], raise_on_error=False), 1.0)
    errors = {step["step"]: step["error"] for step in report["failed_steps"]}
    assert errors["scores"].startswith(f"{policy}: invalid policy: ") and "field 'tiers.low.min_lift'" in errors["scores"]
    assert errors["reads_contract"].startswith(f"{contract}: ") and "physicalType 'DAYTE'" in errors["reads_contract"]
    assert not any("pydantic" in e or "ValidationError" in e for e in errors.values())


@pytest.fixture(scope="module")
def one_model(tmp_path_factory):
    """A FACTORY_HOME whose registry holds one small LightGBM champion (a few seconds)."""
    import numpy as np
    import polars as pl

    from factory_assets.assembly.registry import ModelRegistry
    from factory_assets.assembly.templates import fit_template
    from factory_assets.assembly.feature_schema import infer_feature_schema

    rng = np.random.default_rng(3)
    n = 600
    frame = pl.DataFrame({"split_time": [date(2026, 1, 1) + timedelta(days=i % 30) for i in range(n)],
                          "spend": rng.gamma(2.0, 50.0, n), "visits": rng.integers(0, 20, n)})
    frame = frame.with_columns(churned=pl.Series((frame["spend"].to_numpy() < 80) ^ (rng.random(n) < 0.1)).cast(pl.Int8))
    result = fit_template("binary_classification", frame, target="churned", feature_columns=["spend", "visits"],
                          time_column="split_time", engine="lightgbm", metric="auc", device="cpu",
                          params={"num_threads": 1})
    home = tmp_path_factory.mktemp("scoring") / "home"
    registry = ModelRegistry(home / "artifacts" / "models")
    version = registry.register("churn_demo", result.model, metrics=result.metrics,
                                baseline_metrics=result.baseline_metrics,
                                extra={"categories": result.categories, "template": "binary_classification",
                                       "feature_schema": infer_feature_schema(frame, ["spend", "visits"],
                                                                              result.categories)})
    registry.set_alias("churn_demo", "champion", version.version, reason="test")
    rows = home / "rows.csv"
    frame.head(20).write_csv(rows)
    return SimpleNamespace(home=home, rows=rows, version=registry.get("churn_demo", "champion"))


@pytest.mark.parametrize("damage", ["model file altered", "model file deleted", "manifest not JSON"])
def test_score_with_a_bad_model_file_exits_2_with_a_message(one_model, tmp_path, damage):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(one_model.home, home)
    version = home / "artifacts" / "models" / "churn_demo" / one_model.version.version
    model = next(p for p in version.iterdir() if p.name.startswith("model."))
    if damage == "model file altered":
        model.write_bytes(model.read_bytes() + b"\n")
    elif damage == "model file deleted":
        model.unlink()
    else:
        (version / "manifest.json").write_text('{"use_case": "churn_demo", ')
    err = usage_error(factory(home, "score", "churn_demo", home / "rows.csv"), "churn_demo")
    assert err.startswith("factory score: ") and len(err.strip().splitlines()) <= 3
