"""Shared fixtures: every test gets its own FACTORY_HOME under tmp_path; nothing touches ./.factory."""

from __future__ import annotations

import os

import pytest

# dbt steps that fail to start retry after FACTORY_DBT_RETRY_DELAY_S (10 s in production); read when
# factory_assets.processing.dbt_assets is imported, so set before any test imports it.
os.environ.setdefault("FACTORY_DBT_RETRY_DELAY_S", "0.5")

from factory_assets.settings import FactoryPaths


@pytest.fixture(scope="session", autouse=True)
def _no_dbt_column_metadata():
    """dbt column schema and lineage cost about 1 s per model per run; only the module that tests
    them (test_foundation_e2e) turns them back on. Subprocesses (CLI, UI) inherit the setting."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_DBT_COLUMN_METADATA", "0")
    yield
    patch.undo()


@pytest.fixture
def paths(tmp_path, monkeypatch) -> FactoryPaths:
    home = tmp_path / "factory"
    monkeypatch.setenv("FACTORY_HOME", str(home))
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    return FactoryPaths(home).create()


@pytest.fixture
def warehouse(paths):
    """A connection to the test's warehouse (the lake under its FACTORY_HOME by default)."""
    from factory_assets.lib.warehouse import open_warehouse

    with open_warehouse(paths) as conn:
        yield conn
