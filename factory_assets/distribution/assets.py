"""Distribution assets: each use case's champion scores nightly into a contracted prediction product.

``distribution/<use_case>_predictions`` is daily-partitioned: partition D is scored the night after
D with the features known at the end of D. Thin wrapper over ``scoring`` (pure); the product's
contract is checked by a blocking check (schema, ranges, uniqueness) and a freshness check.
"""

from datetime import date

import dagster as dg

from factory_assets.assembly.specs import UseCaseSpec, load_use_cases
from factory_assets.distribution import scoring
from factory_assets.lib.contracts import ContractError, prediction_contract, prediction_contract_path
from factory_assets.processing.checks import contract_check, freshness_check
from factory_assets.raw_material.assets import daily_partitions
from factory_assets.resources import FactoryStore


def predictions_key(use_case: str) -> dg.AssetKey:
    return dg.AssetKey(["distribution", f"{use_case}_predictions"])


def snapshot_folder(store: FactoryStore, use_case: str):
    return store.paths.artifacts / "feature_snapshots" / use_case


def snapshot_path(store: FactoryStore, use_case: str, day: date):
    return snapshot_folder(store, use_case) / f"{day.isoformat()}.parquet"


def prediction_asset(spec: UseCaseSpec) -> dg.AssetsDefinition:
    key = predictions_key(spec.name)
    contract_file = prediction_contract_path(spec.name)

    @dg.asset(
        key=key,
        group_name="distribution",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetKey(["assembly", f"{spec.name}_champion"]),
              *[dg.AssetKey(["assembly", n]) for n in spec.feature_sets]],
        output_required=False,
        owners=[spec.owner],
        kinds={"duckdb", *spec.engines},
        tags={"layer": "distribution", "use_case": spec.name, "risk_tier": spec.risk_tier,
              "business_unit": spec.business_unit},
        description=f"Nightly {spec.name} scores by the champion model, table predictions.{spec.name}, contract "
        f"{contract_file.relative_to(contract_file.parents[2])}. Each row names the model version and the "
        "feature snapshot it used. Nothing is written while the use case has no champion.",
        metadata={"contract": contract_file.name, "table": f"predictions.{spec.name}"},
    )
    def _predictions(context: dg.AssetExecutionContext, store: FactoryStore):
        from factory_assets.assembly.registry import ModelRegistry, RegistryKeyError

        registry = ModelRegistry(store.paths.artifacts / "models")
        try:
            champion = registry.get(spec.name, "champion")
        except RegistryKeyError:
            context.log.warning(f"{spec.name} has no champion yet (run the assembly_training job): nothing scored.")
            return
        try:
            contract = prediction_contract(spec.name)
        except ContractError as exc:
            raise dg.Failure(str(exc)) from exc
        from factory_assets.governance.facts import approvals_log, current_policy, model_facts
        from factory_assets.governance.policy import scoring_allowed

        allowed = scoring_allowed(current_policy(), model_facts(spec, champion, approvals_log(store.paths.artifacts)))
        if not allowed.passed:
            raise dg.Failure(
                description=f"policy forbids scoring with {spec.name} {champion.version}: {allowed.summary()}",
                metadata={"rules": dg.MetadataValue.json(allowed.to_dict())})
        model = registry.load_model(spec.name, champion.version)
        categories = champion.manifest.get("extra", {}).get("categories", {})
        days = sorted(date.fromisoformat(k) for k in context.partition_keys)
        with store.warehouse() as conn:
            written = scoring.score_days(conn, spec, model, categories, model_version=champion.version,
                                         table=contract.physical_name, days=days,
                                         snapshot_folder=snapshot_folder(store, spec.name))
        rows_by_day = {day: rows.height for day, rows in written.items()}
        means = [float(rows["prediction"].mean()) for rows in written.values() if rows.height]
        context.log.info(f"Scored {sum(rows_by_day.values())} rows over {len(days)} day(s) with {champion.version}.")
        yield dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(sum(rows_by_day.values())),
            "rows_per_day": dg.MetadataValue.json({str(d): n for d, n in rows_by_day.items()}),
            "model_version": champion.version,
            "engine": champion.engine,
            "mean_prediction": dg.MetadataValue.float(sum(means) / len(means) if means else float("nan")),
            "contract_version": contract.version,
            "table": contract.physical_name,
        })

    return _predictions


def prediction_checks(spec: UseCaseSpec) -> list[dg.AssetChecksDefinition]:
    """Blocking contract check and freshness warning of a prediction product (if it has a contract)."""
    if not prediction_contract_path(spec.name).is_file():
        return []
    contract = prediction_contract(spec.name)
    checks = [contract_check(contract, predictions_key(spec.name))]
    if contract.freshness_column:
        checks.append(freshness_check(contract, predictions_key(spec.name)))
    return checks


def all_prediction_assets(folder=None) -> tuple[list, list]:
    specs = load_use_cases(folder) if folder else load_use_cases()
    return ([prediction_asset(s) for s in specs.values()],
            [c for s in specs.values() for c in prediction_checks(s)])
