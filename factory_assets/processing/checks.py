"""A blocking asset check per data product, built from its contract (prediction products reuse them)."""


import json

import dagster as dg

from factory_assets.keys import product_key
from factory_assets.lib.contract_checks import evaluate_contract, evaluate_freshness
from factory_assets.lib.contracts import (
    DataContract,
    product_contract,
    product_contract_names,
)
from factory_assets.lib.metadata import FAILING_ROWS, round_metadata
from factory_assets.resources import FactoryStore


def contract_check(contract: DataContract, asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="contract",
        blocking=True,
        description=f"Blocking: the product satisfies {contract.path.name} "
                    "(schema, nulls, ranges, patterns, allowed values, uniqueness).",
    )
    def _check(store: FactoryStore) -> dg.AssetCheckResult:
        with store.warehouse(read_only=True) as conn:
            report = evaluate_contract(conn, contract)
        metadata = {
            "contract": contract.path.name,
            "contract_version": contract.version,
            "rows_checked": dg.MetadataValue.int(report.row_count),
            "rules_checked": len(report.rules),
            "rules_failed": len(report.failed_rules),
            # one name per quantity: the dbt tests' checks record theirs as failing_rows too
            FAILING_ROWS: dg.MetadataValue.int(sum(rule.failing_rows for rule in report.failed_rules)),
            "summary": report.summary(),
        }
        if report.schema_problems:
            metadata["schema_problems"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in report.schema_problems))
        for rule in report.failed_rules[:5]:
            metadata[f"failing: {rule.rule}"] = dg.MetadataValue.json(
                {"failing_rows": rule.failing_rows, "sample": json.loads(json.dumps(rule.sample, default=str))}
            )
        return dg.AssetCheckResult(passed=report.passed, severity=dg.AssetCheckSeverity.ERROR,
                                   metadata=round_metadata(metadata))

    return _check


def freshness_check(contract: DataContract, asset: dg.AssetKey) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="freshness",
        description=(
            f"Warns when {contract.freshness_column} trails the newest landed data by more than "
            f"{contract.freshness_days:g} day(s) (the contract's latency SLA); fails with severity ERROR when "
            "a date column leaves the range of days that landed."
        ),
    )
    def _check(store: FactoryStore) -> dg.AssetCheckResult:
        with store.warehouse(read_only=True) as conn:
            report = evaluate_freshness(conn, contract)
        metadata = {
            "column": report.column,
            "newest_value": report.newest_value or "none",
            "newest_landed": report.reference or "none",
            "lag_days": dg.MetadataValue.float(report.lag_days if report.lag_days is not None else float("nan")),
            "allowed_days": dg.MetadataValue.float(report.allowed_days),
        }
        if report.landed_range:
            metadata["value_range"] = f"{report.oldest_value} .. {report.newest_value}"
            metadata["landed_range"] = " .. ".join(report.landed_range)
        if report.outside:
            metadata["outside_landed_range"] = report.outside
        return dg.AssetCheckResult(
            passed=report.passed,
            severity=dg.AssetCheckSeverity.ERROR if report.outside else dg.AssetCheckSeverity.WARN,
            metadata=round_metadata(metadata),
        )

    return _check


def _product_key(name: str) -> dg.AssetKey:
    return product_key(name)


product_contract_checks = [contract_check(product_contract(n), _product_key(n)) for n in product_contract_names()] + [
    freshness_check(product_contract(n), _product_key(n))
    for n in product_contract_names() if product_contract(n).freshness_column
]
