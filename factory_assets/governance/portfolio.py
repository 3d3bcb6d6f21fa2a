"""The use-case portfolio and the compliance review: one row per use case, judged by the policy in force.

Pure (registry, approvals and policy files; no Dagster). The Dagster assets pass in what only the
instance knows (latest monitoring results, retraining runs in flight).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from factory_assets.assembly.registry import ModelRegistry
from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.governance.approvals import ApprovalLog
from factory_assets.governance.facts import model_facts
from factory_assets.assembly.training import higher_is_better
from factory_assets.governance.policy import Policy, PolicyReport, evaluate_compliance
from factory_assets.governance.value import first_promotion_at, lead_time_days, live_lift


@dataclass(frozen=True)
class Monitoring:
    """The latest monitoring result of a use case (from its monitoring asset's metadata)."""

    day: str | None = None
    drift_share: float | None = None
    breaches: tuple[str, ...] = ()
    live_metric: float | None = None  # the use case's metric on outcomes, when enough were labelled


def compliance_reports(specs: dict[str, UseCaseSpec], registry: ModelRegistry, approvals: ApprovalLog,
                       policy: Policy, monitoring: dict[str, Monitoring]) -> dict[str, PolicyReport]:
    """Per use case with a champion: does the champion satisfy the policy in force?"""
    reports = {}
    for name, spec in specs.items():
        if "champion" not in (registry.aliases(name) if name in registry.use_cases() else {}):
            continue
        champion = registry.get(name, "champion")
        facts = model_facts(spec, champion, approvals, latest_drift_share=monitoring.get(name, Monitoring()).drift_share)
        reports[name] = evaluate_compliance(policy, facts)
    return reports


def portfolio_rows(specs: dict[str, UseCaseSpec], registry: ModelRegistry, compliance: dict[str, PolicyReport],
                   monitoring: dict[str, Monitoring], retraining: set[str], now: datetime | None = None,
                   measured: dict[str, dict] | None = None) -> list[dict]:
    """One row per use case: owner, tier, status, value (estimated and measured), last training,
    champion and its health. ``measured``: per use case, what only the caller knows (the
    declaration's first commit, compute per night, service usage; see governance/value.py).

    Status: ``retraining`` (a retraining run is in flight), ``non_compliant`` (the champion breaks
    the policy in force), ``champion`` (a compliant champion scores), ``challenger_only`` (trained,
    not promoted: e.g. waiting for approvals), ``not_trained``.
    """
    now = now or datetime.now(timezone.utc)
    rows = []
    for name, spec in sorted(specs.items()):
        versions = registry.list_versions(name) if name in registry.use_cases() else []
        aliases = registry.aliases(name) if versions else {}
        champion = registry.get(name, "champion") if "champion" in aliases else None
        report = compliance.get(name)
        if name in retraining:
            status = "retraining"
        elif champion is not None and report is not None and not report.passed:
            status = "non_compliant"
        elif champion is not None:
            status = "champion"
        elif versions:
            status = "challenger_only"
        else:
            status = "not_trained"
        latest = monitoring.get(name, Monitoring())
        extra = (measured or {}).get(name, {})
        promoted = first_promotion_at(registry.history(name)) if versions else None
        baseline = champion.baseline_metrics.get(spec.metric) if champion else None
        health = "no monitoring yet" if latest.day is None else (
            f"{latest.day}: " + ("; ".join(latest.breaches) if latest.breaches else "within limits"))
        rows.append({
            "use_case": name,
            "business_unit": spec.business_unit,
            "owner": spec.owner,
            "risk_tier": spec.risk_tier,
            "status": status,
            "uses": ", ".join(spec.uses),
            "estimated_hours_saved_per_week": float((spec.value or {}).get("estimated_hours_saved_per_week", 0.0)),
            "lead_time_days": lead_time_days(extra.get("declared_at"), promoted),
            "compute_s_per_night": extra.get("compute_s_per_night"),
            "live_metric_value": latest.live_metric,
            "baseline_metric_value": float(baseline) if baseline is not None else None,
            "live_lift": live_lift(latest.live_metric, baseline, higher_is_better(spec.metric)),
            "service_calls_30d": int(extra.get("usage", {}).get("calls", 0)),
            "service_callers_30d": int(extra.get("usage", {}).get("callers", 0)),
            "last_trained_at": max((v.created_at for v in versions), default=None),
            "champion_version": champion.version if champion else None,
            "champion_metric": spec.metric,
            "champion_metric_value": (float(champion.metrics.get(spec.metric))
                                      if champion and spec.metric in champion.metrics else None),
            "latest_drift_share": latest.drift_share,
            "health": health,
            "failed_rules": ", ".join(r.rule for r in report.failed) if report else "",
            "evaluated_at": now.isoformat(timespec="seconds"),
        })
    return rows
