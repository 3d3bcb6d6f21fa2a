"""Pandera (polars) schemas generated from data contracts.

Landing files are validated with these before anything is written to the raw store, so the
contract YAML stays the only place where a column's type, nullability, range, pattern or allowed
values are stated.
"""

from __future__ import annotations

import polars as pl

from factory_assets.lib.contracts import DataContract

POLARS_TYPES: dict[str, pl.DataType] = {
    "VARCHAR": pl.String(),
    "INTEGER": pl.Int32(),
    "BIGINT": pl.Int64(),
    "DOUBLE": pl.Float64(),
    "DATE": pl.Date(),
    "TIMESTAMP": pl.Datetime("us"),
    "BOOLEAN": pl.Boolean(),
}


def polars_schema(contract: DataContract) -> dict[str, pl.DataType]:
    return {c.name: POLARS_TYPES[c.physical_type] for c in contract.columns}


def pandera_schema(contract: DataContract):
    """A strict pandera DataFrameSchema equivalent to the contract's schema and column rules."""
    import pandera.polars as pa

    columns = {}
    for col in contract.columns:
        checks = []
        if col.minimum is not None and col.maximum is not None:
            checks.append(pa.Check.in_range(col.minimum, col.maximum))
        elif col.minimum is not None:
            checks.append(pa.Check.ge(col.minimum))
        elif col.maximum is not None:
            checks.append(pa.Check.le(col.maximum))
        if col.pattern:
            checks.append(pa.Check.str_matches(col.pattern))
        if col.valid_values:
            checks.append(pa.Check.isin(list(col.valid_values)))
        columns[col.name] = pa.Column(
            POLARS_TYPES[col.physical_type],
            checks=checks,
            nullable=not col.required,
            unique=col.unique,
        )
    unique = list(contract.unique_together[0]) if contract.unique_together else None
    return pa.DataFrameSchema(
        columns,
        unique=unique,
        strict=True,
        ordered=False,
        name=contract.name,
        description=contract.description,
    )
