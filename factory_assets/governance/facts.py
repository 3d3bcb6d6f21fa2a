"""Gather what the policy needs about a registered model version (pure: registry + approvals files).

One place builds ``ModelFacts`` for the promotion gate, scoring, the compliance review and the
audit bundle, so every one of them judges a model on the same facts.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from factory_assets.assembly.registry import ModelVersion, content_sha256
from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.training import higher_is_better
from factory_assets.governance.approvals import (
    APPROVERS_FILE,
    ApprovalLog,
    ApprovalStatus,
    Approvers,
    ApproversError,
    load_approvers,
)
from factory_assets.governance.policy import POLICY_FILE, ModelFacts, Policy, load_policy


def policy_path() -> Path:
    """The policy in force: ``FACTORY_POLICY_FILE`` if set (e.g. a stricter draft), else governance/policy.yaml."""
    return Path(os.environ.get("FACTORY_POLICY_FILE", POLICY_FILE))


def current_policy() -> Policy:
    return load_policy(policy_path())


def approvers_path() -> Path:
    """The declared approvers: ``FACTORY_APPROVERS_FILE`` if set, else governance/approvers.yaml."""
    return Path(os.environ.get("FACTORY_APPROVERS_FILE", APPROVERS_FILE))


def current_approvers() -> Approvers:
    return load_approvers(approvers_path())


def approvals_log(artifacts: Path) -> ApprovalLog:
    return ApprovalLog(Path(artifacts) / "approvals")


def signed_content(version: ModelVersion) -> str | None:
    """The content hash approvals must be signed over: the manifest's as it is now (None: never sealed).
    An edited manifest hashes differently, so the approvals signed before the edit stop counting."""
    return content_sha256(version.manifest) if version.content_sha256 else None


def approval_status(spec: UseCaseSpec, version: ModelVersion, approvals: ApprovalLog) -> ApprovalStatus:
    """Where ``version`` stands with signed approvals (an unusable approvers file blocks, with its message).
    The approvers file is read only when the version has decisions."""
    try:
        return approvals.status(spec.name, version.version, content_sha256=signed_content(version),
                                approvers=current_approvers, tier=spec.risk_tier, trained_by=version.trained_by)
    except (ApproversError, ValueError) as exc:
        return ApprovalStatus(approvers=(), rejected_by=(), tampered=str(exc))


def model_facts(spec: UseCaseSpec, version: ModelVersion, approvals: ApprovalLog, *,
                metrics: dict | None = None, champion_metrics: dict | None = None,
                latest_drift_share: float | None = None, now: datetime | None = None) -> ModelFacts:
    """Facts about ``version``; ``metrics`` / ``champion_metrics`` from the same holdout when the
    caller re-evaluated them (default: the metrics recorded at training)."""
    extra = version.manifest.get("extra", {})
    status = approval_status(spec, version, approvals)
    return ModelFacts(
        use_case=spec.name,
        risk_tier=spec.risk_tier,
        uses=tuple(spec.uses),
        metric=spec.metric,
        higher_is_better=higher_is_better(spec.metric),
        metrics=metrics or version.metrics,
        baseline_metrics=version.baseline_metrics,
        champion_metrics=champion_metrics,
        segment_metrics=extra.get("segment_metrics", {}),
        features=tuple(version.feature_names),
        pii_features=tuple(extra.get("pii_features", ())),
        approvals=status.approvals,
        rejected=status.rejected,
        approvals_blocked=status.tampered,
        approval_notes=status.discounted,
        registered_at=datetime.fromisoformat(version.created_at),
        now=now or datetime.now(timezone.utc),
        latest_drift_share=latest_drift_share,
    )
