"""factory_assets/compat.py is the one home of private framework APIs, pinned to requirements.lock."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPAT = ROOT / "factory_assets" / "compat.py"
# The distributions whose private APIs compat.py uses (or whose behaviour its fixes depend on).
PINNED = ("dagster", "dagster-dask", "dagster-dbt", "dbt-core", "dbt-adapters", "dbt-duckdb")
# Top-level packages whose underscore names count as private framework API.
FRAMEWORKS = ("dagster", "dagster_dask", "dagster_dbt", "dagster_postgres", "dbt")


def _locked(name: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.split("==", 1)[1].split(";")[0].strip()
    raise AssertionError(f"requirements.lock pins no {name}")


@pytest.mark.parametrize("name", PINNED)
def test_the_installed_framework_is_the_version_compat_was_checked_against(name):
    installed, locked = importlib.metadata.version(name), _locked(name)
    assert installed == locked, (
        f"{name} {installed} is installed but requirements.lock pins {locked}. factory_assets/compat.py "
        f"uses private APIs of this release: re-check each of its sections against {name} {installed} "
        f"(and run tests/test_instance_storage.py, test_execution.py, test_dbt_cli.py, "
        f"test_production_profile.py), then update requirements.lock.")


def _private_imports(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in FRAMEWORKS and any(p.startswith("_") for p in parts):
                    found.append(f"{path.relative_to(root)}:{node.lineno} import {alias.name}")
            continue
        else:
            continue
        if parts[0] in FRAMEWORKS and (any(p.startswith("_") for p in parts)
                                       or any(n.startswith("_") for n in names)):
            found.append(f"{path.relative_to(root)}:{node.lineno} from {node.module} import {', '.join(names)}")
    return found


def test_no_module_outside_compat_imports_a_private_name_from_dagster_or_dbt():
    sources = [p for folder in ("factory_assets", "tests", "bench", "business_units")
               for p in (ROOT / folder).rglob("*.py") if p != COMPAT]
    sources.append(ROOT / "tasks.py")
    found = [hit for path in sources for hit in _private_imports(path)]
    assert not found, ("private Dagster/dbt names imported outside factory_assets/compat.py; move each use "
                       "there, behind a named function, with a comment saying why:\n" + "\n".join(found))


def test_the_scan_sees_a_private_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from dagster._core.launcher import WorkerStatus\nimport dbt.adapters._x\n"
                      "from dbt.adapters.duckdb.connections import _private\nfrom dagster import asset\n"
                      "from ._local import thing\n")
    assert [h.split(" ", 1)[1] for h in _private_imports(sample, root=tmp_path)] == [
        "from dagster._core.launcher import WorkerStatus", "import dbt.adapters._x",
        "from dbt.adapters.duckdb.connections import _private"]


#: Private attributes of framework objects this project has needed: RunLauncher's ``_instance``,
#: ConfigurableClass's ``_inst_data``, dbt-duckdb's module-level ``_LOCK`` and ``_ENV``.
FRAMEWORK_PRIVATE_ATTRIBUTES = {"_instance", "_inst_data", "_LOCK", "_ENV"}


def _private_attribute_reads(path: Path) -> list[str]:
    return [f"{path.name}:{node.lineno} .{node.attr}" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr in FRAMEWORK_PRIVATE_ATTRIBUTES]


def test_no_module_outside_compat_reads_a_frameworks_private_attribute():
    sources = [p for folder in ("factory_assets", "business_units") for p in (ROOT / folder).rglob("*.py") if p != COMPAT]
    found = [hit for path in sources for hit in _private_attribute_reads(path)]
    assert not found, "read these through a named function of factory_assets/compat.py:\n" + "\n".join(found)
    assert _private_attribute_reads(COMPAT)  # the scan sees them where they are allowed
