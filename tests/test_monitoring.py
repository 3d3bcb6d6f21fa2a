"""Pure parts of distribution and feedback: drift measurement, thresholds, partition writes and the
sensor's decision, tested directly (no chain run)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from factory_assets.distribution.scoring import write_partition
from factory_assets.feedback import monitoring as mon
from factory_assets.keys import monitoring_key
from factory_assets.feedback.sensors import retraining_requests


def frames(rows: int, shift: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    reference = pl.DataFrame({"stable": rng.normal(size=rows), "moving": rng.normal(size=rows),
                              "channel": rng.choice(["web", "edi"], rows), "order_ref": [f"O{i}" for i in range(rows)]})
    current = pl.DataFrame({"stable": rng.normal(size=rows), "moving": rng.normal(size=rows) + shift,
                            "channel": rng.choice(["web", "edi", "marketplace"], rows, p=[0.45, 0.4, 0.15]),
                            "order_ref": [f"O{i}" for i in range(rows)]})
    return reference, current


def test_data_drift_flags_the_moved_columns_only_and_says_how(tmp_path):
    reference, current = frames(6_000, shift=0.8)
    config = mon.MonitoringConfig(**{**mon.monitoring_config().model_dump(), "sample_rows": 4_000})
    result = mon.data_drift(reference, current, reference.columns, config=config, report_path=tmp_path / "r.html")
    assert set(result.drifted_columns) == {"moving", "channel"}
    assert result.share == pytest.approx(2 / 3)
    assert "order_ref" in result.excluded and "identifier" in result.excluded["order_ref"]
    assert result.scores["stable"] < 0.1 < result.scores["moving"]
    assert "4000 of 6000" in result.sampling and "seed 0" in result.sampling
    assert (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html")


def test_no_shift_no_drift():
    reference, current = frames(2_000, shift=0.0)
    current = current.with_columns(pl.Series("channel", reference["channel"].sample(fraction=1.0, shuffle=True, seed=3)))
    result = mon.data_drift(reference, current, ["stable", "moving", "channel"])
    assert result.drifted_columns == [] and result.share == 0.0
    assert result.sampling.startswith("all rows")


def test_relative_drop_respects_the_metric_direction():
    assert mon.relative_drop(True, 0.9, 0.81) == pytest.approx(0.1)     # AUC fell 10 %
    assert mon.relative_drop(False, 0.5, 0.6) == pytest.approx(0.2)     # WAPE rose 20 %
    assert mon.relative_drop(True, 0.9, 0.95) < 0


def test_limits_come_from_the_policy_and_a_bad_method_file_names_the_field(tmp_path):
    from factory_assets.governance.policy import POLICY_FILE, load_policy

    config = mon.load_monitoring_config()
    assert config.tiers["high"].max_drift_share == load_policy().tier("high").max_drift_share
    path = tmp_path / "m.yaml"
    path.write_text("numerical_method: wasserstein\ncolumn_threshold: -1\n")
    with pytest.raises(mon.MonitoringConfigError, match=r"m.yaml.*column_threshold"):
        mon.load_monitoring_config(path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_FILE.read_text().replace("max_drift_share: 0.4", "max_drift_share: 0.3"))
    assert mon.load_monitoring_config(policy_file=policy).tiers["high"].max_drift_share == 0.3

def test_a_partition_is_replaced_atomically():
    conn = duckdb.connect()
    day = dt.date(2025, 3, 1)
    first = pl.DataFrame({"scored_date": [day, day], "id": ["a", "b"], "prediction": [0.1, 0.2]})
    assert write_partition(conn, "predictions.demo", first, day) == 2
    assert write_partition(conn, "predictions.demo", first.head(1), day) == 1  # re-run: replaced, not appended
    assert conn.execute("select count(*) from predictions.demo").fetchone()[0] == 1
    broken = pl.DataFrame({"scored_date": [day], "id": ["c"], "prediction": ["not a number"]})
    with pytest.raises(duckdb.Error):
        write_partition(conn, "predictions.demo", broken, day)
    assert conn.execute("select id from predictions.demo").fetchall() == [("a",)]  # failed run: untouched


def _record(instance, use_case, day, breaches, version="v1"):
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=monitoring_key(use_case), partition=day,
        metadata={"breaches": dg.MetadataValue.json(breaches), "model_version": version}))


def test_the_sensor_reads_recorded_breaches_and_requests_one_run_per_use_case():
    instance = dg.DagsterInstance.ephemeral()
    _record(instance, "late_delivery", "2025-03-20", [])
    _record(instance, "late_delivery", "2025-03-24", ["drift share 0.55 > 0.5"])
    _record(instance, "late_delivery", "2025-03-25", ["drift share 0.52 > 0.5"])
    _record(instance, "demand_forecast", "2025-03-25", [])
    requests, cursor = retraining_requests(instance, ["late_delivery", "demand_forecast"], {})
    assert [r.tags["factory/use_case"] for r in requests] == ["late_delivery"]
    assert requests[0].run_key == "retrain:late_delivery:v1:2025-W13"
    assert requests[0].tags["factory/breach_day"] == "2025-03-25"
    assert retraining_requests(instance, ["late_delivery", "demand_forecast"], cursor)[0] == []
    _record(instance, "late_delivery", "2025-03-26", ["drift share 0.6 > 0.5"])  # same champion, same week
    again, _ = retraining_requests(instance, ["late_delivery"], cursor)
    assert [r.run_key for r in again] == [requests[0].run_key]  # Dagster drops a repeated run key


def test_override_feedback_joins_entities_of_any_type():
    """A use case whose entity ids are integers: operators' overrides (entity ids as text) still
    line up with its labelled predictions (a string/integer join used to raise a SchemaError)."""
    from factory_assets.assembly.specs import UseCaseSpec
    from factory_assets.feedback.outcomes import OVERRIDES, override_feedback

    spec = UseCaseSpec(name="readmission", description="d", template="binary_classification",
                       training_set={"products": ["visits"], "spine": "visits"}, target="readmitted",
                       label_delay_days=30, entity="visit_id", time_column="discharged_on", metric="auc",
                       risk_tier="low", business_unit="clinic", owner="team:clinic", engine="lightgbm")
    conn = duckdb.connect()
    schema, table = OVERRIDES.split(".")
    conn.execute(f"create schema {schema}")
    conn.execute(f"create table {OVERRIDES} (use_case varchar, entity_id varchar, override_label boolean, "
                 "created_at timestamp, created_date date)")
    conn.execute(f"insert into {OVERRIDES} values ('readmission', '7', true, '2019-03-01 10:00', '2019-03-01'), "
                 "('readmission', '8', false, '2019-03-01 11:00', '2019-03-01'), "
                 "('other_case', '9', true, '2019-03-01 11:00', '2019-03-01')")
    labelled = pl.DataFrame({"visit_id": [7, 8, 9], "prediction": [0.9, 0.8, 0.1], "actual": [True, True, False]})
    feedback = override_feedback(conn, spec, labelled, dt.date(2019, 3, 2))
    # rows 7 and 8 were overridden (9 belongs to another use case): the operator was right once, the model twice
    assert feedback == {"rows": 2.0, "operator_accuracy": 0.5, "model_accuracy": 1.0, "disagreement_rate": 0.5}


# ---- every saved report says what it is, for which day, against what, within which limits ----


class _Page:
    """The text a reader sees in a saved report (outside scripts and styles), and its <title>."""

    def __init__(self, path):
        from html.parser import HTMLParser

        page = self

        class Parser(HTMLParser):
            def __init__(self):
                super().__init__(convert_charrefs=True)
                self.stack: list[str] = []

            def handle_starttag(self, tag, attrs):
                self.stack.append(tag)

            def handle_endtag(self, tag):
                while self.stack and self.stack.pop() != tag:
                    pass

            def handle_data(self, data):
                where = self.stack[-1] if self.stack else ""
                if where == "title":
                    page.title += data
                elif where not in ("script", "style"):
                    page.text += " " + data

        self.title, self.text = "", ""
        self.raw = path.read_text()
        Parser().feed(self.raw)
        self.text = " ".join(self.text.split())


def _context(reference: str, use_case="late_delivery", tier="medium"):
    return mon.ReportContext(use_case=use_case, day="2025-02-10", risk_tier=tier,
                             limits=mon.monitoring_config().tiers[tier], model_version="v0003", reference=reference)


EXTRA = {"training_as_of": "2025-02-01", "test_window": ["2025-01-18", "2025-01-31"],
         "reference": {"file": "reference.parquet", "rows": 900, "sampling": "uniform without replacement, at most "
                       "5000 rows, seed 0", "days": [f"2025-01-{d:02d}" for d in (20, 22, 24, 26, 28, 30)] + ["2025-02-01"]}}


def test_a_drift_report_is_headed_with_its_use_case_day_reference_and_limits(tmp_path):
    reference, current = frames(400, shift=0.5)
    reference = reference.with_columns(prediction=pl.Series(np.linspace(0, 1, 400)))
    current = current.with_columns(prediction=pl.Series(np.linspace(0.2, 1, 400)))
    context = _context(mon.drift_reference_text("v0003", EXTRA))
    config = mon.monitoring_config()
    limits = config.tiers["medium"]
    mon.data_drift(reference, current, ["stable", "moving", "channel", "order_ref"], config=config,
                   report_path=tmp_path / "data_drift.html", context=context)
    mon.data_drift(reference, current, ["prediction"], config=config, report_path=tmp_path / "prediction_drift.html",
                   context=context, kind="prediction drift")

    data = _Page(tmp_path / "data_drift.html")
    assert data.raw.lstrip().lower().startswith("<!doctype html")
    assert data.title == "late_delivery: data drift on 2025-02-10"
    assert data.text.startswith("late_delivery: data drift on 2025-02-10 Monitors data drift of 3 column(s): "
                                "stable, moving, channel; left out: order_ref (400 categories")
    for fragment in ("Day 2025-02-10: the day's scoring batch, 400 rows",
                     "Reference model v0003's drift reference: the scoring sets of 7 days from 2025-01-20 to "
                     "2025-02-01, scored by the model (up to its training as-of date 2025-02-01); "
                     "uniform without replacement, at most 5000 rows, seed 0; 400 rows",
                     f"Limits max_drift_share {limits.max_drift_share:g} (share of drifted feature columns",
                     "medium tier of governance/policy.yaml",
                     f"a column drifts when its distance exceeds {config.column_threshold:g}",
                     "Method wasserstein (numbers) / jensenshannon (categories)",
                     "Count of Drifted Columns"):  # Evidently's own widgets still follow (rendered in the page)
        assert fragment in (data.text if fragment != "Count of Drifted Columns" else data.raw), fragment
    assert "Drift in column 'moving'" in data.raw  # what the UI test opens: each column's own section

    prediction = _Page(tmp_path / "prediction_drift.html")
    assert prediction.title == "late_delivery: prediction drift on 2025-02-10"
    assert "Monitors drift of the predictions (column prediction) of model v0003" in prediction.text
    assert f"Limits max_prediction_drift {limits.max_prediction_drift:g} (drift score of the predictions; above it " \
        "retraining is recommended), medium tier of governance/policy.yaml Method" in prediction.text
    assert "Reference model v0003's drift reference" in prediction.text


def test_a_quality_report_is_headed_with_the_expected_metric_and_its_limits(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.uniform(size=300)
    labelled = pl.DataFrame({"prediction": p, "actual": (rng.uniform(size=300) < p).astype(np.int8),
                             "model_version": ["v0003"] * 300})
    reference = mon.quality_reference_text("auc", 0.8123, {"v0003": EXTRA})
    limits = mon.monitoring_config().tiers["medium"]
    result = mon.model_quality(labelled, "binary", report_path=tmp_path / "quality.html", context=_context(reference),
                               metric="auc", scored="2025-02-03")
    assert result.report_path == tmp_path / "quality.html"
    page = _Page(tmp_path / "quality.html")
    assert page.title == "late_delivery: live quality (auc) on 2025-02-10"
    for fragment in ("Monitors auc of the predictions of v0003 scored on 2025-02-03 against their outcomes, "
                     "300 labelled rows (binary classification: ClassificationPreset)",
                     "Day 2025-02-10: outcomes known by the end of the day, for the predictions scored on 2025-02-03",
                     "Reference expected auc 0.8123: the test auc recorded when the scoring model was trained "
                     "(v0003 tested on 2025-01-18 to 2025-01-31)",
                     f"Limits max_quality_drop {limits.max_quality_drop:g} (relative loss against the expected metric",
                     f"at least {limits.min_labelled_rows} labelled rows (min_labelled_rows), medium tier"):
        assert fragment in page.text, fragment


def test_the_heading_is_escaped(tmp_path):
    reference, current = frames(200, shift=0.0)
    hostile = '<script>alert("x")</script> & <b>bold</b>'
    mon.data_drift(reference, current, ["stable"], report_path=tmp_path / "r.html",
                   context=_context(hostile, use_case='uc"<i>'))
    page = _Page(tmp_path / "r.html")
    assert hostile in page.text and page.title.startswith('uc"<i>: data drift')  # shown as text...
    heading = page.raw[page.raw.index('<header id="factory-report-heading"'):page.raw.index("</header>")]
    assert "<script>" not in heading and "<b>" not in heading and "<i>" not in heading  # ...never as markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in heading
