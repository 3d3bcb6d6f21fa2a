"""Assembly assets: feature-set snapshots, then per use case a training set, a model and a promotion gate.

Thin wrappers: the SQL is in ``features`` / ``training_sets``, the work in ``lifecycle``
(``train_and_register``, ``promotion_gate``). The ``UseCase`` component calls ``use_case_assets``
for each declaration; keys come from ``factory_assets.keys``.
"""

import json
from collections.abc import Mapping
from datetime import date, timedelta

import dagster as dg
import polars as pl

from factory_assets.assembly import features as fs
from factory_assets.assembly.lifecycle import frame_version
from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.training_sets import TrainingSetBuilder
from factory_assets.keys import champion_key, feature_set_key, model_key, product_key, training_set_key
from factory_assets.lib.contract_checks import evaluate_contract
from factory_assets.lib.contracts import DataContract
from factory_assets.lib.lake import ddl, replace_table
from factory_assets.lib.metadata import round_metadata
from factory_assets.lib.warehouse import one_snapshot
from factory_assets.resources import FactoryStore, GovernancePolicy

#: Metadata key of the observation a model asset records when its training set is too short to train on.
NOT_TRAINED = "not_trained"


def product_versions(conn, products) -> dict[str, dict]:
    """What each data product held when a training set was built: rows and latest day (the
    contract's freshness column), plus the raw store's newest ingested partition."""
    from factory_assets.assembly.catalogue import _product_contracts
    from factory_assets.lib.locations import workspace_path
    from factory_assets.lib.warehouse_sql import table_exists

    contracts = _product_contracts(workspace_path())
    out = {}
    for name in sorted(set(products)):
        contract = contracts.get(name)
        relation = contract.physical_name if contract else f"intermediate.{name}"
        if not table_exists(conn, relation):
            continue
        latest = f"max({contract.freshness_column})" if contract and contract.freshness_column else "null"
        rows, newest = conn.execute(f"select count(*), {latest} from {relation}").fetchone()
        out[name] = {"rows": int(rows), "latest": str(newest) if newest is not None else None}
    if table_exists(conn, "raw.ingestion_log"):
        newest_partition, files = conn.execute("select max(partition_date), count(*) from raw.ingestion_log").fetchone()
        out["raw_store"] = {"newest_partition": str(newest_partition), "files_ingested": int(files)}
    return out


def feature_set_asset(feature_set: fs.FeatureSet, contract: DataContract) -> dg.AssetsDefinition:
    """The latest snapshot of one feature set, checked against its contract (blocking)."""
    key = feature_set_key(feature_set.name)

    @dg.asset(
        key=key,
        group_name="assembly",
        check_specs=[dg.AssetCheckSpec("contract", asset=key, blocking=True,
                                       description=f"Blocking: the snapshot satisfies {contract.path.name}.")],
        deps=[product_key(p) for p in feature_set.products],
        description=f"Feature set v{feature_set.version} (entity {', '.join(feature_set.entity)}; time "
        f"{feature_set.timestamp_column}): {feature_set.description} Materialised as the latest snapshot "
        f"in features.{feature_set.name}; training sets compute it point-in-time.",
        owners=[contract.owner],
        kinds={"duckdb", "python"},
        tags={"layer": "assembly", "feature_set_version": feature_set.version},
        metadata={"entity": ", ".join(feature_set.entity), "version": feature_set.version,
                  "columns": dg.MetadataValue.md("\n".join(f"- `{c}`: {d}" for c, d in feature_set.columns.items()))},
    )
    def _feature_set(store: FactoryStore) -> dg.MaterializeResult:
        with store.warehouse() as conn:
            as_of = fs.feature_set_end_date(conn, feature_set)
            if as_of is None:
                raise dg.Failure(f"feature set {feature_set.name}: its products {list(feature_set.products)} hold no "
                                 "rows yet; land and build them first")
            ddl(conn, "create schema if not exists features")
            replace_table(conn, "features", feature_set.name, fs.latest_snapshot_sql(feature_set, as_of))
            report = evaluate_contract(conn, contract, f"features.{feature_set.name}")
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


def training_set_paths(store: FactoryStore, name: str):
    folder = store.paths.artifacts / "training_sets"
    return folder / f"{name}.parquet", folder / f"{name}.json"


def _model_metadata(outcome) -> dict:
    best = outcome.best
    metadata = {
        "version": outcome.version, "engine": outcome.engine,
        "device": best.model.device.device if best.model.device else "cpu",
        "training_seconds": dg.MetadataValue.float(best.model.training_seconds),
        "best_iteration": dg.MetadataValue.int(best.model.best_iteration),
        "test_window": " .. ".join(best.test_window), "code_version": outcome.code_version,
        "params": dg.MetadataValue.json(best.model.params),
    }
    for engine, result in outcome.results.items():
        for metric, value in result.metrics.items():
            metadata[f"{engine}/{metric}"] = dg.MetadataValue.float(float(value))
    metadata.update({f"metric/{k}": dg.MetadataValue.float(float(v)) for k, v in best.metrics.items()})
    metadata.update({f"baseline/{k}": dg.MetadataValue.float(float(v)) for k, v in best.baseline_metrics.items()})
    top = sorted(best.model.feature_importance().items(), key=lambda kv: -kv[1])[:10]
    metadata.update({f"importance/{k}": dg.MetadataValue.float(float(v)) for k, v in top})
    return round_metadata(metadata)


def use_case_assets(spec: UseCaseSpec, builder: TrainingSetBuilder,
                    feature_sets: Mapping[str, fs.FeatureSet]) -> list:
    """The training set, model and champion assets (with their blocking checks) of one use case."""
    training_key, trained_key, gate_key = training_set_key(spec.name), model_key(spec.name), champion_key(spec.name)
    owners = [spec.owner]
    tags = {"layer": "assembly", "use_case": spec.name, "risk_tier": spec.risk_tier, "business_unit": spec.business_unit}
    versions = fs.feature_set_versions(spec.feature_sets, dict(feature_sets))
    products = {*builder.products, *(p for n in spec.feature_sets for p in feature_sets[n].products)}

    @dg.asset(
        key=training_key, group_name="assembly", owners=owners, tags=tags, kinds={"duckdb", "parquet"},
        deps=[*(feature_set_key(n) for n in spec.feature_sets), *(product_key(p) for p in builder.products)],
        description=f"Point-in-time training set of {spec.name}: {spec.description.strip()}",
    )
    def _training_set(config: TrainingSetConfig, store: FactoryStore) -> dg.MaterializeResult:
        # read at one snapshot of the lake, recorded so `factory audit` can read it again by time travel
        with store.warehouse(read_only=True) as conn, one_snapshot(conn) as snapshot:
            if config.as_of:
                as_of = date.fromisoformat(config.as_of)
            else:
                end = builder.data_end(conn, spec)
                if end is None:
                    raise dg.Failure(f"use case {spec.name}: its data holds no rows yet ({builder.description}); "
                                     "land and build its products first")
                as_of = end + timedelta(days=1)
            frame = builder.build(conn, spec, as_of)
            lineage = product_versions(conn, products)
        if spec.target not in frame.columns:
            raise dg.Failure(f"use case {spec.name}: target {spec.target!r} is not a column of its training set "
                             f"(columns: {', '.join(frame.columns)})")
        path, info_path = training_set_paths(store, spec.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)
        positive = float(frame[spec.target].cast(pl.Float64).mean()) if frame.height else float("nan")
        data_version = frame_version(frame)
        info_path.write_text(json.dumps({"as_of": as_of.isoformat(), "data_version": data_version, "products": lineage,
                                         "lake_snapshot": snapshot}))
        return dg.MaterializeResult(
            metadata=round_metadata({
                "dagster/row_count": dg.MetadataValue.int(frame.height),
                "as_of": as_of.isoformat(),
                "path": str(path),
                "data_version": data_version,
                "lake_snapshot": snapshot if snapshot is not None else "none (DuckDB file)",
                "target_mean": dg.MetadataValue.float(positive),
                "feature_set_versions": json.dumps(versions),
                "max_training_rows": spec.max_training_rows or "no limit",
                "first_split_day": str(frame["split_time"].min()) if "split_time" in frame.columns and frame.height else "none",
            }),
            data_version=dg.DataVersion(data_version),
        )

    @dg.asset(
        key=trained_key, group_name="assembly", owners=owners, tags=tags, deps=[training_key],
        kinds={*spec.engines, "python"},
        description=f"Trains {spec.name} ({spec.template}, {', '.join(spec.engines)}) with a time split and "
        "early stopping, compares it with the naive baseline on the same test window, and registers it as challenger.",
        check_specs=[dg.AssetCheckSpec("beats_baseline", asset=trained_key, blocking=True,
                                       description=f"Blocking: the model beats the naive baseline on {spec.metric}.")],
        output_required=False,
    )
    def _model(context: dg.AssetExecutionContext, config: TrainingConfig, store: FactoryStore,
               policy: GovernancePolicy):
        from factory_assets.assembly.lifecycle import train_and_register
        from factory_assets.assembly.training import MIN_SPLIT_TIMES

        path, info_path = training_set_paths(store, spec.name)
        frame, info = pl.read_parquet(path), json.loads(info_path.read_text())
        times = frame["split_time"].n_unique() if "split_time" in frame.columns else 0
        if times < MIN_SPLIT_TIMES:  # too little history yet: not an error of the run, a state of the use case
            reason = (f"{spec.name} not trained: its training set as of {info['as_of']} has {frame.height} rows over "
                      f"{times} distinct time(s); a time split into train, validation and test needs at least "
                      f"{MIN_SPLIT_TIMES} ({builder.description or 'see its training-set builder'}). Land more history, "
                      "then run assembly_training again")
            context.log.warning(reason)
            yield dg.AssetObservation(asset_key=trained_key, metadata={NOT_TRAINED: reason})
            # nothing was trained, so nothing beats the baseline: a warning (the use case waits), not an error
            yield dg.AssetCheckResult(check_name="beats_baseline", passed=False, severity=dg.AssetCheckSeverity.WARN,
                                      metadata={NOT_TRAINED: reason})
            return
        with store.warehouse(read_only=True) as conn:
            outcome = train_and_register(spec, frame, info, builder=builder, registry=store.registry(),
                                         policy=policy.current(), conn=conn, feature_set_versions=versions,
                                         device=config.device, reason=f"trained by run {context.run_id}",
                                         log=context.log.info)
        best = outcome.best
        check = dg.AssetCheckResult(
            check_name="beats_baseline", passed=outcome.beats_baseline, severity=dg.AssetCheckSeverity.ERROR,
            metadata=round_metadata({"metric": spec.metric, "model": float(best.metrics[spec.metric]),
                                     "baseline": float(best.baseline_metrics[spec.metric]),
                                     "baseline_kind": best.baseline_name}),
        )
        yield dg.MaterializeResult(metadata=_model_metadata(outcome), check_results=[check])

    @dg.asset(
        key=gate_key, group_name="assembly", owners=owners, tags=tags, deps=[trained_key], kinds={"python"},
        description=f"Promotion gate of {spec.name}: the challenger replaces the champion only if it passes every "
        f"promotion rule of governance/policy.yaml for the {spec.risk_tier} tier (lift, margin over the champion on "
        "the same recent holdout, segment gap, uses, PII, approvals, shadow period).",
        check_specs=[dg.AssetCheckSpec("policy", asset=gate_key, blocking=True, description=(
            "Blocking: the champion satisfies the policy in force (governance/policy.yaml); "
            "a non-compliant champion stops its scoring."))],
    )
    def _champion(context: dg.AssetExecutionContext, store: FactoryStore,
                  policy: GovernancePolicy) -> dg.MaterializeResult:
        from factory_assets.assembly.lifecycle import promotion_gate
        from factory_assets.governance.facts import approvals_log

        policy = policy.current()
        frame = pl.read_parquet(training_set_paths(store, spec.name)[0])
        outcome = promotion_gate(spec, frame, registry=store.registry(), approvals=approvals_log(store.paths.artifacts),
                                 policy=policy)
        context.log.info(outcome.reason)
        metadata = {
            "promoted": outcome.promoted, "reason": outcome.reason, "challenger": outcome.challenger,
            "policy_version": policy.version,
            "policy_rules": dg.MetadataValue.json(outcome.rules.to_dict()),
            f"challenger/{spec.metric}": dg.MetadataValue.float(float(outcome.challenger_metrics[spec.metric])),
            f"champion/{spec.metric}": dg.MetadataValue.float(float(outcome.champion_metrics[spec.metric]))
            if outcome.champion_metrics else dg.MetadataValue.float(float("nan")),
            "champion": outcome.champion or "none",
        }
        if outcome.compliance is not None:
            check = dg.AssetCheckResult(check_name="policy", passed=outcome.compliance.passed,
                                        metadata={"champion": outcome.champion, "summary": outcome.compliance.summary(),
                                                  "rules": dg.MetadataValue.json(outcome.compliance.to_dict())})
        else:
            check = dg.AssetCheckResult(check_name="policy", passed=True,
                                        metadata={"summary": "no champion yet: nothing scores"})
        return dg.MaterializeResult(metadata=round_metadata(metadata), check_results=[check])

    return [_training_set, _model, _champion]
