"""Dagster resources: the factory's storage and the dbt CLI, configured from settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from factory_assets.lib.warehouse_lock import warehouse_lock
from factory_assets.settings import DBT_PROJECT_DIR, FactoryPaths, duckdb_memory_limit, factory_home


class FactoryStore(dg.ConfigurableResource):
    """The factory's state folder: landing zone, raw store, quarantine and DuckDB warehouse."""

    home: str

    @property
    def paths(self) -> FactoryPaths:
        return FactoryPaths(Path(self.home)).create()

    @contextmanager
    def warehouse(self, read_only: bool = False) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
        """A DuckDB connection, once the warehouse lock is held (shared to read, exclusive to write),
        so steps on separate workers wait for each other instead of failing on DuckDB's file lock.

        A process outside the factory holding the file (DuckDB's own lock) is waited for too, with
        back-off; both waits together last at most FACTORY_WAREHOUSE_LOCK_TIMEOUT, then the error
        names the file and its holder. A damaged file, or a missing one while the raw store holds
        ingested data, is an error that points at `factory recover`."""
        import time

        import duckdb

        from factory_assets.lib import warehouse_lock as wl

        paths = self.paths
        path = paths.warehouse
        deadline = time.monotonic() + wl.lock_timeout()
        with warehouse_lock(path, exclusive=not read_only):
            if not path.exists() and wl.raw_store_holds_data(paths.raw):
                raise wl.lost(path, paths.raw)
            try:
                conn = wl.connect_duckdb(path, read_only=read_only, timeout_s=max(0.0, deadline - time.monotonic()))
            except duckdb.Error as exc:
                if wl.is_damage(exc):
                    raise wl.damaged(path, exc) from exc
                raise
            try:
                # DuckDB's default is 80% of the machine's memory, and its buffer pool grows with the
                # history it scans; a bounded pool spills to disk instead (BENCHMARKS.md, peak memory).
                conn.execute(f"SET memory_limit = '{duckdb_memory_limit()}'")
                yield conn
            except duckdb.Error as exc:
                if wl.is_damage(exc):
                    raise wl.damaged(path, exc) from exc
                raise
            finally:
                conn.close()

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

    A thin configuration holder: dagster-dbt (and the dbt-core it imports, ~2 s) is imported only
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
