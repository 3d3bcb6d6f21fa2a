"""Small DuckDB / polars helpers shared by the layers (framework-free)."""

from __future__ import annotations

import polars as pl


def quoted_identifier(name: str) -> str:
    """A column, table or schema name as a DuckDB identifier (double quotes, inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quoted_relation(relation: str) -> str:
    """``schema.table`` with each part quoted (``"schema"."table"``)."""
    return ".".join(quoted_identifier(part) for part in relation.split("."))


def relation_columns(conn, relation: str) -> dict[str, str] | None:
    """The columns of ``schema.table`` (a table or a view) and their types, or None where it does not
    exist. DuckDB binds the name (DESCRIBE), and a name that does not bind leaves an open transaction
    usable; information_schema would list every column of every attached catalog, which on the lake
    is a catalog read per call (BENCHMARKS.md, the lake's night)."""
    import duckdb

    try:
        return {row[0]: row[1] for row in conn.execute(f"DESCRIBE {quoted_relation(relation)}").fetchall()}
    except duckdb.CatalogException:
        return None


def table_exists(conn, relation: str) -> bool:
    """Whether ``schema.table`` (a table or a view) exists in the connected warehouse."""
    return relation_columns(conn, relation) is not None


def sample_rows(frame: pl.DataFrame, max_rows: int, seed: int = 0) -> pl.DataFrame:
    """Uniform sample without replacement (fixed seed) of at most ``max_rows`` rows."""
    return frame if frame.height <= max_rows else frame.sample(n=max_rows, with_replacement=False, seed=seed)
