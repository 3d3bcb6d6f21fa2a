"""Policy as code: the shipped policy loads; each mistake names its field; each rule passes and fails for the right reason."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from factory_assets.governance.policy import (
    POLICY_FILE,
    ModelFacts,
    Policy,
    PolicyError,
    evaluate_compliance,
    evaluate_promotion,
    load_policy,
    policy_version_hash,
    scoring_allowed,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def _facts(**changes) -> ModelFacts:
    """A high-tier model that passes every promotion rule; tests change one thing at a time."""
    base = dict(
        use_case="purchase_propensity",
        risk_tier="high",
        uses=("retention_campaigns",),
        metric="auc",
        higher_is_better=True,
        metrics={"auc": 0.85},
        baseline_metrics={"auc": 0.70},
        champion_metrics={"auc": 0.80},
        segment_metrics={
            "region": {"north": {"rows": 500, "auc": 0.86}, "south": {"rows": 400, "auc": 0.82}},
            "channel": {"web": {"rows": 900, "auc": 0.85}, "store": {"rows": 300, "auc": 0.84}},
        },
        features=("recency_days", "orders_90d"),
        pii_features=(),
        approvals=2,
        rejected=False,
        registered_at=NOW - timedelta(days=10),
        now=NOW,
        latest_drift_share=0.1,
    )
    base.update(changes)
    return ModelFacts(**base)


def _rule(report, name):
    (result,) = [r for r in report.rules if r.rule == name]
    return result


def _write_policy(folder: Path, edit) -> Path:
    raw = yaml.safe_load(POLICY_FILE.read_text())
    edit(raw)
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ---- the policy file ------------------------------------------------------------------------


def test_shipped_policy_loads(policy):
    assert set(policy.tiers) == {"low", "medium", "high"}
    assert policy.segments == ("region", "channel")
    assert [policy.tier(t).required_approvals for t in ("low", "medium", "high")] == [0, 0, 2]
    assert [policy.tier(t).promotion_margin for t in ("low", "medium", "high")] == [0.0, 0.01, 0.02]
    assert policy.tier("low").pii_features_allowed is False
    assert "credit_scoring" in policy.uses.prohibited
    assert len(policy_version_hash()) == 16


def test_shipped_use_cases_are_allowed_by_the_policy(policy):
    declared = {  # the uses the lead adds to the use-case YAML files
        "late_delivery": ("medium", ("logistics_planning", "customer_service_priority")),
        "demand_forecast": ("low", ("replenishment", "staffing")),
        "purchase_propensity": ("high", ("retention_campaigns",)),
    }
    for name, (tier, uses) in declared.items():
        report = scoring_allowed(policy, _facts(use_case=name, risk_tier=tier, uses=uses, approvals=2))
        assert report.passed, report.summary()


@pytest.mark.parametrize(
    ("edit", "field", "fragment"),
    [
        (lambda raw: raw["tiers"]["low"].update(colour="red"), "tiers.low.colour", "unknown field"),
        (lambda raw: raw.update(owner="risk"), "owner", "unknown field"),
        (lambda raw: raw["tiers"]["high"].update(required_approvals=-1), "tiers.high.required_approvals",
         "greater than or equal to 0"),
        (lambda raw: raw["tiers"]["high"].update(required_approvals="2"), "tiers.high.required_approvals",
         "valid integer"),
        (lambda raw: raw["tiers"]["medium"].update(max_drift_share=1.5), "tiers.medium.max_drift_share",
         "less than or equal to 1"),
        (lambda raw: raw["tiers"]["low"].update(pii_features_allowed="no"), "tiers.low.pii_features_allowed",
         "valid boolean"),
        (lambda raw: raw["tiers"].pop("high"), "tiers.high", "missing tier"),
        (lambda raw: raw["tiers"].update(extreme=raw["tiers"]["high"]), "tiers.extreme", "'low', 'medium' or 'high'"),
        (lambda raw: raw["uses"]["allowed_by_tier"].pop("low"), "uses.allowed_by_tier.low", "missing tier"),
        (lambda raw: raw["uses"]["allowed_by_tier"]["medium"].append("credit_scoring"), "uses.allowed_by_tier.medium",
         "prohibited or allowed, not both"),
        (lambda raw: raw["tiers"]["low"].update(pii_features_allowed=True), "tiers.low.pii_features_allowed",
         "required_approvals >= 1"),
        (lambda raw: raw.update(version=1.0), "version", "valid string"),
        (lambda raw: raw.update(version="v1"), "version", "semantic version"),
        (lambda raw: raw.pop("uses"), "uses", "missing"),
    ],
)
def test_policy_mistakes_name_the_field(tmp_path, edit, field, fragment):
    path = _write_policy(tmp_path, edit)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert fragment in message


@pytest.mark.parametrize(("text", "fragment"), [("tiers: [low\n", "cannot read YAML"), ("- 1\n- 2\n", "expected a mapping")])
def test_unreadable_policy(tmp_path, text, fragment):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=fragment) as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read YAML"):
        load_policy(tmp_path / "nope.yaml")


# ---- promotion rules ------------------------------------------------------------------------


def test_reference_facts_pass_every_promotion_rule(policy):
    report = evaluate_promotion(policy, _facts())
    assert report.passed, report.summary()
    assert [r.rule for r in report.rules] == [
        "prohibited_use", "allowed_use", "min_lift", "promotion_margin", "segment_gap", "pii_features",
        "approvals", "shadow_period",
    ]
    as_dict = report.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["policy_version"] == policy.version and as_dict["passed"] is True


@pytest.mark.parametrize(("approvals", "rejected", "passed"), [(0, False, False), (1, False, False), (2, False, True),
                                                               (2, True, False)])
def test_high_tier_needs_two_approvers_and_no_rejection(policy, approvals, rejected, passed):
    report = evaluate_promotion(policy, _facts(approvals=approvals, rejected=rejected))
    result = _rule(report, "approvals")
    assert result.passed is passed and report.passed is passed
    assert ("rejected" in result.detail) is rejected
    if not rejected:
        assert f"{approvals} distinct approval(s)" in result.detail and "required 2 (tier high)" in result.detail


def test_low_tier_needs_no_approval(policy):
    facts = _facts(risk_tier="low", uses=("replenishment",), approvals=0)
    assert _rule(evaluate_promotion(policy, facts), "approvals").passed


def test_a_broken_approvals_log_blocks_every_tier_and_discounted_decisions_are_named(policy):
    broken = "approvals.jsonl:2: its 'prev' hash does not match line 1"
    for tier, uses in (("high", ("retention_campaigns",)), ("low", ("replenishment",))):
        result = _rule(evaluate_promotion(policy, _facts(risk_tier=tier, uses=uses, approvals=2,
                                                         approvals_blocked=broken)), "approvals")
        assert not result.passed and result.detail == f"approvals cannot be trusted: {broken}"
    assert not scoring_allowed(policy, _facts(approvals=2, approvals_blocked=broken)).passed
    notes = tuple(f"p{i} approve: unsigned" for i in range(7))
    result = _rule(evaluate_promotion(policy, _facts(approvals=1, approval_notes=notes)), "approvals")
    assert not result.passed and "not counted: p0 approve: unsigned" in result.detail and "and 2 more" in result.detail


def test_segment_gap_over_the_limit_fails(policy):
    # high tier: 10 %; north 0.90 vs south 0.78 -> gap 13.3 %
    segments = {"region": {"north": {"rows": 500, "auc": 0.90}, "south": {"rows": 400, "auc": 0.78}}}
    result = _rule(evaluate_promotion(policy, _facts(segment_metrics=segments)), "segment_gap")
    assert not result.passed
    assert "gap 13.3% > max_segment_gap" in result.detail and "10%" in result.detail
    assert "(north)" in result.detail and "(south)" in result.detail
    assert "channel: not measured (no such column in the training set)" in result.detail


def test_segment_gap_under_the_limit_passes_and_small_segments_are_ignored(policy):
    segments = {"region": {"north": {"rows": 500, "auc": 0.86}, "south": {"rows": 400, "auc": 0.80},
                           "islands": {"rows": 20, "auc": 0.30}}}  # too few rows to count
    result = _rule(evaluate_promotion(policy, _facts(segment_metrics=segments)), "segment_gap")
    assert result.passed, result.detail
    assert "gap 7.0% <= max_segment_gap" in result.detail and "islands" not in result.detail


def test_segment_gap_with_one_qualifying_segment_passes(policy):
    segments = {"region": {"north": {"rows": 500, "auc": 0.90}, "south": {"rows": 50, "auc": 0.20}}}
    result = _rule(evaluate_promotion(policy, _facts(segment_metrics=segments)), "segment_gap")
    assert result.passed and "region: not enough rows" in result.detail


def test_segment_gap_is_direction_aware(policy):
    """wape: lower is better, so the best segment is the lowest; gap = (worst - best) / best."""
    facts = dict(use_case="demand_forecast", risk_tier="low", uses=("replenishment",), metric="wape",
                 higher_is_better=False, metrics={"wape": 0.70}, baseline_metrics={"wape": 1.0}, champion_metrics=None)
    # low tier: 30 %. 0.50 vs 0.60 -> 20 % passes; 0.50 vs 0.70 -> 40 % fails.
    ok = {"region": {"north": {"rows": 500, "wape": 0.50}, "south": {"rows": 500, "wape": 0.60}}}
    bad = {"region": {"north": {"rows": 500, "wape": 0.50}, "south": {"rows": 500, "wape": 0.70}}}
    passed = _rule(evaluate_promotion(policy, _facts(**facts, segment_metrics=ok)), "segment_gap")
    failed = _rule(evaluate_promotion(policy, _facts(**facts, segment_metrics=bad)), "segment_gap")
    assert passed.passed and "best 0.5 (north) worst 0.6 (south), gap 20.0%" in passed.detail
    assert not failed.passed and "best 0.5 (north) worst 0.7 (south), gap 40.0%" in failed.detail
    # Read as higher-is-better, the same numbers would name the other segment best.
    assert "best 0.7 (south)" in _rule(
        evaluate_promotion(policy, _facts(**{**facts, "higher_is_better": True}, segment_metrics=bad)), "segment_gap"
    ).detail


def _demand_facts(segments):
    return _facts(use_case="demand_forecast", risk_tier="low", uses=("replenishment",), metric="wape",
                  higher_is_better=False, metrics={"wape": 0.70}, baseline_metrics={"wape": 1.0},
                  champion_metrics=None, segment_metrics=segments)


def test_sparse_segments_are_compared_on_their_error_relative_to_the_baseline(policy):
    """The demo's regions: one warehouse in west, two in east, so east's daily counts are half as
    big and its WAPE a third higher for the same model; relative to the seasonal-naive baseline on
    the same rows the model serves both alike. A model that is worse in one region still fails."""
    fair = {"region": {"west": {"rows": 11200, "wape": 0.62, "relative_mae": 0.78},
                       "east": {"rows": 22400, "wape": 0.83, "relative_mae": 0.77}}}
    result = _rule(evaluate_promotion(policy, _demand_facts(fair)), "segment_gap")
    assert result.passed, result.detail
    assert "region: relative_mae best 0.77 (east) worst 0.78 (west), gap 1.3% <= max_segment_gap" in result.detail
    worse_in_east = {"region": {"west": {"rows": 11200, "wape": 0.62, "relative_mae": 0.70},
                                "east": {"rows": 22400, "wape": 0.70, "relative_mae": 0.98}}}
    result = _rule(evaluate_promotion(policy, _demand_facts(worse_in_east)), "segment_gap")
    assert not result.passed and "worst 0.98 (east), gap 40.0% > max_segment_gap" in result.detail


def test_relative_error_is_the_models_error_over_the_baselines_on_each_segments_rows():
    """Poisson counts: one region at rate 2, one at rate 8. Knowing each region's rate, the model's
    WAPE differs ~2x between them (noise), its error relative to a naive draw hardly at all."""
    import numpy as np
    import polars as pl

    from factory_assets.assembly.templates import segment_metrics

    rng = np.random.default_rng(3)
    region = np.repeat(["sparse", "dense"], 20_000)
    rate = np.where(region == "sparse", 2.0, 8.0)
    y, naive = rng.poisson(rate).astype(float), rng.poisson(rate).astype(float)  # naive: last week's count
    out = segment_metrics(pl.DataFrame({"region": region}), y, np.floor(rate), "regression", ("region",), baseline=naive)
    sparse, dense = out["region"]["sparse"], out["region"]["dense"]
    assert sparse["wape"] / dense["wape"] > 1.6
    assert abs(sparse["relative_mae"] / dense["relative_mae"] - 1) < 0.1
    assert "relative_mae" not in segment_metrics(pl.DataFrame({"region": region}), y, rate, "regression", ("region",))["region"]["sparse"]


def test_pii_features_fail_for_low_tier_and_pass_for_high(policy):
    low = _facts(risk_tier="low", uses=("replenishment",), pii_features=("customer_age",))
    result = _rule(evaluate_promotion(policy, low), "pii_features")
    assert not result.passed and "customer_age" in result.detail and "tier low" in result.detail
    assert not scoring_allowed(policy, low).passed
    assert _rule(evaluate_promotion(policy, _facts(pii_features=("customer_age",))), "pii_features").passed


def test_prohibited_use_fails(policy):
    report = evaluate_promotion(policy, _facts(uses=("retention_campaigns", "credit_scoring")))
    assert not _rule(report, "prohibited_use").passed
    assert "credit_scoring" in _rule(report, "prohibited_use").detail
    assert not _rule(report, "allowed_use").passed
    assert not scoring_allowed(policy, _facts(uses=("credit_scoring",))).passed


def test_use_outside_the_tier_or_no_use_fails(policy):
    outside = _rule(evaluate_promotion(policy, _facts(uses=("staffing",))), "allowed_use")
    assert not outside.passed and "'staffing'" in outside.detail and "retention_campaigns" in outside.detail
    assert not _rule(evaluate_promotion(policy, _facts(uses=())), "allowed_use").passed


@pytest.mark.parametrize(("days", "passed"), [(0, False), (6.9, False), (7, True), (30, True)])
def test_shadow_period(policy, days, passed):
    result = _rule(evaluate_promotion(policy, _facts(registered_at=NOW - timedelta(days=days))), "shadow_period")
    assert result.passed is passed and "shadow_days 7 (tier high)" in result.detail


def test_a_first_model_has_no_champion_to_shadow(policy):
    facts = _facts(champion_metrics=None, registered_at=NOW)
    assert _rule(evaluate_promotion(policy, facts), "shadow_period").passed


def test_low_tier_has_no_shadow_period(policy):
    facts = _facts(risk_tier="low", uses=("staffing",), registered_at=NOW)
    assert _rule(evaluate_promotion(policy, facts), "shadow_period").passed


def test_min_lift(policy):
    # medium tier: 5 %. auc 0.8250 over baseline 0.80 = 3.1 %.
    facts = dict(risk_tier="medium", uses=("logistics_planning",), baseline_metrics={"auc": 0.80}, champion_metrics=None)
    low = _rule(evaluate_promotion(policy, _facts(**facts, metrics={"auc": 0.825})), "min_lift")
    high = _rule(evaluate_promotion(policy, _facts(**facts, metrics={"auc": 0.85})), "min_lift")
    assert not low.passed and low.detail == "auc lift 3.1% over baseline (0.825 vs 0.8) < min_lift 5% (tier medium)"
    assert high.passed and "lift 6.2%" in high.detail
    missing = _rule(evaluate_promotion(policy, _facts(**facts, metrics={"pr_auc": 0.9})), "min_lift")
    assert not missing.passed and "auc missing from metrics" in missing.detail


def test_min_lift_lower_is_better(policy):
    facts = dict(risk_tier="low", uses=("replenishment",), metric="wape", higher_is_better=False,
                 baseline_metrics={"wape": 1.0}, champion_metrics=None, segment_metrics={})
    assert _rule(evaluate_promotion(policy, _facts(**facts, metrics={"wape": 0.97})), "min_lift").passed  # 3 % >= 2 %
    assert not _rule(evaluate_promotion(policy, _facts(**facts, metrics={"wape": 0.99})), "min_lift").passed
    assert not _rule(evaluate_promotion(policy, _facts(**facts, metrics={"wape": 1.10})), "min_lift").passed


def test_promotion_margin(policy):
    # high tier: 2 % over the champion on the same holdout. 0.85 vs 0.84 = 1.2 %; 0.85 vs 0.80 = 6.2 %.
    close = _rule(evaluate_promotion(policy, _facts(champion_metrics={"auc": 0.84})), "promotion_margin")
    clear = _rule(evaluate_promotion(policy, _facts(champion_metrics={"auc": 0.80})), "promotion_margin")
    first = _rule(evaluate_promotion(policy, _facts(champion_metrics=None)), "promotion_margin")
    assert not close.passed and "+1.2%" in close.detail and "promotion_margin 2% (tier high)" in close.detail
    assert clear.passed
    assert first.passed and "no champion" in first.detail


def test_facts_need_aware_datetimes_and_a_known_tier(policy):
    with pytest.raises(ValueError, match="timezone-aware"):
        _facts(registered_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="unknown risk tier 'extreme'"):
        evaluate_promotion(policy, _facts(risk_tier="extreme"))


# ---- compliance and scoring -----------------------------------------------------------------


def test_compliance_rules_and_drift(policy):
    report = evaluate_compliance(policy, _facts(champion_metrics={"auc": 0.99}, registered_at=NOW))
    assert [r.rule for r in report.rules] == [
        "prohibited_use", "allowed_use", "min_lift", "segment_gap", "pii_features", "approvals", "drift",
        "retraining_cadence",
    ]
    assert report.passed, report.summary()  # margin and shadow period do not apply to a sitting champion
    drifted = evaluate_compliance(policy, _facts(latest_drift_share=0.45, registered_at=NOW))
    assert not drifted.passed and [r.rule for r in drifted.failed] == ["drift"]
    assert "drift share 45.0% > max_drift_share 40% (tier high)" in drifted.failed[0].detail
    assert evaluate_compliance(policy, _facts(latest_drift_share=None, registered_at=NOW)).passed


def test_a_champion_older_than_its_tier_cadence_is_stale(policy):
    stale = evaluate_compliance(policy, _facts(registered_at=NOW - timedelta(days=8)))  # high tier: 7 days
    assert [r.rule for r in stale.failed] == ["retraining_cadence"]
    assert "8.0 day(s) ago > retraining_cadence_days 7 (tier high)" in stale.failed[0].detail
    assert evaluate_compliance(policy, _facts(registered_at=NOW - timedelta(days=6))).passed


def test_compliance_flips_when_the_policy_changes(tmp_path, policy):
    """Same champion, same facts: compliant under the shipped policy, not under a stricter min_lift."""
    facts = _facts(registered_at=NOW - timedelta(days=1))  # auc 0.85 vs baseline 0.70: lift 21.4 %
    stricter = load_policy(_write_policy(tmp_path, lambda raw: (raw["tiers"]["high"].update(min_lift=0.25),
                                                                raw.update(version="2.0.0"))))
    before, after = evaluate_compliance(policy, facts), evaluate_compliance(stricter, facts)
    assert before.passed
    assert not after.passed and [r.rule for r in after.failed] == ["min_lift"]
    assert "< min_lift 25% (tier high)" in after.failed[0].detail
    assert after.policy_version == "2.0.0"
    assert policy_version_hash(tmp_path / "policy.yaml") != policy_version_hash()


def test_scoring_is_blocked_only_by_purpose_pii_and_sign_off(policy):
    report = scoring_allowed(policy, _facts(metrics={"auc": 0.1}, latest_drift_share=0.99, registered_at=NOW))
    assert [r.rule for r in report.rules] == ["prohibited_use", "allowed_use", "pii_features", "approvals"]
    assert report.passed
    assert not scoring_allowed(policy, _facts(rejected=True)).passed
    assert "approvals" in scoring_allowed(policy, _facts(approvals=1)).summary()


def test_facts_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _facts().approvals = 5  # type: ignore[misc]
