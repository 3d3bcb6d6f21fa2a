"""The contracted prediction tables, created empty before anything reads them.

Processing's operations models read the prediction products that distribution writes: the tables
exist from the first night, so a product never scored (no champion yet) reads as no rows, not as a
missing table. Here, below both layers, because both need it.
"""

from __future__ import annotations

import duckdb

from factory_assets.lib.contracts import CONTRACTS_DIR, load_contract
from factory_assets.lib.lake import ddl
from factory_assets.lib.warehouse_sql import table_exists


def ensure_prediction_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Create every contracted prediction table that does not exist yet, empty, with the contract's
    columns; returns the tables created. An existing table costs one read, no transaction."""
    created = []
    for path in sorted((CONTRACTS_DIR / "predictions").glob("*.odcs.yaml")):
        contract = load_contract(path)
        if table_exists(conn, contract.physical_name):
            continue
        columns = ", ".join(f'"{c.name}" {c.physical_type}' for c in contract.columns)
        ddl(conn, f"create schema if not exists {contract.physical_name.split('.')[0]}")
        ddl(conn, f"create table if not exists {contract.physical_name} ({columns})")
        created.append(contract.physical_name)
    return created
