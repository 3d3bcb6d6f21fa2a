"""The text-classification template: hashed text on sparse LightGBM / XGBoost, the linear baseline
it must beat, the policy on text (personal data), text drift without text in the report."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.templates import encode_features, fit_template, matrix_columns
from factory_assets.assembly.text import (
    hash_text,
    input_column,
    text_descriptors,
    text_encoding,
    vocabulary,
    with_text_described,
)
from factory_assets.assembly.training import TrainedModel
from factory_assets.assembly.feature_schema import infer_feature_schema, validate_features
from factory_assets.governance.policy import load_policy, text_features_refusal
from factory_assets.raw_material.simulator import ticket_triage


@pytest.fixture(scope="module")
def tickets() -> pl.DataFrame:
    return ticket_triage(4000, seed=3)


@pytest.fixture(scope="module")
def fitted(tickets):
    return fit_template("text_classification", tickets, target="escalated", feature_columns=["contact_channel", "body"],
                        time_column="created_date", engine="lightgbm", text_columns=("body",), text_features=2**12)


def test_learns_text_and_context_and_beats_the_linear_baseline(fitted):
    # the label depends on the kind of complaint (text) and on phoning (context): a bag of words
    # alone cannot see the channel, the boosted model with both must do better
    assert fitted.baseline_name.startswith("linear")
    assert fitted.baseline_metrics["auc"] > 0.65, "the text alone carries signal"
    assert fitted.metrics["auc"] > fitted.baseline_metrics["auc"] + 0.02
    importance = fitted.model.feature_importance()
    assert set(importance) == {"contact_channel", "body"}
    assert importance["body"] > 0.2 and importance["contact_channel"] > 0.05
    assert sum(importance.values()) == pytest.approx(1.0)


def test_scoring_encodes_text_as_training_did_and_the_model_round_trips(fitted, tickets):
    assert fitted.model.feature_names == ["contact_channel", "body"]
    assert fitted.categories["body"] == text_encoding(2**12)
    X, _ = encode_features(tickets, fitted.model.feature_names, fitted.categories)
    assert X.shape == (tickets.height, 1 + 2**12)
    loaded = TrainedModel.from_bytes("lightgbm", "binary", fitted.model.feature_names, fitted.model.to_bytes())
    np.testing.assert_array_equal(loaded.predict(X), fitted.model.predict(X))
    # a text column among the others keeps its place: names and matrix agree column by column
    names = matrix_columns(["contact_channel", "body"], fitted.categories)
    assert names[0] == "contact_channel" and input_column(names[1]) == "body" and len(names) == X.shape[1]


def test_xgboost_trains_on_the_same_sparse_matrix():
    frame = ticket_triage(1500, seed=4)
    result = fit_template("text_classification", frame, target="escalated", feature_columns=["body", "contact_channel"],
                          time_column="created_date", engine="xgboost", text_columns=("body",), text_features=2**10)
    assert result.metrics["auc"] > 0.6
    X, _ = encode_features(frame, result.model.feature_names, result.categories)
    loaded = TrainedModel.from_bytes("xgboost", "binary", result.model.feature_names, result.model.to_bytes())
    np.testing.assert_allclose(loaded.predict(X), result.model.predict(X), rtol=1e-6)


def test_hashing_is_stateless_and_sees_words_and_pairs():
    encoding = text_encoding(2**10)
    one = hash_text(pl.Series(["late delivery again", None]), encoding)
    again = hash_text(pl.Series(["late delivery again"]), encoding)
    assert one.shape == (2, 2**10)
    assert one[0].nnz == 5  # 3 words + 2 pairs (collisions aside, which 3 short words don't hit here)
    assert one[1].nnz == 0  # null text: no words
    assert (one[0] != again[0]).nnz == 0


def test_template_and_declaration_refuse_text_where_it_does_not_belong(tickets):
    with pytest.raises(ValueError, match="needs text_columns"):
        fit_template("text_classification", tickets, target="escalated", feature_columns=["contact_channel"],
                     time_column="created_date", engine="lightgbm")
    base = dict(name="ticket_triage", description="d", training_set="a.b:C", target="escalated", label_delay_days=1,
                entity="ticket_id", time_column="created_date", metric="auc", risk_tier="high", business_unit="service",
                owner="team:service", engine="lightgbm")
    UseCaseSpec(**base, template="text_classification", text_columns="body")
    with pytest.raises(ValueError, match="text_columns.*needs at least one"):
        UseCaseSpec(**base, template="text_classification")
    with pytest.raises(ValueError, match="other templates take none"):
        UseCaseSpec(**base, template="binary_classification", text_columns=["body"])
    with pytest.raises(ValueError, match="is a key"):
        UseCaseSpec(**base, template="text_classification", text_columns=["ticket_id"])


def test_the_tier_decides_whether_text_may_be_a_feature():
    policy = load_policy()
    assert text_features_refusal(policy, "ticket_triage", "high", ("body",)) is None
    refusal = text_features_refusal(policy, "ticket_triage", "medium", ("body",))
    assert "personal data" in refusal and "tiers.medium.pii_features_allowed" in refusal and "high" in refusal
    assert text_features_refusal(policy, "late_delivery", "low", ()) is None


def test_the_scoring_contract_takes_text_and_says_so(fitted, tickets):
    schema = infer_feature_schema(tickets, ["contact_channel", "body"], fitted.categories)
    assert [f["kind"] for f in schema] == ["categorical", "text"]
    checked = validate_features(pl.DataFrame({"contact_channel": ["phone"], "body": [12345]}), schema)
    assert not checked.errors and checked.frame["body"].to_list() == ["12345"]


def test_text_drift_is_measured_on_descriptors_never_on_text(tmp_path):
    from factory_assets.feedback.monitoring import data_drift

    reference = ticket_triage(800, seed=5).select("contact_channel", "body")
    same = ticket_triage(800, seed=6).select("contact_channel", "body")
    secret = "Zyxqplm Vortigaunt invoice"  # a new topic nobody wrote about before
    shifted = same.with_columns((pl.col("body") + pl.lit(f" {secret} refund refund chargeback lawyer")).alias("body"))

    words = vocabulary(reference["body"])
    assert "delivery" in words and "vortigaunt" not in words
    assert text_descriptors(reference["body"], words)["body_unseen_word_share"].mean() < 0.05
    assert text_descriptors(shifted["body"], words)["body_unseen_word_share"].mean() > 0.15

    ref, cur, columns = with_text_described(reference, same, ["contact_channel", "body"], ["body"])
    assert columns == ["contact_channel", "body_chars", "body_words", "body_unseen_word_share"]
    assert "body" not in ref.columns and "body" not in cur.columns

    calm = data_drift(reference, same, ["contact_channel", "body"], text_columns=("body",))
    assert calm.drifted_columns == []
    report = tmp_path / "drift.html"
    moved = data_drift(reference, shifted, ["contact_channel", "body"], text_columns=("body",), report_path=report)
    assert {"body_chars", "body_words", "body_unseen_word_share"} <= set(moved.drifted_columns)
    assert "contact_channel" not in moved.drifted_columns
    html = report.read_text()
    assert "body_unseen_word_share" in html
    assert secret not in html and "Vortigaunt" not in html and "wrong item" not in html
