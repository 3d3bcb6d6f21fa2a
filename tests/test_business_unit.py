"""A business-unit code location (business_units/customer_care) on the factory's public API.

(a) the location loads the way workspace.yaml declares it, defines no core key, and its assets
depend on the core's ``assembly/customer_activity`` (the lineage edge between the locations);
(b) its training set is point-in-time correct, on a hand-made warehouse with exact rows;
(c) end to end at small scale: the core chain builds a world, then the unit's training set, model
and champion gate materialise against the same store, with the core's checks and governance;
(d) a use case naming an unknown training-set builder fails when the definitions are built.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from datetime import date, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest
import yaml

from factory_assets.settings import PROJECT_ROOT

UNIT_DIR = PROJECT_ROOT / "business_units" / "customer_care"
if str(UNIT_DIR) not in sys.path:  # what workspace.yaml's working_directory does for the location
    sys.path.insert(0, str(UNIT_DIR))

from customer_care.training_sets import COMPLAINT_CUTOFFS, LABEL, WINDOW_DAYS  # noqa: E402

from factory_assets.keys import training_keys, use_case_keys  # noqa: E402
from factory_assets.public import UseCaseSpecError, business_unit_definitions, load_use_case  # noqa: E402
from factory_assets.lib.warehouse import open_warehouse  # noqa: E402

USE_CASES_DIR = UNIT_DIR / "customer_care" / "defs" / "use_cases"
CUSTOMER_ACTIVITY = dg.AssetKey(["assembly", "customer_activity"])
#: the unit's own source and products (its dbt project), then its two use cases' slices
COMPLAINT_KEYS = {k.to_user_string() for k in use_case_keys("complaint_risk")}
BU_KEYS = {"raw_material/ticket_outcomes", "processing/stg_support__ticket_texts",
           "processing/stg_support_desk__ticket_outcomes", "processing/support_tickets",
           *(k.to_user_string() for uc in ("complaint_risk", "ticket_escalation") for k in use_case_keys(uc))}
TRAINING_KEYS = {k.to_user_string() for k in training_keys("complaint_risk")}
TRAINING_SETS = {"customer_complaint_cutoffs": COMPLAINT_CUTOFFS}


def build_definitions(store=None):
    return business_unit_definitions(UNIT_DIR, store)


def _spec():
    return load_use_case(USE_CASES_DIR / "complaint_risk" / "defs.yaml")


# ------------------------------------------------------------------------------------------------
# (a) the location loads as workspace.yaml declares it; lineage crosses into the core location
# ------------------------------------------------------------------------------------------------

_LOAD = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
defs = getattr(module, sys.argv[2])
graph = defs.resolve_asset_graph()
defined = sorted({k.to_user_string() for a in defs.assets for k in a.keys})
parents = {k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
           for k in graph.get_all_asset_keys()}
heavy = [m for m in ("lightgbm", "xgboost", "evidently", "sklearn", "pandas") if m in sys.modules]
print(json.dumps({"defined": defined, "parents": parents, "heavy": heavy,
                  "jobs": sorted(j.name for j in defs.resolve_all_job_defs())}))
"""


def test_workspace_declares_the_core_then_the_business_unit_location():
    entries = [e["python_module"] for e in yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]]
    assert entries[0]["module_name"] == "factory_assets.definitions" and entries[0]["location_name"] == "ai_factory"
    unit = next(e for e in entries if e["location_name"] == "customer_care")
    assert (unit["module_name"], unit["attribute"], unit["working_directory"]) == (
        "customer_care.definitions", "defs", "business_units/customer_care")


def test_business_unit_location_loads_and_depends_on_the_core_feature_set(tmp_path):
    """Loads the location in a fresh interpreter exactly as the workspace entry says (module,
    attribute, working directory), then compares its keys with the core location's."""
    unit = next(e["python_module"] for e in yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
                if e["python_module"]["location_name"] == "customer_care")
    env = {**os.environ, "FACTORY_HOME": str(tmp_path / "factory")}
    out = subprocess.run([sys.executable, "-c", _LOAD, unit["module_name"], unit["attribute"]],
                         cwd=PROJECT_ROOT / unit["working_directory"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(loaded["defined"]) == BU_KEYS
    assert loaded["heavy"] == []  # loading the location imports no ML engine
    assert {"customer_care_training", "customer_care_nightly"} <= set(loaded["jobs"])
    # the training set depends on the core's feature set and products, which this location does not define
    assert loaded["parents"]["assembly/complaint_risk_training_set"] == [
        "assembly/customer_activity", "processing/fct_order_lines", "processing/int_tickets__scored"]
    assert "assembly/customer_activity" not in loaded["defined"]
    # its dbt product reads the core's raw tickets beside its own desk outcomes
    assert loaded["parents"]["processing/stg_support__ticket_texts"] == ["raw_material/tickets"]
    assert loaded["parents"]["distribution/ticket_escalation_predictions"] == [
        "assembly/ticket_escalation_champion", "processing/support_tickets"]

    from factory_assets.definitions import defs as core

    core_keys = {k.to_user_string() for k in core.resolve_asset_graph().get_all_asset_keys()}
    assert "assembly/customer_activity" in core_keys
    assert not core_keys & set(loaded["defined"])  # the unit never redefines a core key
    # the lineage the UI draws across the two locations: core feature set -> the unit's training set
    unit_defs = build_definitions()
    unit_assets = [a for a in unit_defs.assets if isinstance(a, dg.AssetsDefinition) and a.is_materializable]
    both = dg.Definitions(assets=[*core.assets, *unit_assets], resources=core.resources).resolve_asset_graph()
    assert dg.AssetKey(["assembly", "complaint_risk_training_set"]) in both.get(CUSTOMER_ACTIVITY).child_keys
    assert dg.AssetKey(["processing", "fct_order_lines"]) in both.get(CUSTOMER_ACTIVITY).parent_keys


def test_business_unit_imports_only_the_public_api():
    imported = set()
    for path in (UNIT_DIR / "customer_care").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    factory = {m for m in imported if m.split(".")[0] == "factory_assets"}
    assert factory == {"factory_assets.public"}


def test_use_case_is_governed_like_a_core_one():
    from factory_assets.governance.facts import current_policy

    spec = _spec()
    policy = current_policy()
    assert (spec.business_unit, spec.owner, spec.training_set.builder) == (
        "customer_care", "team:customer-care", "customer_care.training_sets:COMPLAINT_CUTOFFS")
    assert set(spec.uses) <= set(policy.uses.allowed_by_tier[spec.risk_tier])
    assert policy.tier(spec.risk_tier).required_approvals == 0
    unit = build_definitions()
    assets = {k.to_user_string(): a for a in unit.assets if isinstance(a, dg.AssetsDefinition) and a.is_materializable
              for k in a.keys if k.to_user_string() in COMPLAINT_KEYS}
    checks = {c.name for a in assets.values() for c in a.check_specs}
    assert set(assets) == COMPLAINT_KEYS and checks == {"beats_baseline", "policy", "within_thresholds"}
    # listed, governed and audited with the core's: one catalogue of every location's use cases
    from factory_assets.assembly.specs import load_use_cases

    assert "complaint_risk" in load_use_cases()
    assert all(a.owners_by_key[k] == ["team:customer-care"] for a in assets.values() for k in a.keys)


# ------------------------------------------------------------------------------------------------
# (b) point in time, on a hand-made warehouse
# ------------------------------------------------------------------------------------------------

D = date.fromisoformat


@pytest.fixture
def tiny():
    """Three customers; orders from 1 Jan (first cutoff 29 Jan = first order + 28 days) to 28 Feb.
    Tickets sit on both sides of every boundary: on a cutoff day (feature, never label), on
    cutoff + 14 (label) and cutoff + 15 (not label), and after the data end (never seen)."""
    conn = duckdb.connect()
    conn.execute("create schema marts; create schema intermediate")
    conn.execute("create table marts.fct_order_lines (order_id varchar, customer_key varchar, order_date date, "
                 "ordered_at timestamp, net_amount double, region varchar)")
    orders = [("o1", "A", "2025-01-01", 100.0, "north"), ("o2", "A", "2025-01-20", 50.0, "south"),
              ("o3", "B", "2025-01-10", 30.0, "north"), ("o4", "B", "2025-02-03", 20.0, "east"),
              ("o5", "C", "2025-02-10", 10.0, "west"), ("o6", "C", "2025-02-28", 999.0, "west")]
    for order_id, customer, day, amount, region in orders:
        conn.execute("insert into marts.fct_order_lines values (?, ?, ?, ?, ?, ?)",
                     [order_id, customer, D(day), f"{day} 10:00:00", amount, region])
    conn.execute("create table intermediate.int_tickets__scored (ticket_id varchar, customer_key varchar, "
                 "created_date date, sentiment_score double, is_negative boolean)")
    tickets = [("t1", "A", "2025-01-29", -0.8), ("t2", "A", "2025-02-12", -0.5), ("t3", "B", "2025-02-01", 0.6),
               ("t4", "B", "2025-02-13", -0.4), ("t5", "C", "2025-02-27", -0.9), ("t6", "A", "2025-03-02", -0.7)]
    for ticket_id, customer, day, score in tickets:
        conn.execute("insert into intermediate.int_tickets__scored values (?, ?, ?, ?, ?)",
                     [ticket_id, customer, D(day), score, score < 0])
    yield conn
    conn.close()


#: cutoff, customer, region, recency, tenure, orders_30d, orders_90d, monetary_90d, lifetime_orders,
#: tickets_90d, negative_tickets_90d, avg_ticket_sentiment_90d, label
EXPECTED = [
    ("2025-01-29", "A", "south", 9, 28, 2, 2, 150.0, 2, 1, 1, -0.8, True),    # t2 on cutoff + 14: label
    ("2025-01-29", "B", "north", 19, 19, 1, 1, 30.0, 1, 0, 0, 0.0, False),    # t4 on cutoff + 15: not; o4, t3 later
    ("2025-02-05", "A", "south", 16, 35, 1, 2, 150.0, 2, 1, 1, -0.8, True),
    ("2025-02-05", "B", "east", 2, 26, 2, 2, 50.0, 2, 1, 0, 0.6, True),
    ("2025-02-12", "A", "south", 23, 42, 1, 2, 150.0, 2, 2, 2, -0.65, False),  # t2 on the cutoff: feature only
    ("2025-02-12", "B", "east", 9, 33, 1, 2, 50.0, 2, 1, 0, 0.6, True),    # o3 (10 Jan) left the 30 days
    ("2025-02-12", "C", "west", 2, 2, 1, 1, 10.0, 1, 0, 0, 0.0, False),       # t5 on cutoff + 15: not
]
COLUMNS = ["cutoff_date", "customer_key", "region", "recency_days", "tenure_days", "orders_30d", "orders_90d",
           "monetary_90d", "lifetime_orders", "tickets_90d", "negative_tickets_90d", "avg_ticket_sentiment_90d", LABEL]


def test_training_set_rows_are_point_in_time_exact(tiny):
    builder = TRAINING_SETS["customer_complaint_cutoffs"]
    frame = builder.build(tiny, _spec(), D("2025-03-01"))  # knows everything up to 28 Feb
    # 19 and 26 Feb are cutoffs too, but their 14-day ticket windows are not over by 28 Feb
    rows = [tuple(r) for r in frame.select(COLUMNS).with_columns(
        pl.col("cutoff_date").cast(pl.String), pl.col("avg_ticket_sentiment_90d").round(6)).iter_rows()]
    assert rows == EXPECTED
    assert frame["split_time"].to_list() == [D(r[0]) + timedelta(days=WINDOW_DAYS + 1) for r in EXPECTED]
    assert builder.labels == frozenset({LABEL})


def test_training_set_does_not_change_when_later_data_arrives_or_is_rewritten(tiny):
    """Built earlier (as of 20 Feb) the complete rows are the same; rewriting everything dated after
    the last label window (orders, tickets) changes none of them."""
    builder, spec = TRAINING_SETS["customer_complaint_cutoffs"], _spec()
    full = builder.build(tiny, spec, D("2025-03-01"))
    early = builder.build(tiny, spec, D("2025-02-20"))  # 12 Feb + 14 = 26 Feb is not over yet
    assert early.equals(full.filter(pl.col("cutoff_date") <= D("2025-02-05")))
    tiny.execute("update intermediate.int_tickets__scored set is_negative = not is_negative, sentiment_score = 5 "
                 "where created_date > DATE '2025-02-26'")
    tiny.execute("delete from marts.fct_order_lines where order_date > DATE '2025-02-26' and order_id <> 'o6'")
    tiny.execute("insert into marts.fct_order_lines values ('o7', 'A', DATE '2025-02-27', '2025-02-27 09:00', 5, 'east')")
    assert builder.build(tiny, spec, D("2025-03-01")).equals(full)


def test_scoring_set_has_the_training_features_and_no_label(tiny):
    builder, spec = TRAINING_SETS["customer_complaint_cutoffs"], _spec()
    scoring = builder.score(tiny, spec, D("2025-03-01"))
    training = builder.build(tiny, spec, D("2025-03-01"))
    assert scoring["cutoff_date"].unique().to_list() == [D("2025-02-28")]
    assert scoring["customer_key"].to_list() == ["A", "B", "C"]
    assert scoring[LABEL].null_count() == scoring.height
    assert set(training.columns) - set(scoring.columns) == {"split_time"}
    c = scoring.row(2, named=True)  # C's order on 28 Feb is known at the end of that day
    assert (c["recency_days"], c["lifetime_orders"], c["negative_tickets_90d"], c["region"]) == (0, 2, 1, "west")


# ------------------------------------------------------------------------------------------------
# (d) an unknown builder name fails when the definitions are built
# ------------------------------------------------------------------------------------------------

def test_unknown_training_set_fails_at_definition_time_naming_the_file_and_the_fix(tmp_path):
    from factory_assets.components.use_case import use_case_builder

    doc = yaml.safe_load((USE_CASES_DIR / "complaint_risk" / "defs.yaml").read_text())
    doc["attributes"].update(name="complaint_typo", training_set="customer_care.training_sets:COMPLAINT_CUTOFS")
    path = tmp_path / "complaint_typo" / "defs.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UseCaseSpecError) as info:
        use_case_builder(load_use_case(path), path)
    message = str(info.value)
    for fragment in (str(path), "'training_set'", "COMPLAINT_CUTOFS", "TrainingSetBuilder"):
        assert fragment in message


# ------------------------------------------------------------------------------------------------
# (c) end to end at small scale, against a store the core chain built
# ------------------------------------------------------------------------------------------------

START, DAYS = date(2025, 1, 6), 70  # 4 weekly cutoffs with a complete 14-day window
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.mark.e2e
def test_business_unit_trains_against_the_core_world(tmp_path, monkeypatch):
    from factory_assets.assembly.registry import ModelRegistry
    from factory_assets.definitions import build_definitions as build_core
    from factory_assets.public import FactoryStore
    from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data
    from factory_assets.settings import FactoryPaths

    home = tmp_path / "factory"
    monkeypatch.setenv("FACTORY_HOME", str(home))
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    paths = FactoryPaths(home).create()
    generate_demo_data(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=250, seed=5, n_products=60),
                       paths.landing)
    store = FactoryStore(home=str(home))
    # the core location builds the world: raw -> data products -> the customer_activity snapshot
    core = build_core(store)
    selection = (dg.AssetSelection.groups("raw_material", "processing") | dg.AssetSelection.assets(CUSTOMER_ACTIVITY))
    instance = dg.DagsterInstance.ephemeral()
    tags = {"dagster/asset_partition_range_start": START.isoformat(),
            "dagster/asset_partition_range_end": (START + timedelta(days=DAYS - 1)).isoformat()}
    chain = core.resolve_job_def("supply_chain_nightly").execute_in_process(
        instance=instance, tags=tags, run_config=QUIET,
        asset_selection=list(selection.resolve(core.resolve_asset_graph())))
    assert chain.success

    # the unit's location materialises its use case against the same store
    unit = build_definitions(store)
    result = unit.resolve_job_def("customer_care_training").execute_in_process(
        instance=instance, raise_on_error=False, asset_selection=list(training_keys("complaint_risk")),
        run_config={**QUIET, "ops": {"assembly__complaint_risk_model": {"config": {"device": "cpu"}}}})
    failures = [e.event_specific_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failures
    meta = {e.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}
    assert set(meta) == TRAINING_KEYS
    checks = {c.check_name: c.passed for c in (e.event_specific_data for e in result.all_events
                                               if e.event_type_value == "ASSET_CHECK_EVALUATION")}
    assert checks == {"beats_baseline": True, "policy": True}

    training = meta["assembly/complaint_risk_training_set"]
    assert training["dagster/row_count"] > 1000 and 0.01 < training["target_mean"] < 0.2
    model = meta["assembly/complaint_risk_model"]
    assert model["metric/auc"] > 0.65 > model["baseline/auc"]  # real signal: recent orders can turn into complaints
    registry = ModelRegistry(paths.artifacts / "models")
    challenger = registry.get("complaint_risk", "challenger")
    assert challenger.version == model["version"] and challenger.metrics["auc"] == pytest.approx(model["metric/auc"])
    assert challenger.manifest["feature_contracts"] == {"customer_activity": "1.0.0"}
    # medium tier: no feature derived from ticket text sentiment; the label is never a feature
    assert not {"negative_tickets_90d", "avg_ticket_sentiment_90d", LABEL} & set(challenger.feature_names)
    assert {"recency_days", "orders_30d"} <= set(challenger.feature_names)

    gate = meta["assembly/complaint_risk_champion"]
    assert isinstance(gate["promoted"], bool) and gate["reason"]
    if gate["promoted"]:
        assert registry.aliases("complaint_risk")["champion"] == challenger.version
    else:  # the policy's rules, not the gate, held it back; the reason names the rule
        assert "champion" not in registry.aliases("complaint_risk") and "not promoted by policy" in gate["reason"]

    # scored nightly and monitored by its own location's job, like a core use case
    if gate["promoted"]:
        day = (START + timedelta(days=DAYS - 1)).isoformat()
        night = unit.resolve_job_def("customer_care_nightly").execute_in_process(
            instance=instance, partition_key=day, run_config=QUIET, raise_on_error=False)
        assert night.success
        with open_warehouse(paths) as conn:
            scored = conn.execute("select count(*), count(distinct customer_key) from predictions.complaint_risk "
                                  "where scored_date = ?", [date.fromisoformat(day)]).fetchone()
            customers = conn.execute("select count(distinct customer_key) from marts.fct_order_lines").fetchone()[0]
        assert scored == (customers, customers)  # every customer with an order so far, once
        done = {e.asset_key.to_user_string() for e in night.get_asset_materialization_events()}
        assert {"distribution/complaint_risk_predictions", "feedback/complaint_risk_monitoring"} <= done

    # approvable, promotable and auditable from the factory's CLI, like a core use case
    from factory_assets.cli import main

    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    assert main(["promote", "complaint_risk", "--json"]) in (0, 3)  # 3: the gate kept the champion, with a reason
    assert main(["audit", "complaint_risk"]) == 0
    bundle = json.loads(next((paths.artifacts / "audit" / "complaint_risk").rglob("*.json")).read_text())
    assert bundle["use_case"]["business_unit"] == "customer_care"

    # the training set was read at one lake snapshot, recorded in the manifest: the audit rebuilds it
    # by time travel and its hash matches, even after the products it was read from have changed
    snapshot = challenger.manifest["data_versions"]["lake_snapshot"]
    assert snapshot == training["lake_snapshot"]
    rebuild = bundle["training_set_rebuild"]
    assert rebuild == {"lake_snapshot": snapshot, "as_of": training["as_of"], "rows": training["dagster/row_count"],
                       "recorded": challenger.manifest["data_versions"]["training_set"],
                       "rebuilt": challenger.manifest["data_versions"]["training_set"], "matches": True}
    with open_warehouse(paths) as conn:
        conn.execute("delete from marts.fct_order_lines where order_date >= ?", [START + timedelta(days=DAYS // 2)])
    from factory_assets.assembly.lifecycle import rebuild_training_set

    spec = _spec()
    again = rebuild_training_set(paths, spec, challenger.manifest)
    assert again["matches"] is True and again["rows"] == training["dagster/row_count"]
