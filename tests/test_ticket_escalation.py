"""The text use case in the nightly chain (issue 22): customer_care's ``ticket_escalation``.

One world with enough support tickets (``ticket_rate``) is landed; the core ingests its tickets and
customer_care's location its desk outcomes, builds its PII product ``support_tickets`` with its own
dbt project, trains the text-classification template on the ticket words and the contact channel,
and the high tier's gate waits for two signed approvals. Then, night by night: the champion scores
the open tickets into a prediction product without text, monitoring measures drift on the text's
descriptors (never the text), and six nights later every scored ticket has its outcome and live
quality is judged. Real dbt, DuckDB, LightGBM and Evidently.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta

import dagster as dg
import pytest

from approvers import declare_approvers
from factory_assets.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

UNIT_DIR = PROJECT_ROOT / "business_units" / "customer_care"
USE_CASE = "ticket_escalation"
START, DAYS = date(2025, 1, 6), 70
SCORED = START + timedelta(days=56)  # the first night with a champion
DELAY = 6  # the declaration's label_delay_days
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
TEXT = ("subject", "body")


def _metadata(result) -> dict[str, dict]:
    return {e.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def _failures(result) -> list[str]:
    return [e.event_specific_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from factory_assets.definitions import build_definitions as build_core
    from factory_assets.public import FactoryStore, business_unit_definitions
    from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data
    from factory_assets.settings import FactoryPaths

    home = tmp_path_factory.mktemp("factory")
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_HOME", str(home))
    patch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    approvers = declare_approvers(tmp_path_factory.mktemp("approvers"))
    patch.setenv("FACTORY_APPROVERS_FILE", str(approvers))
    patch.setenv("DAGSTER_HOME", str(tmp_path_factory.mktemp("dagster_home")))
    if str(UNIT_DIR) not in sys.path:  # what workspace.yaml's working_directory does for the location
        patch.syspath_prepend(str(UNIT_DIR))
    paths = FactoryPaths(home).create()
    generate_demo_data(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=250, seed=5, n_products=60,
                                        ticket_rate=16.0), paths.landing)
    store = FactoryStore(home=str(home))
    core, unit = build_core(store), business_unit_definitions(UNIT_DIR, store)
    instance = dg.DagsterInstance.ephemeral()
    unit_graph = unit.resolve_asset_graph()
    landing = dg.AssetSelection.assets(dg.AssetKey(["raw_material", "ticket_outcomes"])) | dg.AssetSelection.groups("processing")
    own = (landing | dg.AssetSelection.assets(dg.AssetKey(["distribution", f"{USE_CASE}_predictions"]),
                                              dg.AssetKey(["feedback", f"{USE_CASE}_monitoring"])))

    def night(first: date, last: date | None = None, scoring: bool = False):
        """The core's ticket ingestion, then customer_care's night (scores and monitoring when ``scoring``)."""
        last = last or first
        tags = {"dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat()}
        tickets = core.resolve_job_def("supply_chain_nightly").execute_in_process(
            instance=instance, tags=tags, run_config=QUIET, asset_selection=[dg.AssetKey(["raw_material", "tickets"])])
        assert tickets.success, _failures(tickets)
        selection = list((own if scoring else landing).resolve(unit_graph))
        result = unit.resolve_job_def("customer_care_nightly").execute_in_process(
            instance=instance, tags=tags, run_config=QUIET, asset_selection=selection, raise_on_error=False)
        assert result.success, _failures(result)
        return result

    night(START, SCORED - timedelta(days=1))
    from factory_assets.keys import training_keys

    training = unit.resolve_job_def("customer_care_training").execute_in_process(
        instance=instance, raise_on_error=False, asset_selection=list(training_keys(USE_CASE)),
        run_config={**QUIET, "ops": {f"assembly__{USE_CASE}_model": {"config": {"device": "cpu"}}}})
    assert training.success, _failures(training)
    from types import SimpleNamespace

    from factory_assets.assembly.registry import ModelRegistry

    yield SimpleNamespace(paths=paths, store=store, unit=unit, instance=instance, night=night, training=training,
                          meta=_metadata(training), registry=ModelRegistry(paths.artifacts / "models"),
                          keys=approvers.parent)
    patch.undo()


def _query(paths, sql, params=()):
    from factory_assets.lib.warehouse import open_warehouse

    with open_warehouse(paths) as conn:
        return conn.execute(sql, list(params)).fetchall()


def test_the_text_model_trains_on_exactly_the_closed_tickets_and_beats_the_words_alone(world):
    meta = world.meta
    training = meta[f"assembly/{USE_CASE}_training_set"]
    as_of = date.fromisoformat(training["as_of"])
    assert as_of == SCORED  # the last landed day is SCORED - 1
    closed = _query(world.paths, "select count(*) from customer_care.support_tickets where escalated is not null "
                    f"and created_date + {DELAY} < ?", [as_of])[0][0]
    assert training["dagster/row_count"] == closed > 1500
    model = meta[f"assembly/{USE_CASE}_model"]
    # the words tell a complaint from a question; the contact channel tells as much again
    assert model["metric/auc"] > 1.10 * model["baseline/auc"]
    challenger = world.registry.get(USE_CASE, "challenger")
    assert set(challenger.feature_names) == {"contact_channel", *TEXT}
    assert set(challenger.manifest["extra"]["pii_features"]) == set(TEXT)


def test_the_high_tier_gate_waits_for_two_signed_approvals(world):
    from approvers import APPROVERS
    from factory_assets.cli import main
    from factory_assets.resources import GovernancePolicy

    gate = world.meta[f"assembly/{USE_CASE}_champion"]
    assert gate["promoted"] is False and "0 distinct approval(s) < required 2" in gate["reason"]
    for approver in APPROVERS:
        assert main(["approve", USE_CASE, "challenger", "--approver", approver, "--key", str(world.keys / f"{approver}.pem"),
                     "--decision", "approve", "--note", "read the feature list: ticket text, contact channel"]) == 0
    gate_asset = world.unit.get_assets_def(dg.AssetKey(["assembly", f"{USE_CASE}_champion"]))
    again = _metadata(dg.materialize([gate_asset], resources={"store": world.store, "policy": GovernancePolicy()},
                                     instance=world.instance))
    assert again[f"assembly/{USE_CASE}_champion"]["promoted"] is True
    assert world.registry.aliases(USE_CASE)["champion"] == gate["challenger"]


def test_the_champion_is_a_service_customer_service_calls_with_its_own_tickets(world):
    """The promoted model is in the services catalogue: input contract with the two text columns, the
    high tier's callers only, and a phoned complaint scored above a praise by e-mail."""
    from factory_assets.distribution.services import CallerNotAllowedError, home_catalogue

    catalogue = home_catalogue(world.paths)
    spec = catalogue.spec(USE_CASE)
    assert (spec.kind, spec.risk_tier, spec.owner) == ("model", "high", "team:customer-care")
    assert {c.name: c.type for c in spec.inputs} == {"contact_channel": "string", "subject": "string", "body": "string"}
    tickets = [
        {"contact_channel": "phone", "subject": "Terrible delivery service",
         "body": "This is terrible service, my order is days late. Nobody answered when I called the hotline."},
        {"contact_channel": "email", "subject": "Thank you",
         "body": "Thanks for the quick delivery! The driver was friendly and on time."},
    ]
    result = catalogue.call(USE_CASE, tickets, caller="customer-service")
    complaint, praise = result.outputs["prediction"].to_list()
    assert complaint > 2 * praise and result.version == world.registry.get(USE_CASE, "champion").version
    with pytest.raises(CallerNotAllowedError, match="customer-service"):
        catalogue.call(USE_CASE, tickets, caller="marketing")
    calls = [(r["caller"], r["status"], r["rows"]) for r in catalogue.usage.records() if r["service"] == USE_CASE]
    assert calls[-2:] == [("customer-service", "ok", 2), ("marketing", "refused", 2)]
    assert "terrible" not in repr(catalogue.usage.records()).lower()  # usage never holds the rows' text


def test_nightly_scores_carry_no_text_and_drift_is_measured_on_descriptors(world):
    night = world.night(SCORED, scoring=True)
    meta = _metadata(night)
    open_tickets = _query(world.paths, "select ticket_id from customer_care.support_tickets "
                          "where created_date between ? and ?", [SCORED - timedelta(days=DELAY - 1), SCORED])
    scored = _query(world.paths, f"select ticket_id from predictions.{USE_CASE} where scored_date = ?", [SCORED])
    assert sorted(scored) == sorted(open_tickets) and len(scored) > 150  # every open ticket, once
    columns = {c for (c,) in _query(world.paths, "select column_name from duckdb_columns() where schema_name = "
                                    "'predictions' and table_name = ?", [USE_CASE])}
    assert not columns & set(TEXT) and {"ticket_id", "created_date", "prediction"} <= columns
    bodies = [b for (b,) in _query(world.paths, "select body from customer_care.support_tickets where created_date = ?",
                                   [SCORED])]
    monitoring = meta[f"feedback/{USE_CASE}_monitoring"]
    drift = {k.removeprefix("drift/") for k in monitoring if k.startswith("drift/")}
    assert drift == {"contact_channel", *(f"{c}_{d}" for c in TEXT for d in ("chars", "words", "unseen_word_share"))}
    with open(monitoring["data_drift_report_path"]) as file:
        report = file.read()
    # the report holds numbers, never a ticket's words: not one sentence of the day's tickets is in it
    sentences = {s.strip() for b in bodies for s in b.split(". ") if len(s.strip()) > 20}
    assert len(sentences) > 10 and not [s for s in sentences if s in report]


def test_six_nights_later_every_scored_ticket_has_its_outcome_and_live_quality_is_judged(world):
    world.night(SCORED + timedelta(days=1), SCORED + timedelta(days=DELAY - 1))
    night = world.night(SCORED + timedelta(days=DELAY), scoring=True)
    monitoring = _metadata(night)[f"feedback/{USE_CASE}_monitoring"]
    scored = _query(world.paths, f"select count(*) from predictions.{USE_CASE} where scored_date = ?", [SCORED])[0][0]
    assert monitoring["labels_for_scored_date"] == SCORED.isoformat()
    assert monitoring["labelled_rows"] == scored >= 200  # the desk closes every ticket within five days
    assert monitoring["quality/auc"] > 0.7  # the signal holds on tickets the model never saw

