"""Assembly assets: feature sets, then per use case a training set, a model and a promotion gate.

Thin wrappers over ``features`` (point-in-time SQL), ``templates`` (training + baseline) and
``registry`` (content-addressed versions, aliases). Every use-case YAML yields three plainly
named assets: ``assembly/<use_case>_training_set``, ``assembly/<use_case>_model`` and
``assembly/<use_case>_champion``. The rows come from the training-set builder the use case names
(``training_sets``: the core ones, or a business unit's passed to ``use_case_assets``).
"""

import hashlib
import json
import subprocess
from collections.abc import Mapping
from datetime import date, timedelta

import dagster as dg
import polars as pl

from factory_assets.assembly import features as fs
from factory_assets.assembly.specs import UseCaseSpec, load_use_cases
from factory_assets.assembly.training_sets import TrainingSetBuilder, resolve_training_set
from factory_assets.lib.contract_checks import evaluate_contract
from factory_assets.lib.contracts import feature_contract
from factory_assets.resources import FactoryStore
from factory_assets.settings import PROJECT_ROOT

#: Which product each mart-backed relation in the feature SQL is, for lineage.
_RELATION_ASSETS = {
    fs.ORDER_LINES: ["processing", "fct_order_lines"],
    fs.SUPPLIER_RELIABILITY: ["processing", "supplier_reliability"],
    fs.DAILY_DEMAND: ["processing", "daily_demand"],
    fs.CALENDAR: ["processing", "calendar"],
    fs.TICKETS: ["processing", "int_tickets__scored"],
}

def feature_set_products() -> dict[str, list[str]]:
    """Which data products each feature set reads (for lineage and the audit bundle)."""
    return {name: sorted(key[-1] for rel, key in _RELATION_ASSETS.items() if rel in f.sql)
            for name, f in fs.FEATURE_SETS.items()}



#: Days (back from the training as-of date) whose scoring sets form a model's drift reference:
#: what the model would have been asked to score in its last two weeks, in the same shape as the
#: nightly scoring sets it is later compared with.
REFERENCE_DAYS = tuple(range(0, 14, 2))
REFERENCE_MAX_ROWS = 5_000

#: Identifiers that must not become features (one value per row: memorisation, not signal).
IDENTIFIERS = {"order_line_id", "customer_key", "order_id"}


def pii_derived(columns) -> list[str]:
    """The columns computed from personal data: a feature-set column tagged ``pii_derived`` in its
    contract, under its own name or prefixed (``customer_avg_sentiment_90d``)."""
    from factory_assets.lib.contracts import pii_derived_feature_columns

    tagged = pii_derived_feature_columns()
    return [c for c in columns if c in tagged or any(c.endswith(f"_{t}") for t in tagged)]


def feature_columns(frame: pl.DataFrame, spec: UseCaseSpec, builder: TrainingSetBuilder | None = None) -> list[str]:
    """Every column of the training set except keys, identifiers, the target, the builder's labels
    and times, and except PII-derived columns unless the use case's risk tier allows them
    (governance/policy.yaml). ``builder``: the use case's training-set builder (default: the core
    builder its spec names)."""
    from factory_assets.governance.facts import current_policy

    labels = (builder or resolve_training_set(spec)).labels
    columns = [
        c for c, dtype in frame.schema.items()
        if c not in spec.entity and c not in IDENTIFIERS and c != spec.target and c != "split_time"
        and c not in labels
        and not dtype.is_temporal()
    ]
    if current_policy().tier(spec.risk_tier).pii_features_allowed:
        return columns
    excluded = set(pii_derived(columns))
    return [c for c in columns if c not in excluded]


def code_version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def product_versions(conn) -> dict[str, dict]:
    """What each data product held when a training set was built: rows and latest day (the
    contract's freshness column), plus the raw store's newest ingested partition."""
    from factory_assets.lib.contracts import product_contract

    out = {}
    for relation, key in _RELATION_ASSETS.items():
        name = key[-1]
        try:
            column = product_contract(name).freshness_column
        except Exception:  # noqa: BLE001 - an intermediate model has no contract
            column = None
        latest = f"max({column})" if column else "null"
        rows, newest = conn.execute(f"select count(*), {latest} from {relation}").fetchone()
        out[name] = {"rows": int(rows), "latest": str(newest) if newest is not None else None}
    newest_partition, files = conn.execute("select max(partition_date), count(*) from raw.ingestion_log").fetchone()
    out["raw_store"] = {"newest_partition": str(newest_partition), "files_ingested": int(files)}
    return out


def feature_set_asset(name: str) -> dg.AssetsDefinition:
    feature_set = fs.FEATURE_SETS[name]
    deps = [dg.AssetKey(key) for rel, key in _RELATION_ASSETS.items() if rel in feature_set.sql]

    contract = feature_contract(name)
    key = dg.AssetKey(["assembly", name])

    @dg.asset(
        key=key,
        group_name="assembly",
        check_specs=[dg.AssetCheckSpec("contract", asset=key, blocking=True,
                                       description=f"Blocking: the snapshot satisfies {contract.path.name}.")],
        deps=deps,
        description=f"Feature set v{feature_set.version} (entity {', '.join(feature_set.entity)}; time "
        f"{feature_set.timestamp_column}): {feature_set.description} Materialised as the latest snapshot "
        f"in features.{name}; training sets compute it point-in-time.",
        owners=["team:data-platform"],
        kinds={"duckdb", "python"},
        tags={"layer": "assembly", "feature_set_version": feature_set.version},
        metadata={"entity": ", ".join(feature_set.entity), "version": feature_set.version,
                  "columns": dg.MetadataValue.md("\n".join(f"- `{c}`: {d}" for c, d in feature_set.columns.items()))},
    )
    def _feature_set(store: FactoryStore) -> dg.MaterializeResult:
        with store.warehouse() as conn:
            as_of = fs.data_end_date(conn)
            conn.execute("create schema if not exists features")
            conn.execute(f"create or replace table features.{name} as {fs.latest_snapshot_sql(name, as_of)}")
            report = evaluate_contract(conn, contract, f"features.{name}")
        check = dg.AssetCheckResult(
            check_name="contract", passed=report.passed, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"summary": report.summary(), "contract_version": contract.version,
                      "failed_rules": ", ".join(r.rule for r in report.failed_rules) or "none"},
        )
        return dg.MaterializeResult(
            metadata={"dagster/row_count": dg.MetadataValue.int(report.row_count), "as_of": str(as_of),
                      "contract": contract.path.name, "contract_version": contract.version},
            check_results=[check],
        )

    return _feature_set


class TrainingConfig(dg.Config):
    """Run config of a model asset: ``device`` forces the engine's device (auto, cpu or gpu)."""

    device: str = "auto"


class TrainingSetConfig(dg.Config):
    """Run config of a training set: ``as_of`` (YYYY-MM-DD) trains on what was known at the start
    of that day (default: everything landed so far), e.g. to reproduce a past model."""

    as_of: str | None = None


def _training_set_paths(store: FactoryStore, name: str):
    folder = store.paths.artifacts / "training_sets"
    return folder / f"{name}.parquet", folder / f"{name}.json"


def drift_reference(conn, spec: UseCaseSpec, model, categories: dict, as_of: date,
                    builder: TrainingSetBuilder | None = None) -> pl.DataFrame:
    """Scoring sets of the two weeks up to ``as_of`` with the model's predictions, sampled."""
    from factory_assets.distribution.scoring import predict
    from factory_assets.lib.warehouse_sql import sample_rows

    score = (builder or resolve_training_set(spec)).score
    frames = [score(conn, spec, as_of - timedelta(days=k)) for k in REFERENCE_DAYS]
    frame = pl.concat([f for f in frames if f.height], how="vertical_relaxed") if any(f.height for f in frames) else frames[0]
    frame = frame.select(list(model.feature_names))
    frame = frame.with_columns(prediction=pl.Series(predict(model, categories, frame), dtype=pl.Float64))
    return sample_rows(frame, REFERENCE_MAX_ROWS)


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def _frame_version(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()[:16]


def use_case_assets(spec: UseCaseSpec, training_sets: Mapping[str, TrainingSetBuilder] | None = None) -> list:
    """The training set, model and champion assets (plus the baseline check) of one use case.

    ``training_sets``: builders a business unit adds to the core ones (``CORE_TRAINING_SETS``) for
    its own use cases. An unknown ``spec.training_set`` fails here, when the definitions are built,
    with the use case's file, the field and every known builder name.
    """
    builder = resolve_training_set(spec, training_sets)
    prefix = ["assembly"]
    training_key = dg.AssetKey([*prefix, f"{spec.name}_training_set"])
    model_key = dg.AssetKey([*prefix, f"{spec.name}_model"])
    champion_key = dg.AssetKey([*prefix, f"{spec.name}_champion"])
    owners = [spec.owner]
    tags = {"layer": "assembly", "use_case": spec.name, "risk_tier": spec.risk_tier, "business_unit": spec.business_unit}

    @dg.asset(
        key=training_key, group_name="assembly", owners=owners, tags=tags, kinds={"duckdb", "parquet"},
        deps=[dg.AssetKey([*prefix, n]) for n in spec.feature_sets],
        description=f"Point-in-time training set of {spec.name}: {spec.description.strip()}",
    )
    def _training_set(config: TrainingSetConfig, store: FactoryStore) -> dg.MaterializeResult:
        with store.warehouse(read_only=True) as conn:
            as_of = date.fromisoformat(config.as_of) if config.as_of else fs.data_end_date(conn) + timedelta(days=1)
            frame = builder.build(conn, spec, as_of)
        if spec.target not in frame.columns:
            raise dg.Failure(f"use case {spec.name}: target {spec.target!r} is not a column of training set "
                             f"{spec.training_set!r} (columns: {', '.join(frame.columns)})")
        path, info_path = _training_set_paths(store, spec.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)
        positive = float(frame[spec.target].cast(pl.Float64).mean()) if frame.height else float("nan")
        data_version = _frame_version(frame)
        with store.warehouse(read_only=True) as conn:
            products = product_versions(conn)
        info_path.write_text(json.dumps({"as_of": as_of.isoformat(), "data_version": data_version, "products": products}))
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(frame.height),
                "as_of": as_of.isoformat(),
                "path": str(path),
                "data_version": data_version,
                "target_mean": dg.MetadataValue.float(positive),
                "feature_set_versions": json.dumps(fs.feature_set_versions(spec.feature_sets)),
                # the newest whole days up to this many rows (features.newest_days)
                "max_training_rows": spec.max_training_rows or "no limit",
                "first_split_day": str(frame["split_time"].min()) if "split_time" in frame.columns and frame.height else "none",
            },
            data_version=dg.DataVersion(data_version),
        )

    @dg.asset(
        key=model_key, group_name="assembly", owners=owners, tags=tags, deps=[training_key],
        kinds={*spec.engines, "python"},
        description=f"Trains {spec.name} ({spec.template}, {', '.join(spec.engines)}) with a time split and "
        "early stopping, compares it with the naive baseline on the same test window, and registers it as challenger.",
        check_specs=[dg.AssetCheckSpec("beats_baseline", asset=model_key, blocking=True,
                                       description=f"Blocking: the model beats the naive baseline on {spec.metric}.")],
    )
    def _model(context: dg.AssetExecutionContext, config: TrainingConfig, store: FactoryStore) -> dg.MaterializeResult:
        from factory_assets.assembly.registry import ModelRegistry
        from factory_assets.assembly.templates import fit_template
        from factory_assets.assembly.training import improvement

        from factory_assets.distribution.feature_schema import infer_feature_schema
        from factory_assets.governance.facts import current_policy

        path, info_path = _training_set_paths(store, spec.name)
        frame = pl.read_parquet(path)
        info = json.loads(info_path.read_text())
        as_of = date.fromisoformat(info["as_of"])
        features = feature_columns(frame, spec, builder)
        results = {}
        for engine in spec.engines:
            results[engine] = fit_template(spec.template, frame, target=spec.target, feature_columns=features,
                                           time_column="split_time", engine=engine, device=config.device,
                                           metric=spec.metric, segment_columns=current_policy().segments)
            device = results[engine].model.device
            context.log.info(f"{engine} trained on {device.device if device else 'cpu'}: {device.reason if device else ''}")
        best_engine = max(results, key=lambda e: improvement(spec.metric, results[e].metrics[spec.metric], results[e].baseline_metrics[spec.metric]))
        best = results[best_engine]
        with store.warehouse(read_only=True) as conn:
            reference = drift_reference(conn, spec, best.model, best.categories, as_of, builder)
        registry = ModelRegistry(store.paths.artifacts / "models")
        code = code_version()
        version = registry.register(
            spec.name, best.model, metrics=best.metrics, baseline_metrics=best.baseline_metrics,
            feature_contracts=fs.feature_set_versions(spec.feature_sets),
            data_versions={"training_set": _frame_version(frame), "products": info.get("products", {})}, code_version=code,
            extra={"categories": best.categories, "test_window": list(best.test_window), "template": spec.template,
                   "rows": best.rows, "baseline": best.baseline_name, "training_as_of": as_of.isoformat(),
                   "segment_metrics": best.segment_metrics, "pii_features": pii_derived(features),
                   "feature_schema": infer_feature_schema(frame, features, best.categories),
                   "reference": {"file": "reference.parquet", "rows": reference.height,
                                 "days": [str(as_of - timedelta(days=k)) for k in REFERENCE_DAYS],
                                 "sampling": f"uniform without replacement, at most {REFERENCE_MAX_ROWS} rows, seed 0"}},
            files={"reference.parquet": _parquet_bytes(reference)},
        )
        registry.set_alias(spec.name, "challenger", version.version, reason=f"trained by run {context.run_id}")
        beats = improvement(spec.metric, best.metrics[spec.metric], best.baseline_metrics[spec.metric]) > 0
        metadata = {
            "version": version.version, "engine": best_engine,
            "device": best.model.device.device if best.model.device else "cpu",
            "training_seconds": dg.MetadataValue.float(best.model.training_seconds),
            "best_iteration": dg.MetadataValue.int(best.model.best_iteration),
            "test_window": " .. ".join(best.test_window), "code_version": code,
            "params": dg.MetadataValue.json(best.model.params),
        }
        for engine, result in results.items():
            for metric, value in result.metrics.items():
                metadata[f"{engine}/{metric}"] = dg.MetadataValue.float(float(value))
        metadata.update({f"metric/{k}": dg.MetadataValue.float(float(v)) for k, v in best.metrics.items()})
        metadata.update({f"baseline/{k}": dg.MetadataValue.float(float(v)) for k, v in best.baseline_metrics.items()})
        top = sorted(best.model.feature_importance().items(), key=lambda kv: -kv[1])[:10]
        metadata.update({f"importance/{k}": dg.MetadataValue.float(float(v)) for k, v in top})
        check = dg.AssetCheckResult(
            check_name="beats_baseline", passed=beats, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"metric": spec.metric, "model": float(best.metrics[spec.metric]),
                      "baseline": float(best.baseline_metrics[spec.metric]), "baseline_kind": best.baseline_name},
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    @dg.asset(
        key=champion_key, group_name="assembly", owners=owners, tags=tags, deps=[model_key], kinds={"python"},
        description=f"Promotion gate of {spec.name}: the challenger replaces the champion only if it wins on the "
        f"same recent holdout by the {spec.risk_tier}-tier margin and passes every promotion rule of "
        "governance/policy.yaml (lift, segment gap, uses, PII, approvals, shadow period).",
        check_specs=[dg.AssetCheckSpec("policy", asset=champion_key, blocking=True, description=(
            "Blocking: the champion satisfies the policy in force (governance/policy.yaml); "
            "a non-compliant champion stops its scoring."))],
    )
    def _champion(context: dg.AssetExecutionContext, store: FactoryStore) -> dg.MaterializeResult:
        from factory_assets.assembly.registry import ModelRegistry, decide_promotion
        from factory_assets.assembly.templates import evaluate_on_holdout
        from factory_assets.governance.facts import approvals_log, current_policy, model_facts
        from factory_assets.governance.policy import evaluate_compliance, evaluate_promotion

        policy = current_policy()
        registry = ModelRegistry(store.paths.artifacts / "models")
        approvals = approvals_log(store.paths.artifacts)
        challenger = registry.get(spec.name, "challenger")
        frame = pl.read_parquet(_training_set_paths(store, spec.name)[0])
        window = tuple(challenger.manifest["extra"]["test_window"])
        challenger_metrics = evaluate_on_holdout(spec, registry, "challenger", frame, window)
        champion_metrics = None
        if "champion" in registry.aliases(spec.name):
            champion_metrics = evaluate_on_holdout(spec, registry, "champion", frame, window)
        decision = decide_promotion(spec.metric, challenger_metrics, champion_metrics,
                                    challenger.manifest["baseline_metrics"],
                                    policy.tier(spec.risk_tier).promotion_margin, holdout_id=" .. ".join(window))
        rules = evaluate_promotion(policy, model_facts(spec, challenger, approvals, metrics=challenger_metrics,
                                                       champion_metrics=champion_metrics))
        promote = decision.promote and rules.passed
        reason = decision.reason if rules.passed else (
            f"not promoted by policy {policy.version}: {'; '.join(r.detail for r in rules.failed)} "
            f"(gate alone: {decision.reason})")
        if promote:
            registry.set_alias(spec.name, "champion", challenger.version, reason=reason)
        context.log.info(reason)
        metadata = {
            "promoted": promote, "reason": reason, "challenger": challenger.version,
            "policy_version": policy.version,
            "policy_rules": dg.MetadataValue.json(rules.to_dict()),
            f"challenger/{spec.metric}": dg.MetadataValue.float(float(challenger_metrics[spec.metric])),
            f"champion/{spec.metric}": dg.MetadataValue.float(float(champion_metrics[spec.metric]))
            if champion_metrics else dg.MetadataValue.float(float("nan")),
        }
        if "champion" in registry.aliases(spec.name):
            champion = registry.get(spec.name, "champion")
            compliance = evaluate_compliance(policy, model_facts(spec, champion, approvals))
            metadata["champion"] = champion.version
            check = dg.AssetCheckResult(check_name="policy", passed=compliance.passed,
                                        metadata={"champion": champion.version, "summary": compliance.summary(),
                                                  "rules": dg.MetadataValue.json(compliance.to_dict())})
        else:
            metadata["champion"] = "none"
            check = dg.AssetCheckResult(check_name="policy", passed=True,
                                        metadata={"summary": "no champion yet: nothing scores"})
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return [_training_set, _model, _champion]


feature_set_assets = [feature_set_asset(name) for name in fs.FEATURE_SETS]


def all_use_case_assets(folder=None) -> list:
    """Assets of every use-case YAML in ``folder`` (default: factory_assets/assembly/use_cases)."""
    specs = load_use_cases(folder) if folder else load_use_cases()
    return [a for spec in specs.values() for a in use_case_assets(spec)]

