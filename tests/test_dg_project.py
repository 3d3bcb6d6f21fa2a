"""The factory is a dg project: `dg list components` shows its component types, `dg scaffold defs`
writes a commented use-case declaration, and `dg check defs` reports a bad declaration with its file,
field and fix (run on a copy of the project, so the real defs folder is never touched)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from factory_assets.settings import PROJECT_ROOT

DG = Path(sys.executable).parent / "dg"


def _copy_project(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=PROJECT_ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        source = PROJECT_ROOT / name
        if source.is_file() and not name.startswith("docs/"):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    manifest = PROJECT_ROOT / "dbt_project" / "target" / "manifest.json"
    (target / "dbt_project" / "target").mkdir(parents=True, exist_ok=True)
    shutil.copy2(manifest, target / "dbt_project" / "target" / "manifest.json")
    return target


def _dg(project: Path, *args: str) -> subprocess.CompletedProcess:
    # the copy's package shadows the installed (editable) one
    env = {**os.environ, "PYTHONPATH": str(project), "FACTORY_HOME": str(project / ".factory")}
    return subprocess.run([str(DG), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_scaffold_list_and_check_a_use_case_declaration(tmp_path):
    project = _copy_project(tmp_path / "project")
    listed = _dg(project, "list", "components")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "factory_assets.components.UseCase" in listed.stdout and "factory_assets.components.FeatureSet" in listed.stdout

    scaffolded = _dg(project, "scaffold", "defs", "factory_assets.components.UseCase", "use_cases/my_case")
    assert scaffolded.returncode == 0, scaffolded.stderr[-2000:]
    declaration = project / "factory_assets" / "defs" / "use_cases" / "my_case" / "defs.yaml"
    text = declaration.read_text()
    assert text.startswith("#") and "name: my_case" in text and "label_delay_days" in text

    # the scaffold names a product nobody has: the check fails naming file, field and the known products
    checked = _dg(project, "check", "defs")
    output = checked.stdout + checked.stderr
    assert checked.returncode != 0
    assert str(declaration) in output and "field 'training_set.products'" in output and "fct_order_lines" in output

    shutil.rmtree(declaration.parent)
    checked = _dg(project, "check", "defs")
    assert checked.returncode == 0, (checked.stdout + checked.stderr)[-3000:]
