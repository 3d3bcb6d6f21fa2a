"""Distribution assets: each use case's champion scores nightly into a contracted prediction product.

``distribution/<use_case>_predictions`` is daily-partitioned: partition D is scored the night after
D with the features known at the end of D. Thin wrapper over ``scoring`` (pure); the product's
contract is checked by a blocking check (schema, ranges, uniqueness) and a freshness check.
"""

from datetime import date

import dagster as dg

from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.training_sets import TrainingSetBuilder
from factory_assets.distribution import scoring
from factory_assets.keys import champion_key, feature_set_key, predictions_key, product_key
from factory_assets.lib.contracts import ContractError, prediction_contract, prediction_contract_path
from factory_assets.lib.metadata import round_metadata
from factory_assets.processing.checks import contract_check, freshness_check
from factory_assets.raw_material.assets import daily_partitions
from factory_assets.resources import FactoryStore, GovernancePolicy


def no_champion_reason(instance: dg.DagsterInstance, use_case: str) -> str:
    """Why ``use_case`` has no champion, in words: never through its gate, or what its last gate said
    (a failed rule, approvals still missing), read from the champion asset's last materialization."""
    event = instance.get_latest_materialization_event(champion_key(use_case))
    if event is None or event.asset_materialization is None:
        return f"{use_case} has no champion: no model has been through its promotion gate (run the assembly_training job)"
    meta = event.asset_materialization.metadata
    if "promoted" in meta and meta["promoted"].value:
        return (f"{use_case} has no champion: the one its last gate promoted (run {event.run_id[:8]}) was withdrawn "
                f"since (`factory models {use_case}` shows the alias history)")
    said = meta["reason"].value if "reason" in meta else "no reason recorded"
    return f"{use_case} has no champion: its last promotion gate (run {event.run_id[:8]}) kept the challenger, {said}"


def snapshot_folder(store: FactoryStore, use_case: str):
    return store.paths.artifacts / "feature_snapshots" / use_case


def snapshot_path(store: FactoryStore, use_case: str, day: date):
    return snapshot_folder(store, use_case) / f"{day.isoformat()}.parquet"


def prediction_contract_file(use_case: str):
    """The hand-written contract of a use case's prediction product, in whichever location keeps it
    (``data_contracts/predictions/<use case>.odcs.yaml``); the core's path when none does."""
    from factory_assets.lib.locations import contract_files

    for path in contract_files("predictions"):
        if path.name == f"{use_case}.odcs.yaml":
            return path
    return prediction_contract_path(use_case)


def _load_prediction_contract(use_case: str):
    from factory_assets.lib.contracts import load_contract

    path = prediction_contract_file(use_case)
    return prediction_contract(use_case) if path == prediction_contract_path(use_case) else load_contract(path)


def prediction_asset(spec: UseCaseSpec, builder: TrainingSetBuilder | None) -> dg.AssetsDefinition:
    key = predictions_key(spec.name)
    contract_file = prediction_contract_file(spec.name)
    contract_text = (str(contract_file.relative_to(contract_file.parents[2])) if contract_file.is_file()
                     else "generated from the declaration (artifacts/contracts/predictions)")

    @dg.asset(
        key=key,
        group_name="distribution",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # the products its rows are read from: scoring waits for tonight's build of them
        deps=[champion_key(spec.name), *[feature_set_key(n) for n in spec.feature_sets],
              *[product_key(p) for p in (builder.products if builder else ())]],
        output_required=False,
        owners=[spec.owner],
        kinds={"duckdb", *spec.engines},
        tags={"layer": "distribution", "use_case": spec.name, "risk_tier": spec.risk_tier,
              "business_unit": spec.business_unit},
        description=f"Nightly {spec.name} scores by the champion model, table predictions.{spec.name}, contract "
        f"{contract_text}. Each row names the model version and the "
        "feature snapshot it used. Nothing is written while the use case has no champion.",
        metadata={"contract": contract_file.name if contract_file.is_file() else "generated",
                  "table": f"predictions.{spec.name}"},
    )
    def _predictions(context: dg.AssetExecutionContext, store: FactoryStore, policy: GovernancePolicy):
        from factory_assets.assembly.registry import RegistryIntegrityError, RegistryKeyError

        registry = store.registry()
        try:
            champion = registry.get(spec.name, "champion")
        except RegistryKeyError:
            context.log.warning(f"{no_champion_reason(context.instance, spec.name)}: nothing scored.")
            return
        try:  # a champion whose manifest or files changed after registration never scores
            champion = registry.verify(spec.name, champion.version)
        except RegistryIntegrityError as exc:
            raise dg.Failure(description=str(exc), metadata={"model_version": champion.version}) from None
        written_by_hand = contract_file.is_file()
        try:
            contract = _load_prediction_contract(spec.name) if written_by_hand else None
        except ContractError as exc:
            raise dg.Failure(str(exc)) from exc
        table = contract.physical_name if contract else f"predictions.{spec.name}"
        from factory_assets.governance.facts import approvals_log, model_facts
        from factory_assets.governance.policy import scoring_allowed

        allowed = scoring_allowed(policy.current(), model_facts(spec, champion, approvals_log(store.paths.artifacts)))
        if not allowed.passed:
            raise dg.Failure(
                description=f"policy forbids scoring with {spec.name} {champion.version}: {allowed.summary()}",
                metadata={"rules": dg.MetadataValue.json(allowed.to_dict())})
        model = registry.load_model(spec.name, champion.version)
        categories = champion.manifest.get("extra", {}).get("categories", {})
        days = sorted(date.fromisoformat(k) for k in context.partition_keys)
        with store.warehouse() as conn:
            try:
                written = scoring.score_days(conn, spec, builder, model, categories, model_version=champion.version,
                                             table=table, days=days,
                                             snapshot_folder=snapshot_folder(store, spec.name))
            except scoring.ModelFeaturesMissingError as exc:
                raise dg.Failure(str(exc)) from exc
            if contract is None:  # contracted from the declaration and the rows' key types
                from factory_assets.distribution.prediction_contract import write_prediction_contract
                from factory_assets.lib.contract_checks import evaluate_contract

                schema = next((rows.schema for rows in written.values() if rows.height), None)
                if schema is not None:
                    contract = write_prediction_contract(spec, dict(schema), store.paths.artifacts / "contracts"
                                                         / "predictions")
                    report = evaluate_contract(conn, contract, table)
                    if not report.passed:
                        raise dg.Failure(f"{spec.name}'s predictions break their contract {contract.path}: "
                                         f"{report.summary()}")
        rows_by_day = {day: rows.height for day, rows in written.items()}
        means = [float(rows["prediction"].mean()) for rows in written.values() if rows.height]
        context.log.info(f"Scored {sum(rows_by_day.values())} rows over {len(days)} day(s) with {champion.version}.")
        yield dg.MaterializeResult(metadata=round_metadata({
            "dagster/row_count": dg.MetadataValue.int(sum(rows_by_day.values())),
            "rows_per_day": dg.MetadataValue.json({str(d): n for d, n in rows_by_day.items()}),
            "model_version": champion.version,
            "engine": champion.engine,
            "mean_prediction": dg.MetadataValue.float(sum(means) / len(means) if means else float("nan")),
            "contract_version": contract.version if contract else "none (nothing scored)",
            "contract": str(contract.path) if contract else "none",
            "table": table,
        }))

    return _predictions


def prediction_checks(spec: UseCaseSpec) -> list[dg.AssetChecksDefinition]:
    """Blocking contract check and freshness warning of a prediction product (if it has a contract)."""
    if not prediction_contract_file(spec.name).is_file():
        return []
    contract = _load_prediction_contract(spec.name)
    checks = [contract_check(contract, predictions_key(spec.name))]
    if contract.freshness_column:
        checks.append(freshness_check(contract, predictions_key(spec.name)))
    return checks
