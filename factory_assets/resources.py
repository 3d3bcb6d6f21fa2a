"""Dagster resources: the factory's storage and the dbt CLI, configured from settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from factory_assets.settings import DBT_PROJECT_DIR, FactoryPaths, factory_home


class FactoryStore(dg.ConfigurableResource):
    """The factory's state folder: landing zone, raw store, quarantine and DuckDB warehouse."""

    home: str

    @property
    def paths(self) -> FactoryPaths:
        return FactoryPaths(Path(self.home)).create()

    @contextmanager
    def warehouse(self, read_only: bool = False) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
        import duckdb

        conn = duckdb.connect(str(self.paths.warehouse), read_only=read_only)
        try:
            yield conn
        finally:
            conn.close()


def default_store() -> FactoryStore:
    return FactoryStore(home=str(factory_home()))


def dbt_resource():
    """dbt from this environment (the venv's bin), so the code location works without PATH set-up."""
    import sys

    from dagster_dbt import DbtCliResource

    beside_python = Path(sys.executable).parent / "dbt"
    return DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        dbt_executable=str(beside_python) if beside_python.exists() else "dbt",
    )
