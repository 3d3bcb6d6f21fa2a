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

The committed YAML must equal what the contract generates; ``sync_dbt_models(check=True)`` and
``python -m factory_assets.lib.dbt_contracts --check`` report drift (the test suite runs the check).
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

from factory_assets.lib.contracts import CONTRACTS_DIR, Column, ContractError, DataContract, load_contract

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCT_CONTRACTS_DIR = CONTRACTS_DIR / "products"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
MARTS_MODELS_DIR = DBT_PROJECT_DIR / "models" / "marts"
REGENERATE_COMMAND = "python -m factory_assets.lib.dbt_contracts"
GENERATED_MARKER = "# GENERATED FILE - DO NOT EDIT."


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents block sequences under their key (the usual dbt YAML style)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:  # noqa: D102
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
        entry: dict[str, Any] = {
            "name": column.name,
            "data_type": column.physical_type.lower(),
            "description": column.description,
            "config": {"meta": {"classification": column.classification}},
        }
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
            f"{contract.path}: physicalName {contract.physical_name!r} must be 'marts.{contract.name}'"
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
    body = yaml.dump(
        model_properties(contract),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    return header + body


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


def _display(path: Path) -> str:
    """A path relative to the repository root when it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=REGENERATE_COMMAND,
        description="Generate dbt_project/models/marts/<product>.yml from data_contracts/products/*.odcs.yaml.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any generated file is stale")
    parser.add_argument("--contracts-dir", type=Path, default=PRODUCT_CONTRACTS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--models-dir", type=Path, default=MARTS_MODELS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        names = sync_dbt_models(check=args.check, contracts_dir=args.contracts_dir, models_dir=args.models_dir)
    except ContractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if names:
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
        print("dbt mart properties are in sync with the product contracts.")
        return 0
    for name in names:
        print(f"updated {_display(model_yaml_path(name, args.models_dir))}")
    if not names:
        print("dbt mart properties already up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
