"""A use case's model lifecycle as plain functions: train and register a challenger, run the gate.

Pure of Dagster: the component's assets only wire these to the store and record what they return.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.training_sets import TrainingSetBuilder
from factory_assets.settings import PROJECT_ROOT

#: Days (back from the training as-of date) whose scoring sets form a model's drift reference:
#: what the model would have been asked to score in its last two weeks, in the same shape as the
#: nightly scoring sets it is later compared with.
REFERENCE_DAYS = tuple(range(0, 14, 2))
REFERENCE_MAX_ROWS = 5_000

#: Identifiers that must not become features (one value per row: memorisation, not signal).
IDENTIFIERS = {"order_line_id", "customer_key", "order_id"}


def pii_derived(columns) -> list[str]:
    """The columns computed from personal data: a feature-set column tagged ``pii_derived`` in its
    contract, under its own name or prefixed (``customer_avg_ticket_sentiment_90d``)."""
    from factory_assets.lib.contracts import pii_derived_feature_columns

    tagged = pii_derived_feature_columns()
    return [c for c in columns if c in tagged or any(c.endswith(f"_{t}") for t in tagged)]


def feature_columns(frame: pl.DataFrame, spec: UseCaseSpec, labels, pii_allowed: bool) -> list[str]:
    """Every column of the training set except keys, identifiers, the target, the builder's labels
    and times, and except PII-derived columns unless the use case's tier allows them."""
    columns = [
        c for c, dtype in frame.schema.items()
        if c not in spec.entity and c not in spec.identifiers and c not in IDENTIFIERS and c != spec.target
        and c != "split_time"
        and c != spec.time_column and c not in labels and not dtype.is_temporal()
    ]
    if pii_allowed:
        return columns
    excluded = set(pii_derived(columns))
    return [c for c in columns if c not in excluded]


def code_version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def frame_version(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()[:16]


def rebuild_training_set(paths, spec: UseCaseSpec, manifest: Mapping, builder: TrainingSetBuilder | None = None) -> dict:
    """The training set of a registered version, built again from the lake as it was at the
    snapshot its manifest records (time travel), and whether its hash matches the recorded one."""
    from factory_assets.assembly.training_sets import resolve_training_set
    from factory_assets.lib.warehouse import open_lake_at

    versions = manifest.get("data_versions") or {}
    snapshot, recorded = versions.get("lake_snapshot"), versions.get("training_set")
    as_of = (manifest.get("extra") or {}).get("training_as_of") or manifest.get("training_as_of")
    if snapshot is None or as_of is None:
        return {"lake_snapshot": None, "recorded": recorded, "rebuilt": None, "matches": None,
                "why": "this version was trained before training sets were pinned to a lake snapshot"}
    builder = builder or resolve_training_set(spec)
    with open_lake_at(paths, int(snapshot)) as conn:
        frame = builder.build(conn, spec, date.fromisoformat(as_of))
    rebuilt = frame_version(frame)
    return {"lake_snapshot": int(snapshot), "as_of": as_of, "rows": frame.height, "recorded": recorded,
            "rebuilt": rebuilt, "matches": rebuilt == recorded}


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def drift_reference(conn, spec: UseCaseSpec, builder: TrainingSetBuilder, model, categories: dict,
                    as_of: date) -> pl.DataFrame:
    """Scoring sets of the two weeks up to ``as_of`` with the model's predictions, sampled."""
    from factory_assets.assembly.templates import predict
    from factory_assets.lib.warehouse_sql import sample_rows

    frames = [builder.score(conn, spec, as_of - timedelta(days=k)) for k in REFERENCE_DAYS]
    kept = [f for f in frames if f.height]
    frame = pl.concat(kept, how="vertical_relaxed") if kept else frames[0]
    frame = frame.select(list(model.feature_names))
    frame = frame.with_columns(prediction=pl.Series(predict(model, categories, frame), dtype=pl.Float64))
    return sample_rows(frame, REFERENCE_MAX_ROWS)


@dataclass
class TrainingOutcome:
    """What training a challenger produced: the registered version and how it compares."""

    version: str
    engine: str
    beats_baseline: bool
    results: dict  # engine -> TemplateResult
    code_version: str

    @property
    def best(self):
        return self.results[self.engine]


def train_and_register(spec: UseCaseSpec, frame: pl.DataFrame, info: Mapping, *, builder: TrainingSetBuilder,
                       registry, policy, conn, feature_set_versions: Mapping[str, str], device: str = "auto",
                       reason: str = "", log=None, trained_by: str | None = None) -> TrainingOutcome:
    """Train every engine the use case asks for on ``frame``, keep the best against the naive
    baseline, register it with its lineage and drift reference, and make it the challenger.

    ``trained_by`` (default FACTORY_TRAINER, else the OS user) is recorded: they may not approve it."""
    from factory_assets.assembly.templates import fit_template
    from factory_assets.assembly.training import improvement
    from factory_assets.assembly.feature_schema import infer_feature_schema

    from factory_assets.governance.policy import text_features_refusal

    refusal = text_features_refusal(policy, spec.name, spec.risk_tier, spec.text_columns)
    if refusal:
        raise ValueError(refusal)
    as_of = date.fromisoformat(info["as_of"])
    features = feature_columns(frame, spec, builder.labels, policy.tier(spec.risk_tier).pii_features_allowed)
    results = {}
    for engine in spec.engines:
        results[engine] = fit_template(spec.template, frame, target=spec.target, feature_columns=features,
                                       time_column="split_time", engine=engine, device=device,
                                       metric=spec.metric, segment_columns=policy.segments,
                                       text_columns=spec.text_columns)
        used = results[engine].model.device
        if log:
            log(f"{engine} trained on {used.device if used else 'cpu'}: {used.reason if used else ''}")

    def lift(e):
        return improvement(spec.metric, results[e].metrics[spec.metric], results[e].baseline_metrics[spec.metric])

    best_engine = max(results, key=lift)
    best = results[best_engine]
    reference = drift_reference(conn, spec, builder, best.model, best.categories, as_of)
    code = code_version()
    version = registry.register(
        spec.name, best.model, metrics=best.metrics, baseline_metrics=best.baseline_metrics,
        feature_contracts=dict(feature_set_versions),
        data_versions={"training_set": frame_version(frame), "products": info.get("products", {}),
                       **({"lake_snapshot": info["lake_snapshot"]} if info.get("lake_snapshot") is not None else {})},
        code_version=code,
        created_by=trained_by or os.environ.get("FACTORY_TRAINER") or getpass.getuser(),
        extra={"categories": best.categories, "test_window": list(best.test_window), "template": spec.template,
               "rows": best.rows, "baseline": best.baseline_name, "training_as_of": as_of.isoformat(),
               "segment_metrics": best.segment_metrics, "pii_features": sorted({*pii_derived(features), *spec.text_columns}),
               "feature_schema": infer_feature_schema(frame, features, best.categories),
               "reference": {"file": "reference.parquet", "rows": reference.height,
                             "days": [str(as_of - timedelta(days=k)) for k in REFERENCE_DAYS],
                             "sampling": f"uniform without replacement, at most {REFERENCE_MAX_ROWS} rows, seed 0"}},
        files={"reference.parquet": parquet_bytes(reference)},
    )
    registry.set_alias(spec.name, "challenger", version.version, reason=reason)
    return TrainingOutcome(version=version.version, engine=best_engine, beats_baseline=lift(best_engine) > 0,
                           results=results, code_version=code)


@dataclass
class GateOutcome:
    """The promotion gate's verdict, and the champion's compliance after it."""

    promoted: bool
    reason: str
    challenger: str
    challenger_metrics: dict
    champion_metrics: dict | None
    rules: object  # PolicyReport of the promotion rules
    champion: str | None = None
    compliance: object | None = None  # PolicyReport of the champion in force
    extra: dict = field(default_factory=dict)


def promotion_gate(spec: UseCaseSpec, frame: pl.DataFrame, *, registry, approvals, policy) -> GateOutcome:
    """Does the challenger replace the champion? The policy's promotion rules decide (lift over the
    baseline, margin over the champion on the same recent holdout, segments, uses, PII, approvals,
    shadow period); a promoted challenger becomes champion."""
    from factory_assets.assembly.templates import evaluate_on_holdout
    from factory_assets.governance.facts import model_facts
    from factory_assets.governance.policy import evaluate_compliance, evaluate_promotion

    challenger = registry.get(spec.name, "challenger")
    window = tuple(challenger.manifest["extra"]["test_window"])
    challenger_metrics = evaluate_on_holdout(spec, registry, "challenger", frame, window)
    champion_metrics = None
    if "champion" in registry.aliases(spec.name):
        champion_metrics = evaluate_on_holdout(spec, registry, "champion", frame, window)
    rules = evaluate_promotion(policy, model_facts(spec, challenger, approvals, metrics=challenger_metrics,
                                                   champion_metrics=champion_metrics))
    holdout = " .. ".join(window)
    if rules.passed:
        first = "first model" if champion_metrics is None else "replaces the champion"
        reason = (f"promoted ({first}) by policy {policy.version} on holdout {holdout}: "
                  f"{spec.metric}={challenger_metrics[spec.metric]:.6g}; {rules.summary()}")
        registry.set_alias(spec.name, "champion", challenger.version, reason=reason)
    else:
        reason = (f"not promoted by policy {policy.version} on holdout {holdout}: "
                  + "; ".join(r.detail for r in rules.failed))
    outcome = GateOutcome(promoted=rules.passed, reason=reason, challenger=challenger.version,
                          challenger_metrics=challenger_metrics, champion_metrics=champion_metrics, rules=rules)
    if "champion" in registry.aliases(spec.name):
        champion = registry.get(spec.name, "champion")
        outcome.champion = champion.version
        outcome.compliance = evaluate_compliance(policy, model_facts(spec, champion, approvals))
    return outcome
