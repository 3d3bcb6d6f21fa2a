"""Generate the dbt properties of every data product from its ODCS contract.

The contract in ``data_contracts/products/<name>.odcs.yaml`` is the single source of truth for a
data product. This module renders ``dbt_project/models/marts/<name>.yml`` from it:

* the model description and ``config`` (``contract: {enforced: true}`` and ``meta`` with the
  contract id, version and owner),
* every column with its lower-case DuckDB ``data_type``, description, classification (column
  ``config.meta``) and a ``not_null`` constraint when the column is required (dbt enforces the
  column names, types and constraints when it builds the table),
* data tests derived from the contract: ``unique``, ``accepted_values``
  (quality invalidValues), ``accepted_range`` (logicalTypeOptions minimum/maximum),
  ``matches_pattern`` (logicalTypeOptions pattern) and, at model level,
  ``unique_combination_of_columns`` (table quality duplicateValues). The generic tests live in
  ``dbt_project/tests/generic/``; their arguments are nested under ``arguments:`` as dbt 1.11
  expects. A required column gets no ``not_null`` data test: DuckDB enforces its ``not_null``
  constraint on every insert, so a null fails the model's build (the table keeps its last good
  rows) and a test could never find one; it cost a dbt node per required column every night.

The dbt sources of the raw tables come from the raw contracts in ``data_contracts/raw/`` the same
way: ``models/staging/<dbtSource>/_<dbtSource>__sources.yml`` declares one table per contract
whose ``customProperties`` dbtSource names that source (default: the source's own name), with its
columns and types, the provenance columns ingestion adds, and ``meta.dagster.asset_key``
``[raw_material, <source>]`` so lineage runs from the ingestion asset (``sync_dbt_sources``;
``tasks.py setup`` runs it before ``dbt parse``, so a new raw contract needs no hand-written YAML).

The committed YAML must equal what the contract generates; ``sync_dbt_models(check=True)``,
``sync_dbt_sources(check=True)`` and ``python -m factory_assets.lib.dbt_contracts --check`` report
drift (the test suite runs the check).
Rendering is deterministic: the same contract always yields byte-identical YAML.

Framework-free on purpose (no Dagster import) so CI and pre-commit can run it cheaply.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from factory_assets.lib.contracts import (
    CONTRACTS_DIR,
    PROVENANCE_COLUMNS,
    RAW_CONTRACTS_DIR,
    Column,
    ContractError,
    DataContract,
    load_contract,
    load_raw_contracts,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCT_CONTRACTS_DIR = CONTRACTS_DIR / "products"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
MARTS_MODELS_DIR = DBT_PROJECT_DIR / "models" / "marts"
STAGING_MODELS_DIR = DBT_PROJECT_DIR / "models" / "staging"

#: dbt source freshness of the raw tables: a daily feed warns after a day and a half without rows.
RAW_FRESHNESS = {"warn_after": {"count": 36, "period": "hour"}}

PROVENANCE_DESCRIPTIONS = {
    "_source_file": "Provenance: name of the landing file the row came from.",
    "_checksum": "Provenance: SHA-256 of the landing file.",
    "_row_number": "Provenance: the row's number in its landing file, from 1.",
    "_partition_date": "Provenance: the delivery day in the landing file's name (the Dagster partition).",
    "_ingested_at": "Provenance: when the file was ingested (UTC).",
}
REGENERATE_COMMAND = "python -m factory_assets.lib.dbt_contracts"
GENERATED_MARKER = "# GENERATED FILE - DO NOT EDIT."


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents block sequences under their key (the usual dbt YAML style)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _number(value: float | int) -> float | int:
    """Keep integral bounds as ints (``1`` not ``1.0``) so the YAML reads like the contract."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _column_tests(column: Column) -> list[Any]:
    tests: list[Any] = []  # a required column's not_null is its enforced constraint, not a test
    if column.unique:
        tests.append("unique")
    if column.valid_values is not None:
        arguments: dict[str, Any] = {"values": list(column.valid_values)}
        if not all(isinstance(v, str) for v in column.valid_values):
            arguments["quote"] = False
        tests.append({"accepted_values": {"arguments": arguments}})
    if column.minimum is not None or column.maximum is not None:
        bounds: dict[str, Any] = {}
        if column.minimum is not None:
            bounds["min_value"] = _number(column.minimum)
        if column.maximum is not None:
            bounds["max_value"] = _number(column.maximum)
        tests.append({"accepted_range": {"arguments": bounds}})
    if column.pattern is not None:
        tests.append({"matches_pattern": {"arguments": {"regex": column.pattern}}})
    return tests


def _model_tests(contract: DataContract) -> list[Any]:
    tests: list[Any] = []
    for columns in contract.unique_together:
        # a single column already declared unique is covered by its column-level unique test
        if len(columns) == 1 and contract.column(columns[0]).unique:
            continue
        tests.append({"unique_combination_of_columns": {"arguments": {"combination_of_columns": list(columns)}}})
    return tests


def _dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def _column_entry(column: Column) -> dict[str, Any]:
    return {
        "name": column.name,
        "data_type": column.physical_type.lower(),
        "description": column.description,
        "config": {"meta": {"classification": column.classification}},
    }


def model_properties(contract: DataContract) -> dict[str, Any]:
    """The dbt properties (``version: 2`` document) of the contract's model, as plain data."""
    model: dict[str, Any] = {
        "name": contract.name,
        "description": contract.description,
        "config": {
            "contract": {"enforced": True},
            "meta": {
                "contract_id": contract.id,
                "contract_version": contract.version,
                "owner": contract.owner,
            },
        },
    }
    tests = _model_tests(contract)
    if tests:
        model["data_tests"] = tests
    columns = []
    for column in contract.columns:
        entry = _column_entry(column)
        if column.required:
            entry["constraints"] = [{"type": "not_null"}]
        column_tests = _column_tests(column)
        if column_tests:
            entry["data_tests"] = column_tests
        columns.append(entry)
    model["columns"] = columns
    return {"version": 2, "models": [model]}


def _check_contract(contract: DataContract) -> None:
    if contract.table != contract.name:
        raise ContractError(
            f"{contract.path}: schema[0].name {contract.table!r} must equal the contract name {contract.name!r} "
            "(the dbt model name)"
        )
    if contract.physical_name != f"marts.{contract.name}":
        raise ContractError(
            f"{contract.path}: the product's table is {contract.physical_name!r} but must be 'marts.{contract.name}' "
            f"(physicalName {contract.name!r}, and a duckdb server with schema 'marts')"
        )
    if contract.pii_columns:
        raise ContractError(
            f"{contract.path}: data products must not expose PII, but columns {contract.pii_columns} "
            "are classified pii (pseudonymise them upstream and classify the key as internal)"
        )


def render_model_yaml(contract: DataContract) -> str:
    """The YAML text of ``models/marts/<contract.name>.yml``, header comment included."""
    _check_contract(contract)
    header = (
        f"{GENERATED_MARKER}\n"
        f"# Generated from the data contract data_contracts/products/{contract.path.name}\n"
        f"# ({contract.id}, version {contract.version}).\n"
        f"# Edit the contract, then regenerate with: {REGENERATE_COMMAND}\n"
        f"# Drift check (run by tests/test_dbt_project.py): {REGENERATE_COMMAND} --check\n"
    )
    return header + _dump(model_properties(contract))


def model_yaml_path(name: str, models_dir: Path | str | None = None) -> Path:
    return Path(models_dir or MARTS_MODELS_DIR) / f"{name}.yml"


def _product_contracts(contracts_dir: Path) -> list[DataContract]:
    paths = sorted(contracts_dir.glob("*.odcs.yaml"))
    contracts = [load_contract(p) for p in paths]
    for path, contract in zip(paths, contracts, strict=True):
        if contract.name != path.name.removesuffix(".odcs.yaml"):
            raise ContractError(f"{path}: contract name {contract.name!r} must match the file name")
    return contracts


def sync_dbt_models(
    check: bool = False,
    *,
    contracts_dir: Path | str | None = None,
    models_dir: Path | str | None = None,
) -> list[str]:
    """Generate the YAML of every product contract into the marts folder.

    With ``check=False`` writes the files that differ and returns the names written. With
    ``check=True`` writes nothing and returns the names whose committed YAML is missing or differs
    from what the contract generates (empty list = in sync).
    """
    contracts_dir = Path(contracts_dir or PRODUCT_CONTRACTS_DIR)
    names = []
    contracts = _product_contracts(contracts_dir)
    for contract in contracts:
        path = model_yaml_path(contract.name, models_dir)
        expected = render_model_yaml(contract)
        current = path.read_text() if path.exists() else None
        if current == expected:
            continue
        names.append(contract.name)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected)
    # a generated file whose contract was removed is stale too (removed when not checking)
    known = {c.name for c in contracts}
    for path in sorted(Path(models_dir or MARTS_MODELS_DIR).glob("*.yml")):
        if path.stem not in known and path.read_text().startswith(GENERATED_MARKER):
            names.append(path.stem)
            if not check:
                path.unlink()
    return names


def source_table(contract: DataContract) -> dict[str, Any]:
    """One raw contract as a dbt source table: columns, types, contract meta and its Dagster asset."""
    description = " ".join(part for part in (contract.table_description, contract.description) if part)
    columns = [_column_entry(c) for c in contract.columns]
    columns += [{"name": name, "data_type": physical.lower(), "description": PROVENANCE_DESCRIPTIONS[name]}
                for name, physical in PROVENANCE_COLUMNS.items()]
    return {
        "name": contract.table,
        "description": f"{description} (contract {contract.id}, version {contract.version})".strip(),
        "config": {
            "meta": {
                "dagster": {"asset_key": ["raw_material", contract.table]},
                "contract_id": contract.id,
                "contract_version": contract.version,
                "owner": contract.owner,
            },
        },
        "columns": columns,
    }


def sources_properties(dbt_source: str, contracts: Sequence[DataContract]) -> dict[str, Any]:
    """The dbt properties (``version: 2``) declaring source ``dbt_source`` over these raw contracts."""
    description = (
        "Raw tables landed by the ingestion assets into schema `raw` (append-only), one per raw contract "
        f"with dbtSource {dbt_source}. Each row carries the provenance columns "
        f"{', '.join(PROVENANCE_COLUMNS)}."
    )
    if any(c.pii_columns for c in contracts):
        description += " Contains personal data (columns classified pii)."
    source = {
        "name": dbt_source,
        "description": description,
        "schema": "raw",
        "config": {"loaded_at_field": "_ingested_at", "freshness": RAW_FRESHNESS},
        "tables": [source_table(c) for c in sorted(contracts, key=lambda c: c.table)],
    }
    return {"version": 2, "sources": [source]}


def render_sources_yaml(dbt_source: str, contracts: Sequence[DataContract]) -> str:
    """The YAML text of ``models/staging/<dbt_source>/_<dbt_source>__sources.yml``."""
    files = ", ".join(f"data_contracts/raw/{c.path.name}" for c in sorted(contracts, key=lambda c: c.table))
    header = (
        f"{GENERATED_MARKER}\n"
        f"# Generated from the raw contracts {files}.\n"
        f"# Edit the contracts, then regenerate with: {REGENERATE_COMMAND}\n"
        f"# Drift check (run by tests/test_raw_sources.py): {REGENERATE_COMMAND} --check\n"
    )
    return header + _dump(sources_properties(dbt_source, contracts))


def sources_yaml_path(dbt_source: str, staging_dir: Path | str | None = None) -> Path:
    return Path(staging_dir or STAGING_MODELS_DIR) / dbt_source / f"_{dbt_source}__sources.yml"


def raw_contracts_by_dbt_source(contracts_dir: Path | str | None = None) -> dict[str, list[DataContract]]:
    grouped: dict[str, list[DataContract]] = {}
    for contract in load_raw_contracts(contracts_dir or RAW_CONTRACTS_DIR).values():
        grouped.setdefault(contract.dbt_source, []).append(contract)
    return dict(sorted(grouped.items()))


def sync_dbt_sources(
    check: bool = False,
    *,
    contracts_dir: Path | str | None = None,
    staging_dir: Path | str | None = None,
) -> list[str]:
    """Generate the dbt sources YAML of the raw contracts into the staging folders.

    Returns the dbt source names whose YAML was written (``check=False``) or is missing, differs
    or was generated for a source no contract declares any more (``check=True``, nothing written).
    """
    staging_dir = Path(staging_dir or STAGING_MODELS_DIR)
    grouped = raw_contracts_by_dbt_source(contracts_dir)
    names = []
    for dbt_source, contracts in grouped.items():
        path = sources_yaml_path(dbt_source, staging_dir)
        expected = render_sources_yaml(dbt_source, contracts)
        if path.exists() and path.read_text() == expected:
            continue
        names.append(dbt_source)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected)
    for path in sorted(staging_dir.glob("*/_*__sources.yml")):
        dbt_source = path.parent.name
        if dbt_source not in grouped and path.read_text().startswith(GENERATED_MARKER):
            names.append(dbt_source)
            if not check:
                path.unlink()
    return names


def _display(path: Path) -> str:
    """A path relative to the repository root when it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=REGENERATE_COMMAND,
        description="Generate dbt_project/models/marts/<product>.yml from data_contracts/products/*.odcs.yaml "
                    "and models/staging/<dbtSource>/_<dbtSource>__sources.yml from data_contracts/raw/*.odcs.yaml.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any generated file is stale")
    parser.add_argument("--sources-only", action="store_true",
                        help="only the raw tables' dbt sources (models/staging/*/_*__sources.yml); tasks.py setup runs this")
    parser.add_argument("--quiet", action="store_true", help="say only what was updated")
    parser.add_argument("--contracts-dir", type=Path, default=PRODUCT_CONTRACTS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--models-dir", type=Path, default=MARTS_MODELS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--raw-contracts-dir", type=Path, default=RAW_CONTRACTS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--staging-dir", type=Path, default=STAGING_MODELS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        sources = sync_dbt_sources(check=args.check, contracts_dir=args.raw_contracts_dir, staging_dir=args.staging_dir)
        names = [] if args.sources_only else sync_dbt_models(
            check=args.check, contracts_dir=args.contracts_dir, models_dir=args.models_dir)
    except ContractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    source_paths = [_display(sources_yaml_path(s, args.staging_dir)) for s in sources]
    if args.check:
        for path in source_paths:
            print(f"dbt source drift: {path} is not what the raw contracts in data_contracts/raw/ generate", file=sys.stderr)
        if names or sources:
            for name in names:
                contract_path = _display(args.contracts_dir / f"{name}.odcs.yaml")
                yaml_path = model_yaml_path(name, args.models_dir)
                if not (args.contracts_dir / f"{name}.odcs.yaml").exists():
                    reason = "was generated from a contract that no longer exists"
                elif not yaml_path.exists():
                    reason = f"is missing (contract {contract_path})"
                else:
                    reason = f"differs from what its contract {contract_path} generates"
                print(f"dbt contract drift: {_display(yaml_path)} {reason}", file=sys.stderr)
            print(f"Run `{REGENERATE_COMMAND}` to regenerate, then commit the result.", file=sys.stderr)
            return 1
        print("dbt mart properties and raw sources are in sync with the contracts.")
        return 0
    for path in [*source_paths, *(_display(model_yaml_path(n, args.models_dir)) for n in names)]:
        print(f"updated {path}")
    if not names and not sources and not args.quiet:
        print("dbt mart properties and raw sources already up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
