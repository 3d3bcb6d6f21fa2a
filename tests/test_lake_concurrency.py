"""Two code locations' nightly runs at once on one lake (issue 21): the core's chain (simulated
shop: raw -> dbt products) and a business unit's (the clinic of test_onboard_domain: its own raw
feed and dbt project), each in its own process, started together on one FACTORY_HOME. With the
DuckDB file one had to wait for the other; on the lake both write under snapshot isolation, and
every table ends with exactly the rows that landed, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

import test_onboard_domain as clinic
from factory_assets.lib.warehouse import open_warehouse
from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data
from factory_assets.settings import FactoryPaths

pytestmark = pytest.mark.e2e

DAYS = 21
START, LAST = clinic.START, clinic.START + timedelta(days=DAYS - 1)


def drive(location: str, out: str, last: str | None = None) -> None:
    """One location's nightly run over every day up to ``last`` (raw + products), in the process the
    test (or bench/bench_lake.py) starts."""
    import dagster as dg

    from factory_assets.public import FactoryStore, business_unit_definitions

    store = FactoryStore(home=os.environ["FACTORY_HOME"])
    if location == "core":
        from factory_assets.definitions import build_definitions

        defs, job = build_definitions(store), "supply_chain_nightly"
    else:
        unit = Path(os.environ["ONBOARD_UNIT_DIR"])
        sys.path.insert(0, str(unit))
        defs, job = business_unit_definitions(unit / clinic.UNIT / "definitions.py", store), f"{clinic.UNIT}_nightly"
    graph = defs.resolve_asset_graph()
    selection = [k for k in graph.get_all_asset_keys() if k.path[0] in ("raw_material", "processing")]
    started = time.time()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=selection,
        tags=clinic._range_tags(START, date.fromisoformat(last) if last else LAST),
        run_config=clinic.QUIET, raise_on_error=False)
    summary = clinic._summary(result)
    Path(out).write_text(json.dumps({"success": summary["success"], "failures": summary["failures"],
                                     "started": started, "ended": time.time()}))


def test_two_locations_write_one_lake_at_once_and_every_row_lands_once(tmp_path):
    repo = clinic.copy_repository(tmp_path / "repo")
    unit = clinic.onboard(repo)
    home = tmp_path / "home"
    visits = clinic.generate_visits(START, DAYS)
    clinic.land(home / "landing", visits)
    generate_demo_data(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=60, seed=11, n_products=30),
                       home / "landing")
    landed_lines = sum(p.read_text().count("\n") - 1 for p in (home / "landing" / "transactions").iterdir())
    env = {**os.environ, "FACTORY_HOME": str(home), "FACTORY_WORKSPACE": str(repo / "workspace.yaml"),
           "FACTORY_PARTITIONS_START": START.isoformat(), "ONBOARD_UNIT_DIR": str(unit), "PYTHONPATH": str(repo),
           "DO_NOT_TRACK": "1"}
    env.pop("FACTORY_WAREHOUSE_PATH", None)
    runs = {}
    for location in ("core", "clinic"):
        out = tmp_path / f"{location}.json"
        code = (f"import sys; sys.path.insert(0, {str(repo / 'tests')!r}); import test_lake_concurrency as t; "
                f"t.drive({location!r}, {str(out)!r})")
        runs[location] = (subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True), out)
    reports = {}
    for location, (proc, out) in runs.items():
        output, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0 and out.is_file(), f"{location}: exit {proc.returncode}\n{output[-5000:]}"
        reports[location] = json.loads(out.read_text())
        assert reports[location]["success"], (location, reports[location]["failures"])
    core, unit_run = reports["core"], reports["clinic"]
    assert core["started"] < unit_run["ended"] and unit_run["started"] < core["ended"]  # they did overlap

    with open_warehouse(FactoryPaths(home)) as conn:
        def one(sql: str):
            return conn.execute(sql).fetchone()

        assert one(f"select count(*), count(distinct visit_id) from raw.{clinic.SOURCE}") == (len(visits), len(visits))
        assert one(f"select count(*) from clinic.{clinic.PRODUCT}")[0] == len(visits)
        assert one("select count(*) from raw.transactions")[0] == landed_lines
        lines, distinct = one("select count(*), count(distinct order_line_id) from marts.fct_order_lines")
        assert lines == distinct == landed_lines  # one order line per landed line, none twice
        ledger = dict(conn.execute("select source, count(*) from raw.ingestion_log group by 1").fetchall())
    assert ledger[clinic.SOURCE] == DAYS and ledger["transactions"] == DAYS  # each file once
