"""Assembly end to end at small scale: data products -> feature sets -> training sets -> models ->
promotion gate, through Dagster, on a warehouse built by the real chain. Includes a fourth use
case added as one YAML file."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from types import SimpleNamespace

import dagster as dg
import numpy as np
import polars as pl
import pytest

from factory_assets.assembly.registry import ModelRegistry
from factory_assets.assembly.specs import USE_CASES_DIR
from factory_assets.definitions import build_definitions
from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data
from factory_assets.resources import FactoryStore, GovernancePolicy
from factory_assets.settings import FactoryPaths
from factory_assets.lib.warehouse import open_warehouse
from approvers import declare_approvers

pytestmark = pytest.mark.e2e

START, DAYS = date(2025, 1, 6), 100
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

FOURTH_USE_CASE = """\
type: factory_assets.components.UseCase
attributes:
  name: order_value
  description: Expected net value of an order line, for finance's cash-flow planning.
  template: regression
  training_set: factory_assets.assembly.training_sets:ORDER_LINES
  target: net_amount
  label_delay_days: 0
  feature_sets: [customer_activity]
  entity: order_line_id
  time_column: ordered_at
  horizon_days: 0
  metric: mae
  risk_tier: low
  business_unit: finance
  owner: team:finance-analytics
  engine: xgboost
  uses: [cash_flow_planning]
  value: {estimated_hours_saved_per_week: 4}
"""


def materialized_metadata(result) -> dict[str, dict]:
    return {e.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("factory")
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_HOME", str(home))
    patch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    patch.setenv("FACTORY_APPROVERS_FILE", str(declare_approvers(tmp_path_factory.mktemp("approvers"))))
    paths = FactoryPaths(home).create()
    generate_demo_data(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=250, seed=5, n_products=60), paths.landing)
    use_cases = home / "use_cases"
    shutil.copytree(USE_CASES_DIR, use_cases)
    (use_cases / "order_value").mkdir()
    (use_cases / "order_value" / "defs.yaml").write_text(FOURTH_USE_CASE)
    defs = build_definitions(FactoryStore(home=str(home)), use_cases_folder=use_cases)
    instance = dg.DagsterInstance.ephemeral()
    tags = {"dagster/asset_partition_range_start": START.isoformat(),
            "dagster/asset_partition_range_end": (START + timedelta(days=DAYS - 1)).isoformat()}
    chain = defs.resolve_job_def("supply_chain_nightly").execute_in_process(instance=instance, tags=tags, run_config=QUIET)
    assert chain.success
    result = defs.resolve_job_def("assembly_training").execute_in_process(instance=instance, run_config=QUIET, raise_on_error=False)
    yield SimpleNamespace(paths=paths, defs=defs, instance=instance, result=result, meta=materialized_metadata(result),
                          registry=ModelRegistry(paths.artifacts / "models"))
    patch.undo()


def test_training_run_succeeds_and_every_model_beats_its_baseline(trained):
    failures = [e.event_specific_data.error.message for e in trained.result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert trained.result.success, failures
    checks = [e.event_specific_data for e in trained.result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert sorted(c.asset_key.to_user_string() for c in checks if c.check_name == "beats_baseline" and c.passed) == [
        "assembly/demand_forecast_model", "assembly/late_delivery_model", "assembly/order_value_model",
        "assembly/purchase_propensity_model"]
    feature_contracts = sorted(c.asset_key.to_user_string() for c in checks if c.check_name == "contract" and c.passed)
    assert feature_contracts == ["assembly/customer_activity", "assembly/demand_history", "assembly/regional_conditions",
                                 "assembly/supplier_performance", "assembly/warehouse_load"]
    assert all(c.passed for c in checks)


def test_hidden_signal_is_recovered(trained):
    late = trained.meta["assembly/late_delivery_model"]
    assert late["metric/auc"] > 0.75 and late["lightgbm/auc"] > 0.75 and late["xgboost/auc"] > 0.75
    demand = trained.meta["assembly/demand_forecast_model"]
    assert demand["metric/wape"] < demand["baseline/wape"]  # beats seasonal naive on the same window
    propensity = trained.meta["assembly/purchase_propensity_model"]
    assert propensity["metric/auc"] > 0.6 > propensity["baseline/auc"]


def test_training_metadata_is_numeric_and_traceable(trained):
    late = trained.meta["assembly/late_delivery_model"]
    for key in ("training_seconds", "best_iteration", "metric/log_loss", "metric/pr_auc", "baseline/auc"):
        assert isinstance(late[key], (int, float)), key
    assert any(k.startswith("importance/") for k in late) and late["device"] == "cpu"
    manifest = trained.registry.get("late_delivery", "champion").manifest
    assert manifest["feature_contracts"]["customer_activity"] == "1.0.0"
    assert manifest["data_versions"]["training_set"] == trained.meta["assembly/late_delivery_training_set"]["data_version"]
    assert manifest["metrics"]["auc"] == pytest.approx(late["metric/auc"], abs=5e-5)  # metadata: 4 significant digits


def test_first_models_become_champions_and_the_registry_round_trips(trained):
    for use_case in ("late_delivery", "demand_forecast", "order_value"):
        assert trained.meta[f"assembly/{use_case}_champion"]["promoted"] is True, trained.meta[f"assembly/{use_case}_champion"]["reason"]
        assert trained.registry.aliases(use_case)["champion"] == trained.registry.aliases(use_case)["challenger"]
    frame = pl.read_parquet(trained.paths.artifacts / "training_sets" / "purchase_propensity.parquet")
    from factory_assets.assembly.templates import encode_features

    version = trained.registry.get("purchase_propensity", "challenger")
    X, _ = encode_features(frame, version.feature_names, version.manifest["extra"]["categories"])
    by_alias = trained.registry.load_model("purchase_propensity", "challenger").predict(X)
    by_version = trained.registry.load_model("purchase_propensity", version.version).predict(X)
    assert np.array_equal(by_alias, by_version)


def test_a_high_risk_model_stays_challenger_until_two_people_approve_it(trained, capsys):
    """purchase_propensity is high tier: the policy asks for two signed approvals by declared people."""
    import json
    import os
    from pathlib import Path

    from factory_assets.cli import main

    keys = Path(os.environ["FACTORY_APPROVERS_FILE"]).parent
    gate = trained.meta["assembly/purchase_propensity_champion"]
    assert gate["promoted"] is False and "0 distinct approval(s) < required 2" in gate["reason"]
    assert "champion" not in trained.registry.aliases("purchase_propensity")
    champion_asset = trained.defs.get_assets_def(dg.AssetKey(["assembly", "purchase_propensity_champion"]))
    store = {"store": FactoryStore(home=str(trained.paths.home)), "policy": GovernancePolicy()}
    for approver, key, expected in (("risk.officer", "risk.officer", False), ("Risk.Officer", "risk.officer", False),
                                    ("marketing.lead", "marketing.lead", True)):
        assert main(["approve", "purchase_propensity", "challenger", "--approver", approver, "--key",
                     str(keys / f"{key}.pem"), "--decision", "approve", "--note", "reviewed segment metrics"]) == 0
        meta = materialized_metadata(dg.materialize([champion_asset], resources=store, instance=trained.instance))
        assert meta["assembly/purchase_propensity_champion"]["promoted"] is expected, approver
    assert trained.registry.aliases("purchase_propensity")["champion"] == gate["challenger"]
    # a bad approval is refused with the reason, never a traceback
    capsys.readouterr()
    assert main(["approve", "purchase_propensity", "challenger", "--approver", " ", "--key",
                 str(keys / "risk.officer.pem"), "--decision", "approve"]) == 2
    assert "approver" in capsys.readouterr().err
    # a reordered approvals log shows in the audit, with the line and the fix (then it is put back)
    log = trained.paths.artifacts / "approvals" / "purchase_propensity" / "approvals.jsonl"
    original = log.read_bytes()
    lines = original.splitlines(keepends=True)
    log.write_bytes(lines[1] + lines[0] + b"".join(lines[2:]))
    try:
        assert main(["audit", "purchase_propensity"]) == 0
        captured = capsys.readouterr()
    finally:
        log.write_bytes(original)
    assert "warning: the approvals log is tampered" in captured.err and "approvals.jsonl:1" in captured.err
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["warnings"] and json.load(open(out["bundle"]))["policy"]["evaluation"]["passed"] is False


def test_an_audit_bundle_is_complete_and_valid(trained, capsys):
    import json

    from factory_assets.cli import main
    from factory_assets.governance.audit import validate_bundle

    assert main(["audit", "late_delivery"]) == 0
    paths = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    bundle = json.loads(open(paths["bundle"]).read())
    validate_bundle(bundle)
    champion = trained.registry.get("late_delivery", "champion")
    assert bundle["model"]["version"] == champion.version
    assert bundle["use_case"]["risk_tier"] == "medium"
    assert bundle["segment_metrics"]["region"] and bundle["segment_metrics"]["channel"]
    products = bundle["inputs"]["training_data"]["data_versions"]["products"]
    assert products["fct_order_lines"]["rows"] > 0 and products["raw_store"]["newest_partition"] == str(LAST_DAY)
    history = bundle["promotion_history"]
    assert [h["reason"] for h in history["records"]] == [h["reason"] for h in trained.registry.history("late_delivery")]
    assert history["is_champion"] is True and bundle["policy"]["evaluation"]["rules"]
    assert paths["seconds"] < 60
    assert champion.version in open(paths["page"]).read()


def test_customer_feature_set_feeds_two_use_cases_in_the_lineage(trained):
    graph = trained.defs.resolve_asset_graph()
    children = {k.to_user_string() for k in graph.get(dg.AssetKey(["assembly", "customer_activity"])).child_keys}
    assert {"assembly/late_delivery_training_set", "assembly/purchase_propensity_training_set",
            "assembly/order_value_training_set"} <= children
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey(["assembly", "customer_activity"])).parent_keys}
    assert "processing/fct_order_lines" in parents


def test_gate_refuses_a_worse_challenger(trained):
    from factory_assets.assembly.templates import fit_template
    from factory_assets.assembly.lifecycle import feature_columns
    from factory_assets.assembly.specs import load_use_case

    spec = load_use_case(USE_CASES_DIR / "late_delivery" / "defs.yaml")
    frame = pl.read_parquet(trained.paths.artifacts / "training_sets" / "late_delivery.parquet")
    champion = trained.registry.get("late_delivery", "champion").version
    # A challenger trained on shuffled labels: it learned nothing.
    shuffled = frame.with_columns(pl.col("is_late").shuffle(seed=1))
    weak = fit_template(spec.template, shuffled, target="is_late", feature_columns=feature_columns(frame, spec, {"is_late"}, pii_allowed=False),
                        time_column="split_time", engine="xgboost", device="cpu")
    version = trained.registry.register("late_delivery", weak.model, metrics=weak.metrics, baseline_metrics=weak.baseline_metrics,
                                        feature_contracts={}, data_versions={}, code_version="test",
                                        extra={"categories": weak.categories, "test_window": list(weak.test_window)})
    trained.registry.set_alias("late_delivery", "challenger", version.version, reason="test: weak challenger")
    result = dg.materialize([trained.defs.get_assets_def(dg.AssetKey(["assembly", "late_delivery_champion"]))],
                            resources={"store": FactoryStore(home=str(trained.paths.home)), "policy": GovernancePolicy()}, instance=trained.instance)
    meta = materialized_metadata(result)["assembly/late_delivery_champion"]
    assert meta["promoted"] is False
    assert trained.registry.aliases("late_delivery")["champion"] == champion
    history = trained.registry.history("late_delivery")
    assert [h["alias"] for h in history].count("champion") == 1


BUILT_IN = ("late_delivery", "demand_forecast", "purchase_propensity")
LAST_DAY = START + timedelta(days=DAYS - 1)


def run_nightly(trained, selection, day=LAST_DAY):
    tags = {"dagster/asset_partition_range_start": day.isoformat(), "dagster/asset_partition_range_end": day.isoformat()}
    return trained.defs.resolve_job_def("supply_chain_nightly").execute_in_process(
        instance=trained.instance, asset_selection=selection, tags=tags, run_config=QUIET, raise_on_error=False)


def test_champions_score_every_use_case_into_contracted_products_that_operations_reads(trained):
    selection = [dg.AssetKey(["distribution", f"{uc}_predictions"]) for uc in BUILT_IN]
    selection += [dg.AssetKey(["feedback", f"{uc}_monitoring"]) for uc in BUILT_IN]
    selection.append(dg.AssetKey(["distribution", "service_priority"]))
    result = run_nightly(trained, selection)
    assert result.success
    checks = {(c.asset_key.path[-1], c.check_name): c.passed for c in
              (e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")}
    assert all(checks[(f"{uc}_predictions", "contract")] for uc in BUILT_IN)
    with open_warehouse(trained.paths) as conn:
        late = conn.execute("select * from predictions.late_delivery").pl()
        open_lines = conn.execute(
            "select count(*) from marts.fct_order_lines where delivered_date is null or delivered_date + 1 > ?",
            [LAST_DAY]).fetchone()[0]
        demand = conn.execute("select horizon, count(*) from predictions.demand_forecast group by 1 order by 1").fetchall()
        customers = conn.execute("select count(distinct customer_key) from marts.fct_order_lines").fetchone()[0]
        propensity = conn.execute("select * from predictions.purchase_propensity").pl()
        priority = conn.execute("select * from operations.service_priority order by priority_rank").pl()
    assert late.height == open_lines  # every line still open at the end of the day is scored once
    assert late["model_version"].unique().to_list() == [trained.registry.get("late_delivery", "champion").version]
    assert [h for h, _ in demand] == list(range(1, 8)) and len({n for _, n in demand}) == 1
    assert propensity.height == customers
    # predictions flow back into operations: the call-back list ranks unhappy customers by propensity
    assert priority.height > 0 and priority["priority_rank"].to_list() == list(range(1, priority.height + 1))
    assert priority["purchase_probability"].is_sorted(descending=True)
    joined = priority.join(propensity, on="customer_key")
    assert joined.height == priority.height and (joined["purchase_probability"] == joined["prediction"]).all()
    parents = trained.defs.resolve_asset_graph().get(dg.AssetKey(["distribution", "service_priority"])).parent_keys
    assert dg.AssetKey(["distribution", "purchase_propensity_predictions"]) in parents


def test_a_prediction_product_breaking_its_contract_blocks_monitoring(trained):
    from factory_assets.assembly.lifecycle import feature_columns
    from factory_assets.assembly.specs import load_use_case
    from factory_assets.assembly.templates import fit_template

    spec = load_use_case(USE_CASES_DIR / "late_delivery" / "defs.yaml")
    frame = pl.read_parquet(trained.paths.artifacts / "training_sets" / "late_delivery.parquet")
    champion = trained.registry.get("late_delivery", "champion").version
    # A regression model registered by mistake as the champion: its "probabilities" are amounts.
    features = [c for c in feature_columns(frame, spec, {"is_late"}, pii_allowed=False) if c != "net_amount"]
    wrong = fit_template("regression", frame, target="net_amount", feature_columns=features, time_column="split_time",
                         engine="lightgbm", metric="mae")
    version = trained.registry.register("late_delivery", wrong.model, metrics=wrong.metrics, code_version="test",
                                        extra={"categories": wrong.categories, "reference": {"file": "none"}})
    trained.registry.set_alias("late_delivery", "champion", version.version, reason="test: wrong task promoted")
    try:
        result = run_nightly(trained, [dg.AssetKey(["distribution", "late_delivery_predictions"]),
                                       dg.AssetKey(["feedback", "late_delivery_monitoring"])])
    finally:
        trained.registry.set_alias("late_delivery", "champion", champion, reason="test: restore")
    assert not result.success
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    contract = next(c for c in evaluations if c.check_name == "contract")
    assert not contract.passed and "prediction <= 1" in str(contract.metadata)
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"distribution/late_delivery_predictions"}  # monitoring never ran on bad scores


def test_a_policy_change_flips_compliance_and_the_review_reports_it(trained, tmp_path, monkeypatch):
    from factory_assets.governance.policy import POLICY_FILE

    def review():
        result = trained.defs.resolve_job_def("policy_review").execute_in_process(
            instance=trained.instance, run_config=QUIET, raise_on_error=False)
        check = next(e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")
        with open_warehouse(trained.paths) as conn:
            failed = conn.execute("select use_case, rule from governance.model_compliance where not passed").fetchall()
            status = dict(conn.execute("select use_case, status from governance.portfolio").fetchall())
        return check.passed, failed, status

    passed, failed, status = review()
    assert passed and failed == []
    assert status == {"demand_forecast": "champion", "late_delivery": "champion", "order_value": "champion",
                      "purchase_propensity": "champion"}
    stricter = tmp_path / "policy.yaml"  # the medium tier now asks for one approval
    stricter.write_text(POLICY_FILE.read_text().replace(
        "required_approvals: 0         # promoted automatically when the rules pass (retraining",
        "required_approvals: 1         # promoted automatically when the rules pass (retraining"))
    monkeypatch.setenv("FACTORY_POLICY_FILE", str(stricter))
    passed, failed, status = review()
    assert not passed and failed == [("late_delivery", "approvals")]
    assert status["late_delivery"] == "non_compliant" and status["demand_forecast"] == "champion"
    # the policy_change sensor sees the new file and asks for one review run per file version
    sensor = trained.defs.resolve_sensor_def("policy_change")
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=trained.instance, definitions=trained.defs))
    assert len(first.run_requests) == 1
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=trained.instance, cursor=first.cursor,
                                                         definitions=trained.defs))
    assert again.run_requests == []
    # a non-compliant champion stops scoring: the prediction product fails with the broken rule
    result = run_nightly(trained, [dg.AssetKey(["distribution", "late_delivery_predictions"])])
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "policy forbids scoring" in failure.event_specific_data.error.message + str(failure.message)


def test_no_raw_personal_data_in_products_features_predictions_reports_or_bundles(trained):
    """Sweep everything downstream of the raw store for the simulator's names, emails and customer ids."""
    import re

    from factory_assets.raw_material.simulator import SimulationConfig, simulate

    data = simulate(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=250, seed=5, n_products=60))
    tx = data.transactions
    pii = set(tx["customer_name"].unique()) | set(tx["customer_email"].unique()) | set(tx["customer_id"].unique())
    assert len(pii) > 1000
    found = {}
    with open_warehouse(trained.paths) as conn:
        tables = conn.execute("""select table_schema, table_name, column_name from information_schema.columns
                                 where data_type = 'VARCHAR' and table_schema not in ('raw', 'staging', 'main')""").fetchall()
        schemas = {t[0] for t in tables}
        assert {"marts", "features", "predictions", "operations", "governance"} <= schemas
        for schema, table, column in tables:
            values = {v for (v,) in conn.execute(f'select distinct "{column}" from {schema}.{table}').fetchall()}
            if values & pii:
                found[f"{schema}.{table}.{column}"] = sorted(values & pii)[:3]
    files = [p for p in trained.paths.artifacts.rglob("*") if p.is_file() and p.suffix in (".parquet", ".html", ".json", ".jsonl")]
    assert any(p.suffix == ".html" and "reports" in p.parts for p in files)  # Evidently reports are swept too
    email = re.compile(r"[A-Za-z]+\.[A-Za-z]+\.\d+@example\.com")
    names = {v for v in pii if " " in v}
    for path in files:
        text = (pl.read_parquet(path).write_csv() if path.suffix == ".parquet" else path.read_text(errors="ignore"))
        hits = email.findall(text) + [n for n in names if n in text]
        if hits:
            found[str(path.relative_to(trained.paths.home))] = hits[:3]
    assert found == {}
