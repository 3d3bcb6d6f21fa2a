"""The feedback loop end to end at small scale, through Dagster on warehouses built by the real chain.

World with drift (simulator's scenario from DRIFT: a new late-prone sales channel, a degraded
supplier, higher prices): champions trained on what was known at DRIFT score the days around it,
Evidently monitoring flags late_delivery after DRIFT and not before (demand_forecast is not
affected), the sensor requests a retraining run for late_delivery only, and the retrained
challenger beats the degraded champion on post-drift data and is promoted. World without drift:
nothing is flagged and no retraining is requested.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from datetime import date, timedelta
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest

from factory_assets.assembly.registry import ModelRegistry
from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases
from factory_assets.assembly.templates import evaluate_on_holdout
from factory_assets.definitions import build_definitions
from factory_assets.distribution.scoring import snapshot_id
from factory_assets.feedback.assets import monitoring_key
from factory_assets.raw_material.simulator import DriftScenario, SimulationConfig, generate_demo_data
from factory_assets.resources import FactoryStore
from factory_assets.settings import FactoryPaths, artifacts_url
from factory_assets.lib.warehouse import open_warehouse

pytestmark = pytest.mark.e2e

START, DAYS, DRIFT = date(2025, 1, 1), 120, date(2025, 3, 22)
END = START + timedelta(days=DAYS - 1)
WINDOW = [DRIFT + timedelta(days=k) for k in range(-3, 5)]  # monitored days: 3 before the drift, 5 from it
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE = "dagster/asset_partition_range_{}"


def _keys(use_case: str, *suffixes: str) -> list[dg.AssetKey]:
    return [dg.AssetKey(["assembly", f"{use_case}{s}"]) for s in suffixes]


def run_nightly(world, first: date, last: date, use_cases, **kwargs):
    selection = [k for uc in use_cases for k in (dg.AssetKey(["distribution", f"{uc}_predictions"]), monitoring_key(uc))]
    return world.defs.resolve_job_def("supply_chain_nightly").execute_in_process(
        instance=world.instance, asset_selection=selection, run_config=QUIET,
        tags={RANGE.format("start"): first.isoformat(), RANGE.format("end"): last.isoformat()}, **kwargs)


def build_world(tmp_path_factory, *, drift: bool, use_cases: tuple[str, ...]):
    home = tmp_path_factory.mktemp("drift" if drift else "steady")
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_HOME", str(home))
    patch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    paths = FactoryPaths(home).create()
    config = SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=250, seed=42,
                              drift=DriftScenario(start_date=DRIFT) if drift else None)
    generate_demo_data(config, paths.landing)
    folder = home / "use_cases"
    folder.mkdir()
    for name in use_cases:
        shutil.copytree(USE_CASES_DIR / name, folder / name)
    defs = build_definitions(FactoryStore(home=str(home)), use_cases_folder=folder)
    instance = dg.DagsterInstance.ephemeral()
    world = SimpleNamespace(paths=paths, defs=defs, instance=instance, use_cases=use_cases, patch=patch,
                            registry=ModelRegistry(paths.artifacts / "models"))
    chain = defs.resolve_job_def("supply_chain_nightly").execute_in_process(
        instance=instance, run_config=QUIET, tags={RANGE.format("start"): START.isoformat(), RANGE.format("end"): END.isoformat()})
    assert chain.success
    # champions trained on what was known at the start of DRIFT (before the world changed)
    training = defs.resolve_job_def("assembly_training").execute_in_process(
        instance=instance,
        asset_selection=[k for uc in use_cases for k in _keys(uc, "_training_set", "_model", "_champion")],
        run_config={**QUIET, "ops": {f"assembly__{uc}_training_set": {"config": {"as_of": DRIFT.isoformat()}}
                                     for uc in use_cases}})
    assert training.success
    world.first_champion = {uc: world.registry.get(uc, "champion").version for uc in use_cases}
    assert run_nightly(world, WINDOW[0], WINDOW[-1], use_cases).success
    return world


def monitoring_by_day(world, use_case: str) -> dict[date, dict]:
    records = world.instance.fetch_materializations(monitoring_key(use_case), limit=1000).records
    out = {}
    for record in records:
        m = record.asset_materialization
        out.setdefault(date.fromisoformat(m.partition), {k: v.value for k, v in m.metadata.items()})
    return out


def evaluate_sensor(world, cursor=None):
    sensor = world.defs.resolve_sensor_def("retraining_on_monitoring_breach")
    context = dg.build_sensor_context(instance=world.instance, cursor=cursor, definitions=world.defs)
    return sensor.evaluate_tick(context)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    world = build_world(tmp_path_factory, drift=True, use_cases=("late_delivery", "demand_forecast"))
    yield world
    world.patch.undo()


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    world = build_world(tmp_path_factory, drift=False, use_cases=("late_delivery",))
    yield world
    world.patch.undo()


def test_drift_is_detected_after_the_drift_date_and_not_before(drifted):
    late = monitoring_by_day(drifted, "late_delivery")
    assert sorted(late) == WINDOW
    before = {d: m["breaches"] for d, m in late.items() if d < DRIFT}
    after = {d: m["breaches"] for d, m in late.items() if d >= DRIFT}
    assert all(not b for b in before.values()), before
    assert any(after.values()), after
    first = min(d for d, b in after.items() if b)
    assert any("drift share" in b for b in after[first])
    assert late[first]["drift_share"] > late[first]["thresholds"]["max_drift_share"] >= max(
        late[d]["drift_share"] for d in before)
    # the unaffected use case stays quiet: demand does not depend on channel, supplier or price
    demand = monitoring_by_day(drifted, "demand_forecast")
    assert sorted(demand) == WINDOW and not any(m["breaches"] for m in demand.values())


def test_monitoring_records_numbers_reports_and_the_method(drifted):
    day = monitoring_by_day(drifted, "late_delivery")[WINDOW[-1]]
    for key in ("drift_share", "prediction_drift", "drift/net_amount", "drift/channel"):
        assert isinstance(day[key], float), key
    assert day["model_version"] == drifted.first_champion["late_delivery"]
    assert "product_id" in day["columns_excluded"]  # identifier-like category: left out, and said so
    assert "wasserstein" in day["drift_method"] and "rows" in day["sampling"]
    for report, shows in (("data_drift_report", "net_amount"), ("prediction_drift_report", "prediction"),
                          ("quality_report", "actual")):
        html = open(day[f"{report}_path"]).read()
        assert html.lstrip().lower().startswith("<!doctype html") and shows in html, report
        # the UI's link: the same file under the artifacts URL that `factory ui` serves
        relative = Path(day[f"{report}_path"]).relative_to(drifted.paths.artifacts).as_posix()
        assert day[report] == f"{artifacts_url()}/{relative}", report
    assert day["labelled_rows"] >= 200 and 0.5 < day["quality/auc"] <= 1.0
    assert day["drift/channel"] > 0.1  # the new channel is there
    records = drifted.instance.fetch_materializations(monitoring_key("late_delivery"), limit=1000).records
    versions = {}
    for record in records:  # newest first
        versions.setdefault(record.asset_materialization.partition, record.asset_materialization.tags["dagster/data_version"])
    assert len(set(versions.values())) == len(versions) >= len(WINDOW)  # each day's own data version, in the UI
    # human feedback joined to the same labelled predictions: operators' overrides and who was right
    assert day["overrides/rows"] > 0 and 0.0 <= day["overrides/operator_accuracy"] <= 1.0
    assert 0.0 <= day["overrides/model_accuracy"] <= 1.0


def test_prediction_rows_carry_model_version_and_feature_snapshot(drifted):
    with open_warehouse(drifted.paths) as conn:
        rows = conn.execute("select * from predictions.late_delivery").pl()
    assert sorted(rows["scored_date"].unique().to_list()) == WINDOW
    assert rows["model_version"].unique().to_list() == [drifted.first_champion["late_delivery"]]
    assert rows["prediction"].is_between(0, 1).all()
    for day in (WINDOW[0], WINDOW[-1]):
        snapshot = pl.read_parquet(drifted.paths.artifacts / "feature_snapshots" / "late_delivery" / f"{day}.parquet")
        batch = rows.filter(pl.col("scored_date") == day)
        assert batch.height == snapshot.height
        assert batch["feature_snapshot_id"].unique().to_list() == [snapshot_id(snapshot.drop("prediction"))]
        assert set(batch["order_line_id"]) == set(snapshot["order_line_id"])
    # re-scoring a day replaces its partition: no duplicates, nothing lost
    assert run_nightly(drifted, WINDOW[0], WINDOW[0], ["late_delivery"]).success
    with open_warehouse(drifted.paths) as conn:
        again = conn.execute("select scored_date, count(*) from predictions.late_delivery group by 1 order by 1").fetchall()
    assert again == [(d, rows.filter(pl.col("scored_date") == d).height) for d in WINDOW]


def test_sensor_requests_retraining_for_the_affected_use_case_only_once(drifted):
    result = evaluate_sensor(drifted)
    assert [r.tags["factory/use_case"] for r in result.run_requests] == ["late_delivery"]
    request = result.run_requests[0]
    assert set(request.asset_selection) == set(_keys("late_delivery", "_training_set", "_model", "_champion"))
    assert drifted.first_champion["late_delivery"] in request.run_key
    # the cursor moves on: no new results, no new request; a fresh cursor yields the same run key
    assert evaluate_sensor(drifted, cursor=result.cursor).run_requests == []
    assert evaluate_sensor(drifted).run_requests[0].run_key == request.run_key
    drifted.request = request


def test_retrained_challenger_beats_the_degraded_champion_and_scores_the_next_batch(drifted):
    request = drifted.request
    run = drifted.defs.resolve_job_def("assembly_training").execute_in_process(
        instance=drifted.instance, asset_selection=list(request.asset_selection), tags=request.tags, run_config=QUIET)
    assert run.success
    gate = {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in run.get_asset_materialization_events()}["late_delivery_champion"]
    assert gate["promoted"] is True, gate["reason"]
    old, new = drifted.first_champion["late_delivery"], drifted.registry.get("late_delivery", "champion").version
    assert new != old
    # quality on post-drift data the new model never trained on (the gate's holdout, orders after DRIFT)
    spec = load_use_cases(drifted.paths.home / "use_cases")["late_delivery"]
    frame = pl.read_parquet(drifted.paths.artifacts / "training_sets" / "late_delivery.parquet")
    frame = frame.filter(pl.col("order_date") >= DRIFT)
    window = tuple(drifted.registry.get("late_delivery", new).manifest["extra"]["test_window"])
    old_auc = evaluate_on_holdout(spec, drifted.registry, old, frame, window)["auc"]
    new_auc = evaluate_on_holdout(spec, drifted.registry, new, frame, window)["auc"]
    assert new_auc > old_auc + 0.01, (old_auc, new_auc)
    # the promoted champion scores the next nightly batch
    assert run_nightly(drifted, END, END, ["late_delivery"]).success
    with open_warehouse(drifted.paths) as conn:
        versions = conn.execute("select distinct model_version from predictions.late_delivery where scored_date = ?",
                                [END]).fetchall()
    assert versions == [(new,)]


def test_without_drift_nothing_is_flagged_and_no_retraining_is_requested(steady):
    late = monitoring_by_day(steady, "late_delivery")
    assert sorted(late) == WINDOW
    assert not any(m["breaches"] for m in late.values()), {d: m["breaches"] for d, m in late.items()}
    assert max(m["drift_share"] for m in late.values()) < late[WINDOW[0]]["thresholds"]["max_drift_share"]
    result = evaluate_sensor(steady)
    assert result.run_requests == [] and result.skip_message
