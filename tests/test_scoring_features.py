"""A champion trained on a feature its use case no longer produces (a column renamed since) is not
scored with a bare KeyError: the night's scoring names the use case, version and missing features
and says what to do, and nothing is written to the prediction product."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import polars as pl
import pytest

from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.templates import fit_template
from factory_assets.assembly.training_sets import TrainingSetBuilder
from factory_assets.distribution.scoring import ModelFeaturesMissingError, score_days

DAY = dt.date(2025, 6, 1)
SPEC = UseCaseSpec(name="churn_demo", description="d", template="binary_classification",
                   training_set={"products": ["visits"], "spine": "visits"}, target="y", label_delay_days=7,
                   entity="customer_key", time_column="t", metric="auc", risk_tier="low",
                   business_unit="marketing", owner="team:marketing", engine="lightgbm")


def _rows(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pl.DataFrame({"customer_key": [f"c{i}" for i in range(n)], "t": [DAY] * n, "x1": x1, "x2": x2,
                         "y": (x1 - x2 + rng.normal(size=n) > 0)})


def _builder(frame: pl.DataFrame) -> TrainingSetBuilder:
    def rows(conn, spec, as_of):
        return frame

    return TrainingSetBuilder(build=rows, score=rows, outcome=lambda *a: None, labels={"y"})


@pytest.fixture(scope="module")
def model():
    history = _rows(600, 0).with_columns(t=pl.Series([DAY - dt.timedelta(days=60 - i // 10) for i in range(600)]))
    return fit_template("binary_classification", history, target="y", feature_columns=["x1", "x2"], time_column="t",
                        engine="lightgbm", device="cpu", params={"num_threads": 1}, metric="auc").model


def test_a_feature_renamed_since_training_is_named_with_what_to_do_and_nothing_is_written(model, tmp_path):
    conn = duckdb.connect()
    renamed = _rows(50, 1).drop("y").rename({"x2": "x2_renamed"})
    with pytest.raises(ModelFeaturesMissingError) as caught:
        score_days(conn, SPEC, _builder(renamed), model, {}, model_version="v3", table="predictions.churn_demo",
                   days=[DAY], snapshot_folder=tmp_path)
    assert str(caught.value).startswith("churn_demo v3 was trained on feature(s) ['x2'] that its scoring rows no longer have")
    assert "factory run --layer assembly" in str(caught.value) and "factory promote churn_demo" in str(caught.value)
    assert conn.execute("select count(*) from information_schema.tables where table_name = 'churn_demo'").fetchone() == (0,)
    assert not list(tmp_path.iterdir())


def test_the_same_model_scores_rows_that_have_its_features(model, tmp_path):
    conn = duckdb.connect()
    written = score_days(conn, SPEC, _builder(_rows(50, 1).drop("y")), model, {}, model_version="v3",
                         table="predictions.churn_demo", days=[DAY], snapshot_folder=tmp_path)
    assert written[DAY].height == 50
    assert conn.execute("select count(*) from predictions.churn_demo").fetchone() == (50,)
