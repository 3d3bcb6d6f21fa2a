"""Ingestion assets: one daily-partitioned asset per raw contract (thin wrappers over ``ingest``).

A new raw source is a contract file in ``data_contracts/raw/`` (or a business unit's own
``data_contracts/raw/``) and its folder in the landing zone; no Python names it.
"""


from collections.abc import Iterable
from datetime import date
from pathlib import Path

import dagster as dg

from factory_assets.lib.contracts import (
    RAW_CONTRACTS_DIR,
    DataContract,
    load_raw_contracts,
    raw_contract_dirs,
)
from factory_assets.lib.metadata import round_metadata
from factory_assets.raw_material.ingest import ensure_raw_tables, ingest_partitions
from factory_assets.raw_material.landing import bounded
from factory_assets.resources import FactoryStore
from factory_assets.settings import partitions_start

daily_partitions = dg.DailyPartitionsDefinition(start_date=partitions_start().isoformat())


#: Files listed one by one in metadata; the rest are counted (their reasons are in raw.quarantine_log).
LISTED_FILES = 10


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def _quarantine_table(outcomes) -> str:
    lines = ["| file | reason | detail |", "|---|---|---|"]
    for o in outcomes[:LISTED_FILES]:
        lines.append(f"| {_cell(o.file_name)} | {o.reason} | {_cell(bounded(o.detail, 600))} |")
    if len(outcomes) > LISTED_FILES:
        lines.append(f"| and {len(outcomes) - LISTED_FILES} more file(s) | | see raw.quarantine_log |")
    return "\n".join(lines)


def _listed(texts: list[str]) -> str:
    shown = "\n".join(f"- {_cell(t)}" for t in texts[:LISTED_FILES])
    return shown + (f"\n- and {len(texts) - LISTED_FILES} more" if len(texts) > LISTED_FILES else "")


def ingestion_asset(contract: DataContract) -> dg.AssetsDefinition:
    """The ingestion asset of one raw contract; named ``raw_material/<source>`` in the UI."""
    source = contract.table
    key = dg.AssetKey(["raw_material", source])

    @dg.asset(
        key=key,
        group_name="raw_material",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            f"{contract.description} Validated against {contract.path.name}; appended immutably to "
            f"raw.{source} and Parquet with provenance (source file, checksum, ingested_at)."
        ),
        owners=[contract.owner],
        kinds={"python", "duckdb", "parquet"},
        tags={"source_kind": contract.source_kind, "layer": "raw_material"},
        metadata={
            "contract": contract.path.name,
            "contract_version": contract.version,
            "landing_format": contract.landing_format,
            "pii_columns": ", ".join(contract.pii_columns) or "none",
        },
        check_specs=[
            dg.AssetCheckSpec(
                "landing_files_clean",
                asset=key,
                description="Fails when a landing file of this run was quarantined "
                            "(malformed, truncated, empty, duplicate or breaking the contract).",
            )
        ],
    )
    def _ingest(context: dg.AssetExecutionContext, store: FactoryStore) -> dg.MaterializeResult:
        days = {date.fromisoformat(k) for k in context.partition_keys}
        with store.warehouse() as conn:
            migrations = ensure_raw_tables(conn, [contract])
            outcomes = ingest_partitions(conn, store.paths, contract, days)
            total_rows = conn.execute(f"SELECT count(*) FROM raw.{source}").fetchone()[0]
        ingested = [o for o in outcomes if o.status == "ingested"]
        quarantined = [o for o in outcomes if o.status == "quarantined"]
        migrated = [f"{m['column_name']}: {m['change']} {m['from_type'] or ''} -> {m['to_type']} "
                    f"({m['contract_file']} v{m['contract_version']})".replace("  ", " ") for m in migrations]
        for text in migrated:
            context.log.warning(f"raw.{source} follows its contract: {text} (recorded in raw.schema_migrations)")
        for o in quarantined:
            context.log.error(f"Quarantined {o.file_name} ({o.reason}): {o.detail} -> {o.moved_to}")
        warnings = [o.warning for o in ingested if o.warning]
        for text in warnings:
            context.log.warning(text)
        corrections = [o.supersedes for o in ingested if o.supersedes]
        for text in corrections:
            context.log.info(f"Correction: {text}")
        if not outcomes:
            context.log.warning(f"No landing files for {source} on {', '.join(sorted(context.partition_keys))}.")
        rows = sum(o.rows for o in ingested)
        metadata = {
            # "Row count" in the UI: what raw.<source> holds (the table is append-only), not this run's
            # rows, which were 0 after a quarantine while the table held every earlier day's rows
            "dagster/row_count": dg.MetadataValue.int(int(total_rows)),
            "rows_appended": dg.MetadataValue.int(rows),
            "files_ingested": len(ingested),
            "files_quarantined": len(quarantined),
            "checksums": ", ".join(o.checksum[:12] for o in ingested) or "none",
        }
        if quarantined:
            metadata["quarantined"] = dg.MetadataValue.md(_quarantine_table(quarantined))
        if warnings:
            metadata["files_without_rows"] = dg.MetadataValue.md(_listed(warnings))
        if corrections:
            metadata["corrections"] = dg.MetadataValue.md(_listed(corrections))
        if migrated:
            metadata["schema_migrations"] = dg.MetadataValue.md(_listed(migrated))
        reasons = [f"{o.file_name}: {o.reason}" for o in quarantined]
        check = dg.AssetCheckResult(
            check_name="landing_files_clean",
            passed=not quarantined,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "quarantined_files": len(quarantined),
                "reasons": bounded(", ".join(reasons[:LISTED_FILES])
                                   + (f" and {len(reasons) - LISTED_FILES} more" if len(reasons) > LISTED_FILES else ""))
                or "none",
            },
        )
        return dg.MaterializeResult(metadata=round_metadata(metadata), check_results=[check])

    return _ingest


def raw_assets_from_contracts(contracts_dir: Path | str, others: Iterable[Path] | None = None) -> list[dg.AssetsDefinition]:
    """One ingestion asset per raw contract in ``contracts_dir``, by source name.

    ``others``: folders sharing the landing zone (default: every raw-contract folder of the
    project); a source name declared there too fails here, naming both files."""
    others = raw_contract_dirs() if others is None else others
    return [ingestion_asset(c) for c in load_raw_contracts(contracts_dir, others).values()]


raw_assets = raw_assets_from_contracts(RAW_CONTRACTS_DIR)
