"""The contracts of the warehouse's tables pass the Data Contract CLI's own test, `datacontract test`.

Every contract of a table in the warehouse (data products, feature sets, prediction products, and the
contract the factory generates for a use case that has none) declares the warehouse as an ODCS duckdb
server, so the Data Contract CLI (https://cli.datacontract.com) can test it: it checks every column's
presence, type and required-ness, the ranges, patterns and accepted values, and the grain. The CLI
lives in its own virtual environment, .venv-datacontract (`python3 tasks.py setup`; its pins conflict
with the project's).

The module builds one small warehouse with the factory's own code: simulated landing files, the raw
ingestion, `dbt run` by hand (FACTORY_HOME set, no FACTORY_WAREHOUSE_PATH: the profile's default),
the feature-set assets, and the prediction products written by the scoring code with a
stand-in model (constant scores; every other column is what the factory writes). Then the CLI tests
each contract against it, as committed (the server's own path, `.factory/warehouse.duckdb` from the
project root), offline where this machine can take the network away (`unshare -n`). A copy with one
NULL in a required column must fail, read through DATACONTRACT_DUCKDB_DATABASE (how an installation
gives its own warehouse). Last, `dbt debug` by hand finds the default warehouse without
FACTORY_WAREHOUSE_PATH, and by default attaches the lake under FACTORY_HOME. The CLI has no DuckLake
server type, so the module builds the warehouse as the single DuckDB file (FACTORY_WAREHOUSE=duckdb).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pytest

from factory_assets.lib.contracts import CONTRACTS_DIR, WAREHOUSE_SERVER, load_contract
from factory_assets.lib.warehouse import open_warehouse
from factory_assets.settings import FactoryPaths

REPO_ROOT = Path(__file__).resolve().parents[1]
DATACONTRACT = REPO_ROOT / ".venv-datacontract" / ("Scripts" if os.name == "nt" else "bin") / "datacontract"
DBT = Path(sys.executable).parent / "dbt"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

#: Every contract of a warehouse table; the generated prediction contract is added by the fixture.
CONTRACTS = sorted(p for kind in ("products", "features", "predictions") for p in (CONTRACTS_DIR / kind).glob("*.odcs.yaml"))
GENERATED = "generated/late_delivery"

START, DAYS = date(2025, 3, 3), 21
END = START + timedelta(days=DAYS - 1)

#: Variables that would point a tool at another warehouse than the one a test means.
WAREHOUSE_VARIABLES = ("FACTORY_WAREHOUSE_PATH", "FACTORY_HOME", "DATACONTRACT_DUCKDB_DATABASE",
                       "DATACONTRACT_DUCKDB_SCHEMA", "DBT_PROFILES_DIR", "DBT_PROJECT_DIR")


def _contract_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name.removesuffix('.odcs.yaml')}"


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in WAREHOUSE_VARIABLES}
    return {**env, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **extra}


@cache
def _offline() -> list[str]:
    """`unshare -n` where it works here (root, or user namespaces): the CLI then runs with no network
    at all, so a check that tried to reach one (an extension download, a schema fetch) fails."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


def datacontract_test(contract: Path, cwd: Path, output: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
    """`datacontract test CONTRACT --server warehouse` with its JSON report; (process, report or None)."""
    if not DATACONTRACT.exists():
        pytest.fail(f"{DATACONTRACT} not found: `python3 tasks.py setup` creates .venv-datacontract with the "
                    "Data Contract CLI (tasks.py DATACONTRACT_CLI)")
    output.unlink(missing_ok=True)
    command = [*_offline(), str(DATACONTRACT), "test", str(contract), "--server", WAREHOUSE_SERVER,
               "--output-format", "json", "--output", str(output)]
    process = subprocess.run(command, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True, timeout=300)
    report = json.loads(output.read_text()) if output.is_file() else None
    return process, report


class StandInModel:
    """Constant scores in each prediction's range; the scoring code does everything else."""

    def __init__(self, feature: str, score: float):
        self.feature_names = (feature,)
        self.score = score

    def predict(self, X) -> np.ndarray:
        return np.full(X.shape[0], self.score)


def _build_warehouse(root: Path) -> tuple[Path, Path]:
    """root/.factory/warehouse.duckdb built by the factory's code; returns it and the generated contract."""
    import dagster as dg

    from factory_assets.assembly.assets import feature_set_asset
    from factory_assets.assembly.features import FEATURE_SETS
    from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases
    from factory_assets.assembly.training_sets import import_builder
    from factory_assets.distribution.prediction_contract import write_prediction_contract
    from factory_assets.distribution.scoring import score_days
    from factory_assets.lib.prediction_tables import ensure_prediction_tables
    from factory_assets.lib.contract_checks import evaluate_contract
    from factory_assets.lib.contracts import feature_contract, prediction_contract
    from factory_assets.raw_material.ingest import ingest_partitions
    from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data
    from factory_assets.resources import FactoryStore
    from factory_assets.settings import RAW_SOURCES, FactoryPaths

    home = root / ".factory"
    paths = FactoryPaths(home).create()
    generate_demo_data(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=30, seed=11), paths.landing)
    with open_warehouse(paths) as conn:
        for source in RAW_SOURCES:
            outcomes = ingest_partitions(conn, paths, source, None, first_day=START, today=END)
            assert outcomes and all(o.status == "ingested" for o in outcomes), (source, outcomes)
        ensure_prediction_tables(conn)  # the operations models read the prediction products

    # dbt by hand: FACTORY_HOME only, the profile finds FACTORY_HOME/warehouse.duckdb. `run`, not `build`:
    # the dbt tests (tests/test_dbt_project.py) would double the time; the enforced contracts still hold.
    build = subprocess.run(
        [str(DBT), "run", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(root / "dbt_target"), "--log-path", str(root / "dbt_logs"), "--quiet", "--no-use-colors"],
        cwd=root, env=_clean_env(FACTORY_HOME=str(home)), capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]

    assets = [feature_set_asset(f, feature_contract(name)) for name, f in FEATURE_SETS.items()]
    result = dg.materialize(assets, resources={"store": FactoryStore(home=str(home))})
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())  # the factory's own contract checks

    generated = None
    with open_warehouse(paths) as conn:
        for name, spec in load_use_cases(USE_CASES_DIR).items():
            model = StandInModel(spec.entity[0], 3.0 if spec.template == "forecasting" else 0.25)
            written = score_days(conn, spec, import_builder(spec.training_set.builder, name), model, {},
                                 model_version="0123456789abcdef", table=prediction_contract(name).physical_name,
                                 days=[END - timedelta(days=1), END], snapshot_folder=root / "snapshots" / name)
            assert all(rows.height for rows in written.values()), name
            if name == "late_delivery":  # a use case without a contract of its own gets this one
                contract = write_prediction_contract(spec, dict(written[END].schema), root / "generated")
                assert evaluate_contract(conn, contract).passed  # the factory's own check, as after scoring
                generated = contract.path
        for path in CONTRACTS:
            relation = load_contract(path).physical_name
            assert conn.execute(f"select count(*) from {relation}").fetchone()[0] > 0, relation
    return paths.warehouse, generated


@pytest.fixture(scope="module", autouse=True)
def _duckdb_file_warehouse():
    """The Data Contract CLI's duckdb server opens a DuckDB file; it has no DuckLake server type, so
    this module builds the warehouse as the single file (FACTORY_WAREHOUSE=duckdb). The same
    contracts hold on the lake: the factory's own contract checks run there on every build."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_WAREHOUSE", "duckdb")
    yield
    patch.undo()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("datacontract")
    database, generated = _build_warehouse(root)
    contracts = {**{_contract_id(p): p for p in CONTRACTS}, GENERATED: generated}
    reports = root / "reports"
    reports.mkdir()

    def run(item):
        name, path = item
        return name, datacontract_test(path, root, reports / f"{name.replace('/', '__')}.json")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(pool.map(run, contracts.items()))
    return {"root": root, "database": database, "contracts": contracts, "results": results}


def test_the_committed_contracts_are_all_tested():
    assert len(CONTRACTS) >= 13
    assert {p.parent.name for p in CONTRACTS} == {"products", "features", "predictions"}


@pytest.mark.parametrize("name", [*map(_contract_id, CONTRACTS), GENERATED])
def test_datacontract_test_passes_every_check(warehouse, name):
    process, report = warehouse["results"][name]
    contract = load_contract(warehouse["contracts"][name])
    assert report is not None, f"no JSON report from `datacontract test`:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
    failed = [(c["key"], c["result"], c.get("reason")) for c in report["checks"] if c["result"] != "passed"]
    assert process.returncode == 0 and report["result"] == "passed" and not failed, (failed, process.stdout[-3000:])
    assert report["dataContractId"] == contract.id and report["server"] == WAREHOUSE_SERVER
    assert len(report["checks"]) > 0
    # the CLI read the table itself: every column of the contract was found in it, with its type
    found = {c["field"] for c in report["checks"] if c["type"] == "field_is_present"}
    typed = {c["field"] for c in report["checks"] if c["type"] == "field_type"}
    assert found == typed == set(contract.column_names)
    assert any(c["type"] == "model_duplicate_values" for c in report["checks"]), "the grain is checked"


def test_a_null_in_a_required_column_fails_datacontract_test(warehouse, tmp_path):
    """The same CLI call on a copy with one NULL in a required column fails, and says which column."""
    broken = tmp_path / "broken.duckdb"
    shutil.copyfile(warehouse["database"], broken)
    with duckdb.connect(str(broken)) as conn:
        conn.execute("alter table marts.fct_order_lines alter column region drop not null")  # dbt's constraint
        conn.execute("update marts.fct_order_lines set region = null "
                     "where order_line_id = (select min(order_line_id) from marts.fct_order_lines)")
    contract = CONTRACTS_DIR / "products" / "fct_order_lines.odcs.yaml"
    env = _clean_env(DATACONTRACT_DUCKDB_DATABASE=str(broken))  # an installation's own warehouse file
    process, report = datacontract_test(contract, warehouse["root"], tmp_path / "report.json", env)
    assert report is not None, process.stdout[-3000:] + process.stderr[-3000:]
    assert process.returncode != 0 and report["result"] == "failed"
    failed = {c["key"] for c in report["checks"] if c["result"] != "passed"}
    assert failed == {"fct_order_lines__region__field_required"}, failed
    passed = sum(c["result"] == "passed" for c in report["checks"])
    assert passed == len(report["checks"]) - 1 == len(warehouse["results"]["products/fct_order_lines"][1]["checks"]) - 1


# --------------------------------------------------------------------------------------------------
# dbt by hand: the profile's default warehouse
# --------------------------------------------------------------------------------------------------


def _dbt_debug_path(cwd: Path, *args: str, **env: str) -> Path:
    """The warehouse `dbt debug` connects to (its `path:` line, from ``cwd``); the connection must work."""
    process = subprocess.run([str(DBT), "debug", "--no-use-colors", *args], cwd=cwd, env=_clean_env(**env),
                             capture_output=True, text=True, timeout=300)
    out = process.stdout + process.stderr
    match = re.search(r"^\S*\s+path: (.+)$", out, re.M)
    assert match and "Connection test: [OK connection ok]" in out, out[-3000:]
    return (cwd / match.group(1).strip()).resolve()


def _project(root: Path) -> Path:
    """The repository's layout, without its warehouse: dbt_project/ (the profile) beside an empty .factory/."""
    (root / "dbt_project").mkdir(parents=True)
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copyfile(DBT_PROJECT_DIR / name, root / "dbt_project" / name)
    (root / ".factory").mkdir()
    return root


def test_dbt_by_hand_finds_the_default_warehouse_without_factory_warehouse_path(tmp_path):
    one, two, home = _project(tmp_path / "one"), _project(tmp_path / "two"), tmp_path / "home"
    home.mkdir()
    with ThreadPoolExecutor(max_workers=3) as pool:  # three projects: no two open one DuckDB file
        in_project = pool.submit(_dbt_debug_path, one / "dbt_project")  # `cd dbt_project && dbt build`
        from_root = pool.submit(_dbt_debug_path, two, "--project-dir", "dbt_project", "--profiles-dir", "dbt_project")
        with_home = pool.submit(_dbt_debug_path, _project(tmp_path / "three") / "dbt_project", FACTORY_HOME=str(home))
    assert in_project.result() == (one / ".factory" / "warehouse.duckdb").resolve()
    assert from_root.result() == (two / ".factory" / "warehouse.duckdb").resolve()
    assert with_home.result() == home / "warehouse.duckdb"
    assert all(p.is_file() for p in (in_project.result(), from_root.result(), with_home.result()))


def test_dbt_by_hand_attaches_the_lake_by_default(tmp_path, monkeypatch):
    """Without FACTORY_WAREHOUSE the profile's target is the lake under FACTORY_HOME, once a factory
    command has installed the extensions there."""
    monkeypatch.delenv("FACTORY_WAREHOUSE")
    home = tmp_path / "home"
    with open_warehouse(FactoryPaths(home)) as conn:  # what any factory command does first
        conn.execute("create schema marts")
        conn.execute("create table marts.visible as select 42 as answer")
    project = _project(tmp_path / "lake") / "dbt_project"
    process = subprocess.run([str(DBT), "debug", "--no-use-colors"], cwd=project,
                             env=_clean_env(FACTORY_HOME=str(home)), capture_output=True, text=True, timeout=300)
    out = process.stdout + process.stderr
    assert "Connection test: [OK connection ok]" in out and "database: lake" in out, out[-3000:]
    shown = subprocess.run([str(DBT), "show", "--inline", "select answer from lake.marts.visible", "--no-use-colors"],
                           cwd=project, env=_clean_env(FACTORY_HOME=str(home)), capture_output=True, text=True,
                           timeout=300)
    assert shown.returncode == 0 and "42" in shown.stdout, shown.stdout[-3000:] + shown.stderr[-2000:]
