"""The model policy as code: ``governance/policy.yaml``, validated, and the rules that apply it.

Pure layer (no Dagster). The caller gathers what is known about a model into ``ModelFacts`` (metrics
on a holdout, per-segment metrics, PII-derived features, approvals, registration time, drift); the
three entry points return a ``PolicyReport`` with one ``RuleResult`` per rule, each naming the
measured numbers and the limit, so a failed gate explains itself:

- ``evaluate_promotion``  may this challenger become champion?
- ``evaluate_compliance`` does the current champion still satisfy the policy (e.g. after it changed)?
- ``scoring_allowed``     may this model score at all?

Any mistake in the policy file raises ``PolicyError`` naming the file, the field path
(``tiers.high.required_approvals``) and what is allowed.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal


from factory_assets.lib.yaml_files import read_yaml_file
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "COMPLIANCE_RULES",
    "POLICY_FILE",
    "PROMOTION_RULES",
    "SCORING_RULES",
    "TIERS",
    "ModelFacts",
    "Policy",
    "PolicyError",
    "PolicyReport",
    "RuleResult",
    "TierPolicy",
    "UsesPolicy",
    "evaluate_compliance",
    "evaluate_promotion",
    "load_policy",
    "policy_version_hash",
    "scoring_allowed",
]

POLICY_FILE = Path(__file__).resolve().parents[2] / "governance" / "policy.yaml"

RiskTier = Literal["low", "medium", "high"]
TIERS: tuple[str, ...] = ("low", "medium", "high")

# Strict: a policy that says `required_approvals: "2"` or `pii_features_allowed: 1` is a mistake, not
# something to coerce. Integers are accepted where a fraction is expected (0 and 1 are fractions).
Fraction = Annotated[float, Field(ge=0, le=1, strict=True)]
Count = Annotated[int, Field(ge=0, strict=True)]
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
_USE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FROZEN = ConfigDict(extra="forbid", frozen=True)


class PolicyError(ValueError):
    """The policy file is unreadable or invalid (the message names the file, the field and what is allowed)."""


# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------


class TierPolicy(BaseModel):
    """Limits for one risk tier (see the comments in governance/policy.yaml)."""

    model_config = _FROZEN

    min_lift: Fraction
    promotion_margin: Fraction
    max_drift_share: Fraction
    max_prediction_drift: Annotated[float, Field(ge=0, strict=True)]  # a distance, may exceed 1
    max_quality_drop: Fraction
    min_labelled_rows: Count
    max_segment_gap: Fraction
    min_segment_rows: Count
    pii_features_allowed: Annotated[bool, Field(strict=True)]
    required_approvals: Count
    shadow_days: Count
    retraining_cadence_days: Annotated[int, Field(ge=1, strict=True)]


def _check_use_names(names: tuple[str, ...]) -> tuple[str, ...]:
    bad = [n for n in names if not _USE_NAME.match(n)]
    if bad:
        raise ValueError(f"use names must be snake_case (a-z, 0-9, _), got {bad}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate use names in {list(names)}")
    return names


class UsesPolicy(BaseModel):
    """Which purposes are prohibited outright and which each tier may serve."""

    model_config = _FROZEN

    prohibited: tuple[str, ...]
    allowed_by_tier: dict[RiskTier, tuple[str, ...]]

    @field_validator("prohibited")
    @classmethod
    def _prohibited(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_use_names(v)

    @field_validator("allowed_by_tier")
    @classmethod
    def _allowed(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for names in v.values():
            _check_use_names(names)
        return v


#: A caller name that admits every caller of a tier's services.
ANY_CALLER = "any"


class ServicesPolicy(BaseModel):
    """Who may call the services of each tier (distribution/services.py); a tier not listed admits any caller."""

    model_config = _FROZEN

    callers_by_tier: dict[RiskTier, tuple[str, ...]] = {}

    def callers(self, tier: str) -> tuple[str, ...]:
        return self.callers_by_tier.get(tier, (ANY_CALLER,))  # type: ignore[call-overload]

    def may_call(self, tier: str, caller: str) -> bool:
        allowed = self.callers(tier)
        return ANY_CALLER in allowed or caller in allowed


class Policy(BaseModel):
    """The whole policy file. Cross-field rules are checked here so that a Policy built in code is as valid as a loaded one."""

    model_config = _FROZEN

    version: str
    segments: tuple[str, ...]
    tiers: dict[RiskTier, TierPolicy]
    uses: UsesPolicy
    services: ServicesPolicy = ServicesPolicy()

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not _SEMVER.match(v):
            raise ValueError(f'{v!r} is not a semantic version; allowed: a quoted string such as "1.2.0"')
        return v

    @field_validator("segments")
    @classmethod
    def _segments(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s.strip() for s in v) or len(set(v)) != len(v):
            raise ValueError(f"segment columns must be non-empty and distinct, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        problems = []
        required = f"required tiers: {list(TIERS)}"
        problems += [f"field 'tiers.{t}': missing tier ({required})" for t in TIERS if t not in self.tiers]
        problems += [
            f"field 'uses.allowed_by_tier.{t}': missing tier ({required}; write [] for a tier that may serve no use)"
            for t in TIERS
            if t not in self.uses.allowed_by_tier
        ]
        prohibited = set(self.uses.prohibited)
        for tier, names in self.uses.allowed_by_tier.items():
            both = sorted(prohibited.intersection(names))
            if both:
                problems.append(
                    f"field 'uses.allowed_by_tier.{tier}': {both} also listed in uses.prohibited; "
                    "a use is either prohibited or allowed, not both"
                )
        for tier, limits in self.tiers.items():
            if limits.pii_features_allowed and limits.required_approvals < 1:
                problems.append(
                    f"field 'tiers.{tier}.pii_features_allowed': true is only allowed with required_approvals >= 1 "
                    f"(tier {tier} has {limits.required_approvals})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def may_call(self, tier: str, caller: str) -> bool:
        """May ``caller`` call a service of risk tier ``tier``?"""
        return self.services.may_call(tier, caller)

    def callers(self, tier: str) -> tuple[str, ...]:
        return self.services.callers(tier)

    def tier(self, name: str) -> TierPolicy:
        try:
            return self.tiers[name]  # type: ignore[index]
        except KeyError:
            raise ValueError(f"unknown risk tier {name!r}; allowed: {list(TIERS)}") from None


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

_MODELS_BY_DEPTH: dict[tuple[str, int], type[BaseModel]] = {
    ("", 1): Policy,
    ("tiers", 3): TierPolicy,
    ("uses", 2): UsesPolicy,
    ("services", 2): ServicesPolicy,
}


def _describe(err: Mapping[str, Any]) -> str:
    """One pydantic error as "field 'a.b.c': message (allowed ...)"."""
    loc = [str(p) for p in err["loc"] if p != "[key]"]
    if not loc:  # Policy._consistent: the message already names its fields
        return str(err.get("ctx", {}).get("error", err["msg"]))
    path = ".".join(loc)
    if err["type"] == "extra_forbidden":
        model = _MODELS_BY_DEPTH.get((loc[0] if len(loc) > 1 else "", len(loc)), Policy)
        return f"field '{path}': unknown field (allowed fields: {sorted(model.model_fields)})"
    msg = err["msg"].removeprefix("Value error, ").replace("a valid tuple", "a list")
    if err["type"] == "missing":
        msg = "missing (required)"
    return f"field '{path}': {msg}"


def load_policy(path: str | Path = POLICY_FILE) -> Policy:
    """Load and validate the policy file; every mistake raises ``PolicyError`` naming file and field."""
    path = Path(path)
    raw = read_yaml_file(path, PolicyError)
    if not isinstance(raw, dict):
        raise PolicyError(
            f"{path}: expected a mapping with fields {sorted(Policy.model_fields)}, got {type(raw).__name__}"
        )
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{path}: invalid policy: " + "; ".join(_describe(e) for e in exc.errors())) from exc


def policy_version_hash(path: str | Path = POLICY_FILE) -> str:
    """First 16 hex of sha256 of the file's bytes: records exactly which text a decision was made under."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# --------------------------------------------------------------------------------------
# Facts and results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    """Everything the rules need about one model version, gathered by the caller.

    ``metrics``, ``baseline_metrics`` and ``champion_metrics`` must come from the same holdout.
    ``segment_metrics``: segment column -> {segment value -> {"rows": int, <metric>: float}}.
    ``pii_features``: the subset of ``features`` derived from personal data.
    ``approvals``: distinct keys whose latest valid signed decision is approve; ``rejected``: one's
    is reject; ``approvals_blocked``: why no approval can be trusted (a broken log chain);
    ``approval_notes``: decisions that do not count, with the reason.
    """

    use_case: str
    risk_tier: str
    uses: tuple[str, ...]
    metric: str
    higher_is_better: bool
    metrics: Mapping[str, float]
    baseline_metrics: Mapping[str, float]
    registered_at: datetime
    now: datetime
    champion_metrics: Mapping[str, float] | None = None
    segment_metrics: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)
    features: tuple[str, ...] = ()
    pii_features: tuple[str, ...] = ()
    approvals: int = 0
    rejected: bool = False
    latest_drift_share: float | None = None
    approvals_blocked: str | None = None
    approval_notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("registered_at", "now"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"ModelFacts.{name} must be timezone-aware, got {getattr(self, name)!r}")
        if isinstance(self.uses, str):
            raise ValueError(f"ModelFacts.uses must be a sequence of use names, got the string {self.uses!r}")


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PolicyReport:
    use_case: str
    tier: str
    policy_version: str
    rules: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if not r.passed)

    def summary(self) -> str:
        """One line for logs and check descriptions."""
        if self.passed:
            return f"{self.use_case}: all {len(self.rules)} rules pass (policy {self.policy_version}, tier {self.tier})"
        failed = "; ".join(f"{r.rule}: {r.detail}" for r in self.failed)
        return f"{self.use_case}: {len(self.failed)} of {len(self.rules)} rules fail (policy {self.policy_version}): {failed}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "tier": self.tier,
            "policy_version": self.policy_version,
            "passed": self.passed,
            "rules": [asdict(r) for r in self.rules],
        }


# --------------------------------------------------------------------------------------
# Rules: each takes (policy, facts) and returns one RuleResult named after it (no underscore)
# --------------------------------------------------------------------------------------


def _limit(x: float) -> str:
    return f"{x * 100:g}%"


def _relative(higher_is_better: bool, value: float, reference: float) -> float:
    """Relative improvement of ``value`` over ``reference`` (positive = better); NaN in, NaN out."""
    if math.isnan(value) or math.isnan(reference):
        return math.nan
    diff = (value - reference) if higher_is_better else (reference - value)
    if reference == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / abs(reference)


def _metric(values: Mapping[str, float], metric: str) -> float | None:
    v = values.get(metric)
    return None if v is None else float(v)


def _prohibited_use(policy: Policy, facts: ModelFacts) -> RuleResult:
    hits = sorted(set(facts.uses) & set(policy.uses.prohibited))
    if hits:
        prohibited = list(policy.uses.prohibited)
        return RuleResult("prohibited_use", False, f"declares prohibited use(s) {hits}; prohibited: {prohibited}")
    return RuleResult("prohibited_use", True, f"no prohibited use among {list(facts.uses)}")


def _allowed_use(policy: Policy, facts: ModelFacts) -> RuleResult:
    allowed = policy.uses.allowed_by_tier.get(facts.risk_tier, ())  # type: ignore[call-overload]
    if not facts.uses:
        return RuleResult("allowed_use", False, f"declares no uses; tier {facts.risk_tier} may serve {list(allowed)}")
    outside = [u for u in facts.uses if u not in allowed]
    if outside:
        detail = f"use(s) {outside} not allowed for tier {facts.risk_tier}; allowed: {list(allowed)}"
        return RuleResult("allowed_use", False, detail)
    return RuleResult("allowed_use", True, f"uses {list(facts.uses)} allowed for tier {facts.risk_tier}")


def _min_lift(policy: Policy, facts: ModelFacts) -> RuleResult:
    limit = policy.tier(facts.risk_tier).min_lift
    m = facts.metric
    value, base = _metric(facts.metrics, m), _metric(facts.baseline_metrics, m)
    if value is None or base is None:
        where = "metrics" if value is None else "baseline_metrics"
        return RuleResult("min_lift", False, f"{m} missing from {where}; cannot check min_lift {_limit(limit)}")
    lift = _relative(facts.higher_is_better, value, base)
    ok = lift >= limit  # NaN -> False
    return RuleResult(
        "min_lift",
        ok,
        f"{m} lift {lift:.1%} over baseline ({value:.4g} vs {base:.4g}) {'>=' if ok else '<'} "
        f"min_lift {_limit(limit)} (tier {facts.risk_tier})",
    )


def _promotion_margin(policy: Policy, facts: ModelFacts) -> RuleResult:
    limit = policy.tier(facts.risk_tier).promotion_margin
    m = facts.metric
    if facts.champion_metrics is None:
        return RuleResult("promotion_margin", True, "no champion: first model")
    value, champ = _metric(facts.metrics, m), _metric(facts.champion_metrics, m)
    if value is None or champ is None:
        where = "metrics" if value is None else "champion_metrics"
        return RuleResult("promotion_margin", False, f"{m} missing from {where}; cannot compare with the champion")
    gain = _relative(facts.higher_is_better, value, champ)
    ok = gain >= limit
    return RuleResult(
        "promotion_margin",
        ok,
        f"{m} improvement {gain:+.1%} over champion ({value:.4g} vs {champ:.4g}) {'>=' if ok else '<'} "
        f"promotion_margin {_limit(limit)} (tier {facts.risk_tier})",
    )


#: Metrics whose size follows the target's scale; segments are compared on WAPE instead.
SCALE_DEPENDENT = {"mae", "rmse"}
#: Error metrics of a regression; where the training recorded each segment's error relative to the
#: naive baseline on the same rows (``relative_mae``), segments are compared on that.
ERROR_METRICS = SCALE_DEPENDENT | {"wape"}
RELATIVE_ERROR = "relative_mae"


def _column_gap(
    facts: ModelFacts, column: str, segments: Mapping[str, Mapping[str, float]], min_rows: int
) -> tuple[float | None, str]:
    """(gap, text) for one segment column, or (None, text) when fewer than two segments qualify.

    Segments below ``min_rows`` or without a finite metric are left out: their metric is noise.
    Regression errors are compared relative to the naive baseline on each segment's own rows
    (``relative_mae``): a segment of sparser or bigger counts has a bigger raw error (MAE, even WAPE)
    without being served worse, and the baseline suffers the same. Models registered without it
    fall back to WAPE for MAE and RMSE."""
    m = "wape" if facts.metric in SCALE_DEPENDENT else facts.metric
    if facts.metric in ERROR_METRICS and any(RELATIVE_ERROR in values for values in segments.values()):
        m = RELATIVE_ERROR
    qualified = {
        str(name): float(values[m])
        for name, values in segments.items()
        if values.get("rows", 0) >= min_rows and values.get(m) is not None and math.isfinite(float(values[m]))
    }
    if len(qualified) < 2:
        return None, f"{column}: not enough rows ({len(qualified)} segment(s) with >= {min_rows} rows and a {m})"
    ranked = sorted(qualified, key=qualified.__getitem__, reverse=facts.higher_is_better)  # best first
    best_name, worst_name = ranked[0], ranked[-1]
    best, worst = qualified[best_name], qualified[worst_name]
    diff = (best - worst) if facts.higher_is_better else (worst - best)
    gap = (0.0 if diff == 0 else math.inf) if best == 0 else diff / abs(best)
    return gap, f"{column}: {m} best {best:.4g} ({best_name}) worst {worst:.4g} ({worst_name}), gap {gap:.1%}"


def _segment_gap(policy: Policy, facts: ModelFacts) -> RuleResult:
    limits = policy.tier(facts.risk_tier)
    parts, ok = [], True
    for column in policy.segments:
        segments = facts.segment_metrics.get(column)
        if not segments:
            parts.append(f"{column}: not measured (no such column in the training set)")
            continue
        gap, text = _column_gap(facts, column, segments, limits.min_segment_rows)
        if gap is not None:
            within = gap <= limits.max_segment_gap  # NaN -> False
            ok = ok and within
            text += " <= max_segment_gap" if within else " > max_segment_gap"
        parts.append(text)
    limit = f"max_segment_gap {_limit(limits.max_segment_gap)} (tier {facts.risk_tier})"
    return RuleResult("segment_gap", ok, "; ".join(parts or ["no segment columns in the policy"]) + f"; limit {limit}")


def _pii_features(policy: Policy, facts: ModelFacts) -> RuleResult:
    limits = policy.tier(facts.risk_tier)
    pii = sorted(facts.pii_features)
    if not pii:
        return RuleResult("pii_features", True, "no features derived from personal data")
    if limits.pii_features_allowed:
        return RuleResult(
            "pii_features",
            True,
            f"PII-derived features {pii} allowed for tier {facts.risk_tier} "
            f"(with {limits.required_approvals} required approval(s))",
        )
    return RuleResult("pii_features", False, f"PII-derived features {pii} not allowed for tier {facts.risk_tier}")


def text_features_refusal(policy: Policy, use_case: str, tier: str, text_columns) -> str | None:
    """Why a use case may not train on its text columns (free text is personal data), or None.

    Checked before training: the gate's ``pii_features`` rule would refuse the model anyway."""
    if not text_columns or policy.tier(tier).pii_features_allowed:
        return None
    allowed = [name for name in TIERS if name in policy.tiers and policy.tier(name).pii_features_allowed]
    return (f"use case {use_case!r}: its text columns {sorted(text_columns)} are personal data, and risk tier {tier!r} "
            f"does not allow features derived from personal data (policy tiers.{tier}.pii_features_allowed). "
            f"Declare a tier that allows them ({', '.join(allowed) or 'none does'}; with its approvals) or remove "
            "text_columns")


def _approvals(policy: Policy, facts: ModelFacts) -> RuleResult:
    """Signed approvals (one per key, never the trainer's) against the tier's count; a broken log blocks."""
    required = policy.tier(facts.risk_tier).required_approvals
    if facts.approvals_blocked:
        return RuleResult("approvals", False, f"approvals cannot be trusted: {facts.approvals_blocked}")
    notes = ""
    if facts.approval_notes:
        shown = facts.approval_notes[:5]
        more = len(facts.approval_notes) - len(shown)
        notes = "; not counted: " + "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    if facts.rejected:
        return RuleResult("approvals", False,
                          f"rejected: a standing rejection blocks it ({facts.approvals} approval(s)){notes}")
    ok = facts.approvals >= required
    return RuleResult(
        "approvals",
        ok,
        f"{facts.approvals} distinct approval(s) {'>=' if ok else '<'} required {required} (tier {facts.risk_tier}) "
        f"signed by declared approvers, one per key{notes}",
    )


def _shadow_period(policy: Policy, facts: ModelFacts) -> RuleResult:
    days = policy.tier(facts.risk_tier).shadow_days
    if facts.champion_metrics is None:
        return RuleResult("shadow_period", True, "first model: no champion to run in the shadow of")
    age = facts.now - facts.registered_at
    ok = age >= timedelta(days=days)
    return RuleResult(
        "shadow_period",
        ok,
        f"registered {age.total_seconds() / 86400:.1f} day(s) ago {'>=' if ok else '<'} "
        f"shadow_days {days} (tier {facts.risk_tier})",
    )


def _drift(policy: Policy, facts: ModelFacts) -> RuleResult:
    limit = policy.tier(facts.risk_tier).max_drift_share
    share = facts.latest_drift_share
    if share is None:
        return RuleResult("drift", True, "no drift measured yet")
    ok = share <= limit  # NaN -> False
    return RuleResult(
        "drift", ok, f"drift share {share:.1%} {'<=' if ok else '>'} max_drift_share {_limit(limit)} (tier {facts.risk_tier})"
    )


def _retraining_cadence(policy: Policy, facts: ModelFacts) -> RuleResult:
    """A champion older than the tier's cadence is stale: the weekly job or the sensor should have
    replaced or re-confirmed it."""
    days = policy.tier(facts.risk_tier).retraining_cadence_days
    age = (facts.now - facts.registered_at).total_seconds() / 86400
    ok = age <= days
    return RuleResult("retraining_cadence", ok,
                      f"trained {age:.1f} day(s) ago {'<=' if ok else '>'} retraining_cadence_days {days} "
                      f"(tier {facts.risk_tier})")


Rule = Callable[[Policy, ModelFacts], RuleResult]
PROMOTION_RULES: tuple[Rule, ...] = (
    _prohibited_use, _allowed_use, _min_lift, _promotion_margin, _segment_gap, _pii_features, _approvals, _shadow_period,
)
COMPLIANCE_RULES: tuple[Rule, ...] = (
    _prohibited_use, _allowed_use, _min_lift, _segment_gap, _pii_features, _approvals, _drift, _retraining_cadence,
)
SCORING_RULES: tuple[Rule, ...] = (_prohibited_use, _allowed_use, _pii_features, _approvals)


def _report(policy: Policy, facts: ModelFacts, rules: tuple[Rule, ...]) -> PolicyReport:
    policy.tier(facts.risk_tier)  # an unknown tier is the caller's mistake: raise, do not report
    return PolicyReport(facts.use_case, facts.risk_tier, policy.version, tuple(rule(policy, facts) for rule in rules))


def evaluate_promotion(policy: Policy, facts: ModelFacts) -> PolicyReport:
    """May this challenger replace the champion? All rules, including the margin over the champion and the shadow period."""
    return _report(policy, facts, PROMOTION_RULES)


def evaluate_compliance(policy: Policy, facts: ModelFacts) -> PolicyReport:
    """Does the current champion still satisfy the policy (re-run after a policy change and after monitoring)?"""
    return _report(policy, facts, COMPLIANCE_RULES)


def scoring_allowed(policy: Policy, facts: ModelFacts) -> PolicyReport:
    """May this model score? Only the rules about purpose, personal data and sign-off block scoring."""
    return _report(policy, facts, SCORING_RULES)
