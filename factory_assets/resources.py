"""Dagster resources: the factory's storage and the dbt CLI, configured from settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from factory_assets.settings import DBT_PROJECT_DIR, FactoryPaths, factory_home


class FactoryStore(dg.ConfigurableResource):
    """The factory's state folder: landing zone, raw store, quarantine, and its warehouse (the lake)."""

    home: str

    @property
    def paths(self) -> FactoryPaths:
        return FactoryPaths(Path(self.home)).create()

    @contextmanager
    def warehouse(self, read_only: bool = False) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
        """A connection to the warehouse: the lake, or the DuckDB file (``lib/warehouse.py``)."""
        from factory_assets.lib.warehouse import open_warehouse

        with open_warehouse(self.paths, read_only) as conn:
            yield conn

    def registry(self):
        """The model registry under this home (the one place it is built)."""
        from factory_assets.assembly.registry import ModelRegistry

        return ModelRegistry(self.paths.artifacts / "models")


class GovernancePolicy(dg.ConfigurableResource):
    """The policy in force (policy as code): ``file`` (default: FACTORY_POLICY_FILE, else
    governance/policy.yaml), re-read at each use so a changed file takes effect on the next step."""

    file: str | None = None

    def path(self) -> Path:
        from factory_assets.governance.facts import policy_path

        return Path(self.file) if self.file else policy_path()

    def current(self):
        from factory_assets.governance.policy import load_policy

        return load_policy(self.path())


def default_store() -> FactoryStore:
    return FactoryStore(home=str(factory_home()))


class DbtRunner(dg.ConfigurableResource):
    """Where and how dbt runs: project, profiles, executable and profile target.

    A thin configuration holder: dagster-dbt (and the dbt-core it imports, slow) is imported only
    when a step runs dbt, not when the code location loads. ``target`` picks a profiles.yml output
    (e.g. a production warehouse) with no code change. The nightly path on the embedded warehouse
    runs the dbt installed with this project, in the step's process (``processing/dbt_cli.py``);
    ``dbt_executable`` is what dagster-dbt's path runs (column lineage, another ``target``)."""

    project_dir: str
    profiles_dir: str
    dbt_executable: str = "dbt"
    target: str | None = None

    def cli_resource(self):
        from dagster_dbt import DbtCliResource

        return DbtCliResource(project_dir=self.project_dir, profiles_dir=self.profiles_dir,
                              dbt_executable=self.dbt_executable, target=self.target)

    def target_path(self, prefix: str, keep: int = 50) -> Path:
        """A fresh dbt target folder per invocation (``target/<step>-<run>-<uuid>``), so runs never
        overwrite each other's artifacts and logs. Only the newest ``keep`` such folders stay: one
        is added per dbt step of every run, and nothing else would ever remove them."""
        import shutil
        import uuid

        target = Path(self.project_dir) / "target"
        runs = sorted((p for p in target.glob("*-*-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in runs[: max(0, len(runs) - keep + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return Path("target") / f"{prefix}-{uuid.uuid4().hex[:7]}"


def dbt_resource() -> DbtRunner:
    """dbt from this environment (the venv's bin), so the code location works without PATH set-up;
    FACTORY_DBT_TARGET selects the profiles.yml target."""
    import os
    import sys

    beside_python = Path(sys.executable).parent / "dbt"
    return DbtRunner(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        dbt_executable=str(beside_python) if beside_python.exists() else "dbt",
        target=os.environ.get("FACTORY_DBT_TARGET") or None,
    )
