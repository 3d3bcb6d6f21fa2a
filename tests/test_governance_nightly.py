"""Governance's view is built every night, whatever the state of each use case.

``feedback/model_compliance`` and ``feedback/use_case_portfolio`` read every use case's monitoring.
A monitoring asset never hands Dagster an output (it records its partitions as materialization
events, and nothing at all while its use case has no champion); with the monitors as plain deps,
Dagster skipped the governance steps every night and the portfolio read "Never materialized". Here
the nightly job runs on a small world (one champion, one challenger waiting, the rest untrained;
no monitor produces anything) and both assets must be built in that run, after the monitors.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest

from factory_assets.assembly.specs import load_use_cases
from factory_assets.feedback.assets import USAGE_KEY
from factory_assets.keys import COMPLIANCE_KEY, PORTFOLIO_KEY, monitoring_key
from factory_assets.lib.warehouse import open_warehouse

NIGHT = date(2025, 2, 10)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CHAMPION, WAITING = "late_delivery", "demand_forecast"


def _register(registry, use_case: str, template: str, target: str) -> str:
    from factory_assets.assembly.templates import fit_template

    rng = np.random.default_rng(0)
    n = 400
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 - 0.5 * x2 + rng.normal(size=n) > 0).astype(np.int8) if template == "binary_classification" \
        else 10 + 3 * x1 + rng.normal(size=n)
    frame = pl.DataFrame({"t": [date(2025, 1, 1) + timedelta(days=i // 10) for i in range(n)],
                          "x1": x1, "x2": x2, target: y})
    metric = "auc" if template == "binary_classification" else "wape"
    result = fit_template(template, frame, target=target, feature_columns=["x1", "x2"], time_column="t",
                          engine="lightgbm", device="cpu", params={"num_threads": 1}, metric=metric)
    version = registry.register(use_case, result.model, metrics=result.metrics, baseline_metrics=result.baseline_metrics,
                                code_version="test", created_by="tester",
                                extra={"test_window": list(result.test_window), "reference": {"file": "none"}})
    registry.set_alias(use_case, "challenger", version.version, "test: trained", actor="test")
    return version.version


@pytest.fixture
def world(paths):
    from factory_assets.definitions import build_definitions
    from factory_assets.resources import FactoryStore

    with open_warehouse(paths):  # an empty warehouse: nothing scored yet
        pass
    store = FactoryStore(home=str(paths.home))
    registry = store.registry()
    champion = _register(registry, CHAMPION, "binary_classification", "is_late")
    registry.set_alias(CHAMPION, "champion", champion, "test: promoted", actor="test")
    _register(registry, WAITING, "regression", "units")  # a challenger, never promoted (awaiting approvals)
    return build_definitions(store)


def _steps(result, kind: str) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type_value == kind]


def test_the_nightly_run_builds_compliance_and_portfolio_when_no_monitor_produced_anything(world, paths):
    specs = load_use_cases()
    own = [n for n in specs if world.resolve_asset_graph().has(monitoring_key(n))]
    assert CHAMPION in own and WAITING in own
    instance = dg.DagsterInstance.ephemeral()
    result = world.resolve_job_def("supply_chain_nightly").execute_in_process(
        instance=instance, run_config=QUIET, partition_key=NIGHT.isoformat(),
        asset_selection=[*(monitoring_key(n) for n in own), COMPLIANCE_KEY, PORTFOLIO_KEY])
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == {COMPLIANCE_KEY, PORTFOLIO_KEY}  # no monitor had anything to record
    assert _steps(result, "STEP_SKIPPED") == []

    # the governance steps ran after every monitor of the run
    finished = _steps(result, "STEP_SUCCESS")
    monitors = [i for i, s in enumerate(finished) if s.endswith("_monitoring")]
    assert len(monitors) == len(own)
    compliance = next(i for i, s in enumerate(finished) if s.endswith(".model_compliance"))
    portfolio = next(i for i, s in enumerate(finished) if s.endswith(".use_case_portfolio"))
    assert max(monitors) < compliance < portfolio

    with open_warehouse(paths) as conn:
        rows = conn.execute("select use_case, status, champion_version, health from governance.portfolio").fetchall()
        failing = conn.execute("select count(*) from governance.model_compliance "
                               "where use_case = ? and not passed", [CHAMPION]).fetchone()[0]
        judged = {r[0] for r in conn.execute("select distinct use_case from governance.model_compliance").fetchall()}
    status = {r[0]: r[1] for r in rows}
    assert sorted(status) == sorted(specs)  # one row per use case
    assert judged == {CHAMPION}  # compliance judges the champions
    assert status[CHAMPION] == ("non_compliant" if failing else "champion")
    assert status[WAITING] == "challenger_only"
    assert {s for n, s in status.items() if n not in (CHAMPION, WAITING)} == {"not_trained"}
    assert all(health == "no monitoring yet" for _, _, _, health in rows)

    record = instance.get_latest_materialization_event(PORTFOLIO_KEY)
    assert record.run_id == result.run_id
    assert record.asset_materialization.metadata["statuses"].value == status
    check = next(e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
                 and e.event_specific_data.asset_key == COMPLIANCE_KEY)
    assert check.check_name == "champions_compliant"
    assert check.passed == (not failing)


def test_the_portfolio_is_lineage_downstream_of_compliance_and_every_monitor(world):
    graph = world.resolve_asset_graph()
    own = [k for k in graph.get_all_asset_keys() if k.path[0] == "feedback" and k.path[-1].endswith("_monitoring")]
    assert own
    assert set(graph.get(PORTFOLIO_KEY).parent_keys) == {COMPLIANCE_KEY, *own, USAGE_KEY}  # usage: measured value
    assert set(own) <= set(graph.get(COMPLIANCE_KEY).parent_keys)
    assert [c.name for c in graph.get(COMPLIANCE_KEY).check_keys] == ["champions_compliant"]
    for key in (COMPLIANCE_KEY, PORTFOLIO_KEY):
        node = graph.get(key)
        assert node.group_name == "feedback" and set(node.kinds) == {"duckdb", "python"}
        assert node.owners == ["team:model-risk"] and "every night" in node.description


# ---- the same on a world built through the whole chain (dbt, training, scoring, monitoring) ----

START, DAYS = date(2025, 1, 6), 42
LAST_NIGHT = START + timedelta(days=DAYS - 1)
RANGE = "dagster/asset_partition_range_{}"


@pytest.mark.e2e
@pytest.mark.timeout(1200)
def test_a_night_with_one_champion_monitors_it_then_builds_governance_for_every_use_case(paths):
    """History through the nightly chain, a late_delivery champion, then one more night: its
    monitor records the night, and compliance and portfolio are built after it, with every use
    case (the others have no champion: their scoring and monitoring produce nothing)."""
    from factory_assets.definitions import build_definitions
    from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data
    from factory_assets.resources import FactoryStore

    generate_demo_data(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=120, seed=11), paths.landing)
    defs = build_definitions(FactoryStore(home=str(paths.home)))
    instance = dg.DagsterInstance.ephemeral()
    nightly = defs.resolve_job_def("supply_chain_nightly")
    history = nightly.execute_in_process(instance=instance, run_config=QUIET, tags={
        RANGE.format("start"): START.isoformat(), RANGE.format("end"): (LAST_NIGHT - timedelta(days=1)).isoformat()})
    assert history.success
    training = defs.resolve_job_def("assembly_training").execute_in_process(
        instance=instance, run_config=QUIET,
        asset_selection=[dg.AssetKey(["assembly", f"{CHAMPION}{s}"]) for s in ("_training_set", "_model", "_champion")])
    assert training.success

    night = nightly.execute_in_process(instance=instance, run_config=QUIET, partition_key=LAST_NIGHT.isoformat())
    assert night.success
    materialized = {e.asset_key for e in night.get_asset_materialization_events()}
    assert {COMPLIANCE_KEY, PORTFOLIO_KEY, monitoring_key(CHAMPION)} <= materialized
    assert not {monitoring_key(n) for n in load_use_cases() if n != CHAMPION} & materialized  # no champion
    finished = _steps(night, "STEP_SUCCESS")
    assert finished.index(f"feedback__{CHAMPION}_monitoring") < next(
        i for i, s in enumerate(finished) if s.endswith(".use_case_portfolio"))

    with open_warehouse(paths) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "select use_case, status, champion_version, health from governance.portfolio").fetchall()}
        failing = conn.execute("select count(*) from governance.model_compliance where use_case = ? and not passed",
                               [CHAMPION]).fetchone()[0]
    assert sorted(rows) == sorted(load_use_cases())
    status, version, health = rows[CHAMPION]
    assert status == ("non_compliant" if failing else "champion") and version
    assert health.startswith(f"{LAST_NIGHT.isoformat()}: ")  # tonight's monitoring, not the night before
    assert {rows[n][0] for n in rows if n != CHAMPION} == {"not_trained"}
    # measured value beside the estimate: lead time (the declaration's first commit to tonight's first
    # promotion), compute of the nights that ran its steps, and the calls of its service that landed
    with open_warehouse(paths) as conn:
        measured = {r[0]: r[1:] for r in conn.execute(
            "select use_case, lead_time_days, compute_s_per_night, service_calls_30d, estimated_hours_saved_per_week "
            "from governance.portfolio").fetchall()}
        calls = dict(conn.execute("select service, sum(calls) from feedback.service_usage_daily where usage_date > ? "
                                  "group by 1", [LAST_NIGHT - timedelta(days=30)]).fetchall())
    lead, compute, _, _ = measured[CHAMPION]
    assert lead is not None and lead > 0 and compute is not None and compute > 0
    assert all(measured[n][0] is None for n in measured if n != CHAMPION)  # never promoted: no lead time yet
    assert {n: measured[n][2] for n in measured} == {n: calls.get(n, 0) for n in measured}
    assert calls.get("late_delivery", 0) > 0 and calls.get("demand_forecast", 0) > 0

    # the night's drift report says on the page whose it is, which day, against what, within which limits
    from factory_assets.feedback.monitoring import monitoring_config

    page = (paths.artifacts / "reports" / CHAMPION / LAST_NIGHT.isoformat() / "data_drift.html").read_text()
    title = f"{CHAMPION}: data drift on {LAST_NIGHT.isoformat()}"
    assert f"<title>{title}</title>" in page and f">{title}</h1>" in page
    limit = monitoring_config().tiers[load_use_cases()[CHAMPION].risk_tier].max_drift_share
    for fragment in (f"model {version}&#x27;s drift reference: the scoring sets of 7 days from",
                     f"max_drift_share {limit:g} (share of drifted feature columns",
                     f"{LAST_NIGHT.isoformat()}: the day&#x27;s scoring batch"):
        assert fragment in page, fragment
