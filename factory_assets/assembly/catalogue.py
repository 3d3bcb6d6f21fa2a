"""What every location declares: data products, feature sets and use cases, read without importing
a business unit's code.

Pure (no Dagster). Feature sets are the core's ``features.FEATURE_SETS`` plus each
``factory_assets.components.FeatureSet`` declaration in a location's defs folder: name, version,
entity, the products its SQL reads (as ``{{ name }}``), the SQL over ``{{ spine }}`` and the SQL
of its entities. Its columns and their meaning come from its contract,
``data_contracts/features/<name>.odcs.yaml`` in the same location.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from factory_assets.assembly import features as fs
from factory_assets.assembly.specs import UseCaseSpecError, declaration_files, validation_problems
from factory_assets.lib.contracts import ContractError, load_contract
from factory_assets.lib.locations import contract_files, workspace_locations, workspace_path
from factory_assets.lib.yaml_files import read_yaml_file

__all__ = ["FEATURE_SET_COMPONENT", "FeatureSetDecl", "feature_set_from_declaration", "feature_sets",
           "product_relations"]

FEATURE_SET_COMPONENT = "factory_assets.components.FeatureSet"


class FeatureSetDecl(BaseModel):
    """A feature set: versioned point-in-time SQL over declared data products."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    description: str = Field(min_length=1)
    entity: tuple[str, ...] = Field(min_length=1)
    #: The data products the SQL reads, each written ``{{ name }}`` in ``sql`` and ``entities``.
    products: tuple[str, ...] = Field(min_length=1)
    #: One row per (entity, feature_date) of ``{{ spine }}``; only what is known at the end of feature_date.
    sql: str = Field(min_length=1)
    #: Every known entity (the latest snapshot's rows).
    entities: str = Field(min_length=1)
    #: The column of the first product whose maximum is the set's last complete day (its "today").
    clock: str | None = None

    @field_validator("entity", "products", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return (v,) if isinstance(v, str) else v


@functools.cache
def _product_contracts(workspace: Path) -> dict:
    out = {}
    for path in contract_files("products", workspace):
        contract = load_contract(path)
        out[contract.name] = contract
    return out


def product_contracts() -> dict:
    """Every contracted data product of every location: name -> contract."""
    return dict(_product_contracts(workspace_path()))


def product_relations() -> dict[str, str]:
    """Every contracted data product of every location: name -> warehouse relation."""
    return {name: contract.physical_name for name, contract in _product_contracts(workspace_path()).items()}


def feature_set_from_declaration(decl: FeatureSetDecl, path: Path, contracts_folder: Path,
                                 relations: dict[str, str] | None = None) -> fs.FeatureSet:
    """The ``FeatureSet`` of one declaration; its columns from its contract. Errors name ``path``."""
    from factory_assets.assembly.training_sets import render_product_sql

    relations = product_relations() if relations is None else relations
    unknown = [p for p in decl.products if p not in relations]
    if unknown:
        raise UseCaseSpecError(f"{path}: field 'products': unknown data product(s) {unknown}; known: {sorted(relations)}")
    own = {p: relations[p] for p in decl.products}
    contract_path = contracts_folder / "features" / f"{decl.name}.odcs.yaml"
    try:
        contract = load_contract(contract_path)
    except (OSError, ContractError) as exc:
        raise UseCaseSpecError(f"{path}: feature set {decl.name!r} needs its contract {contract_path} ({exc})") from exc
    columns = {c.name: c.description for c in contract.columns if c.name not in (*decl.entity, "feature_date")}
    clock_sql = None
    if decl.clock:
        clock_sql = f"select max(cast({decl.clock} as date)) from {own[decl.products[0]]}"
    return fs.FeatureSet(
        name=decl.name, version=decl.version, entity=decl.entity, timestamp_column="feature_date",
        description=decl.description.strip(), columns=columns,
        sql=render_product_sql(decl.sql, {**own, "spine": "{spine}"}, f"{path}: field 'sql'"),
        products=decl.products,
        entities_sql=render_product_sql(decl.entities, own, f"{path}: field 'entities'"),
        clock_sql=clock_sql,
    )


def load_feature_set_file(path: Path, contracts_folder: Path) -> fs.FeatureSet:
    raw = read_yaml_file(path, UseCaseSpecError) or {}
    if not isinstance(raw, dict):
        raise UseCaseSpecError(f"{path}: expected a mapping with 'type' and 'attributes', got {type(raw).__name__}")
    try:
        decl = FeatureSetDecl.model_validate(raw.get("attributes"))
    except ValidationError as exc:
        raise UseCaseSpecError(f"{path}: invalid feature set: {validation_problems(exc)}") from exc
    return feature_set_from_declaration(decl, path, contracts_folder)


@functools.cache
def _declared_feature_sets(workspace: Path) -> tuple[tuple[str, fs.FeatureSet, Path], ...]:
    found = []
    for location in workspace_locations(workspace):
        if location.defs_folder.is_dir():
            for path in declaration_files(location.defs_folder, FEATURE_SET_COMPONENT):
                found.append((load_feature_set_file(path, location.contracts_folder), path))
    return tuple((f.name, f, p) for f, p in found)


def feature_sets() -> dict[str, fs.FeatureSet]:
    """The core's feature sets and every location's declared ones, by name (a name is declared once)."""
    out = dict(fs.FEATURE_SETS)
    where: dict[str, Path] = {}
    for name, feature_set, path in _declared_feature_sets(workspace_path()):
        if name in out:
            other = where.get(name, "factory_assets/assembly/features.py")
            raise UseCaseSpecError(f"{path}: field 'name': feature set {name!r} is already declared in {other}")
        out[name], where[name] = feature_set, path
    return out


def feature_set_products() -> dict[str, list[str]]:
    """Which data products each feature set reads (lineage and the audit bundle)."""
    return {name: sorted(f.products) for name, f in feature_sets().items()}
