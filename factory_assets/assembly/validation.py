"""Load-time checks of a use-case declaration against everything it names.

Pure (no Dagster). A declaration that names an unknown feature set or product, a column its SQL
does not give, a column of the wrong type, a label that is also a feature, or a tier or use the
policy does not know fails when the code location loads, with the file, the field and the fix.
Declared SQL is bound (not run) by DuckDB against empty tables shaped like the products' contracts,
so the check needs no warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from factory_assets.assembly import features as fs
from factory_assets.assembly.specs import UseCaseSpec, UseCaseSpecError
from factory_assets.assembly.templates import TEMPLATE_TASK

_TEMPORAL = ("DATE", "TIMESTAMP")
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "FLOAT", "DOUBLE", "DECIMAL")


def check_references(spec: UseCaseSpec, path: Path, feature_sets: Mapping[str, fs.FeatureSet], policy) -> None:
    """Feature sets exist; the label is not one of their columns; the policy knows tier and uses."""
    unknown = [n for n in spec.feature_sets if n not in feature_sets]
    if unknown:
        raise UseCaseSpecError(f"{path}: field 'feature_sets': unknown feature set(s) {unknown}; known: "
                               f"{sorted(feature_sets)} (declare one as a factory_assets.components.FeatureSet)")
    for name in spec.feature_sets:
        if spec.target in feature_sets[name].columns:
            raise UseCaseSpecError(f"{path}: field 'target': {spec.target!r} is also a feature of feature set {name!r}; "
                                   "a label must never be a feature (rename one, or drop the feature set)")
    if spec.risk_tier not in policy.tiers:
        raise UseCaseSpecError(f"{path}: field 'risk_tier': {spec.risk_tier!r} is not a tier of the policy "
                               f"{policy.version}; tiers: {sorted(policy.tiers)}")
    prohibited = [u for u in spec.uses if u in policy.uses.prohibited]
    if prohibited:
        raise UseCaseSpecError(f"{path}: field 'uses': {prohibited} are prohibited by the policy, whatever the tier")
    allowed = policy.uses.allowed_by_tier.get(spec.risk_tier, ())
    refused = [u for u in spec.uses if u not in allowed]
    if refused:
        raise UseCaseSpecError(f"{path}: field 'uses': {refused} not allowed for the {spec.risk_tier} tier by "
                               f"governance/policy.yaml (allowed: {list(allowed)}); pick another use or tier")


def _describe(conn, sql: str) -> dict[str, str]:
    return {name: str(dtype).upper() for name, dtype, *_ in conn.execute(f"describe select * from ({sql})").fetchall()}


def check_declared_sql(spec: UseCaseSpec, path: Path, spine_sql: str, outcome_sql: str | None,
                       contracts: Mapping[str, object], feature_sets: Mapping[str, fs.FeatureSet]) -> dict[str, str]:
    """Bind the declared spine (and outcome) against the products' contracts; returns the spine's
    columns and types. Missing entity, time or label columns and wrong types fail here."""
    import duckdb

    conn = duckdb.connect()
    try:
        for contract in contracts.values():
            schema = contract.physical_name.split(".")[0] if "." in contract.physical_name else "main"
            conn.execute(f'create schema if not exists "{schema}"')
            columns = ", ".join(f'"{c.name}" {c.physical_type}' for c in contract.columns)
            conn.execute(f"create table if not exists {contract.physical_name} ({columns})")
        try:
            spine = _describe(conn, spine_sql)
        except duckdb.Error as exc:
            raise UseCaseSpecError(f"{path}: field 'training_set.spine': the SQL does not bind against the "
                                   f"products' contracts: {str(exc).splitlines()[0]}") from exc
        label_source = spine
        if outcome_sql:
            try:
                label_source = _describe(conn, outcome_sql)
            except duckdb.Error as exc:
                raise UseCaseSpecError(f"{path}: field 'training_set.outcome': the SQL does not bind: "
                                       f"{str(exc).splitlines()[0]}") from exc
            missing = [c for c in spec.entity if c not in label_source]
            if missing:
                raise UseCaseSpecError(f"{path}: field 'training_set.outcome': gives no column {missing} of the "
                                       f"entity; it must give {list(spec.entity)} and {spec.target!r}")
    finally:
        conn.close()
    for field, columns in (("entity", spec.entity), ("time_column", (spec.time_column,))):
        missing = [c for c in columns if c not in spine]
        if missing:
            raise UseCaseSpecError(f"{path}: field '{field}': column(s) {missing} are not given by the spine "
                                   f"(its columns: {sorted(spine)})")
    if not spine[spec.time_column].startswith(_TEMPORAL):
        raise UseCaseSpecError(f"{path}: field 'time_column': {spec.time_column!r} is {spine[spec.time_column]}, "
                               "not a DATE or TIMESTAMP; cast it in the spine")
    if spec.target not in label_source:
        where = "training_set.outcome" if outcome_sql else "training_set.spine"
        raise UseCaseSpecError(f"{path}: field 'target': {spec.target!r} is not a column of {where} "
                               f"(its columns: {sorted(label_source)})")
    label_type = label_source[spec.target]
    binary = TEMPLATE_TASK[spec.template] == "binary"
    wanted = ("BOOLEAN", *_NUMERIC) if binary else _NUMERIC
    if not label_type.startswith(wanted):
        raise UseCaseSpecError(f"{path}: field 'target': {spec.target!r} is {label_type}, which template "
                               f"{spec.template!r} cannot learn; give a "
                               f"{'boolean or 0/1' if binary else 'numeric'} column")
    for column in spec.text_columns:
        if column not in spine:
            raise UseCaseSpecError(f"{path}: field 'text_columns': {column!r} is not a column of training_set.spine "
                                   f"(its columns: {sorted(spine)})")
        if not spine[column].startswith("VARCHAR"):
            raise UseCaseSpecError(f"{path}: field 'text_columns': {column!r} is {spine[column]}, not text (VARCHAR)")
    for name in spec.feature_sets:
        missing = [c for c in feature_sets[name].entity if c not in spine]
        if missing:
            raise UseCaseSpecError(f"{path}: field 'feature_sets': feature set {name!r} is keyed by "
                                   f"{list(feature_sets[name].entity)}, but the spine gives no {missing}")
    return spine
