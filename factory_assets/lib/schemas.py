"""Pandera (polars) schemas generated from data contracts.

Landing files are validated with these before anything is written to the raw store, so the
contract YAML stays the only place where a column's type, nullability, range, pattern or allowed
values are stated. ``rule_failures`` evaluates the same rules with polars and names each broken
rule in the contract's words (``order_id must match ^O[0-9]+$``) with its row numbers, so messages
never need to quote a value.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class RuleFailure:
    """One contract rule broken by some rows of a frame (0-based row indices)."""

    rule: str
    column: str | None
    rows: list[int]
    count: int


def _join_values(values) -> str:
    text = ", ".join(str(v) for v in values)
    return text if len(text) <= 160 else text[:157] + "..."


def column_rules(contract: DataContract) -> list[tuple[str, str, pl.Expr]]:
    """(rule in the contract's words, column, expression TRUE on a violating row) per column rule."""
    rules = []
    for col in contract.columns:
        c = pl.col(col.name)
        if col.required:
            rules.append((f"{col.name} is required (no empty values)", col.name, c.is_null()))
        low, high = (col.minimum, col.maximum) if col.physical_type in ("INTEGER", "BIGINT", "DOUBLE") else (None, None)
        if low is not None and high is not None:
            rules.append((f"{col.name} must be between {low:g} and {high:g}", col.name, (c < low) | (c > high)))
        elif low is not None:
            rules.append((f"{col.name} must be >= {low:g}", col.name, c < low))
        elif high is not None:
            rules.append((f"{col.name} must be <= {high:g}", col.name, c > high))
        if col.pattern and col.physical_type == "VARCHAR":
            rules.append((f"{col.name} must match {col.pattern}", col.name,
                          ~c.str.contains(f"^(?:{col.pattern})$")))
        if col.valid_values:
            rules.append((f"{col.name} must be one of {_join_values(col.valid_values)}", col.name,
                          ~c.is_in(list(col.valid_values))))
        if col.unique:
            rules.append((f"{col.name} must be unique within the file", col.name, c.is_duplicated() & c.is_not_null()))
    for cols in contract.unique_together:
        rules.append((f"({', '.join(cols)}) must be unique within the file", None,
                      pl.struct(list(cols)).is_duplicated()))
    return rules


def rule_failures(frame: pl.DataFrame, contract: DataContract, max_rows: int = 5) -> list[RuleFailure]:
    """Every contract rule some row of ``frame`` (typed as the contract says) breaks, in one pass."""
    rules = column_rules(contract)
    if not rules or frame.height == 0:
        return []
    flags = frame.select(expr.fill_null(False).alias(f"r{i}") for i, (_, _, expr) in enumerate(rules))
    counts = flags.sum().row(0)
    failures = []
    for i, ((rule, column, _), count) in enumerate(zip(rules, counts)):
        if count:
            rows = flags.get_column(f"r{i}").arg_true().head(max_rows).to_list()
            failures.append(RuleFailure(rule, column, rows, int(count)))
    return failures
