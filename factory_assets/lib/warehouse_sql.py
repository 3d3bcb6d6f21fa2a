"""Small DuckDB / polars helpers shared by the layers (framework-free)."""

from __future__ import annotations

import polars as pl


def table_exists(conn, relation: str) -> bool:
    """Whether ``schema.table`` exists in the connected warehouse."""
    schema, _, table = relation.rpartition(".")
    return bool(conn.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                             [schema or "main", table]).fetchone()[0])


def sample_rows(frame: pl.DataFrame, max_rows: int, seed: int = 0) -> pl.DataFrame:
    """Uniform sample without replacement (fixed seed) of at most ``max_rows`` rows."""
    return frame if frame.height <= max_rows else frame.sample(n=max_rows, with_replacement=False, seed=seed)
