"""The code locations of the workspace (``workspace.yaml``) and where each keeps its declarations.

Pure (no Dagster). The core and every business unit follow one layout under their folder
(``working_directory``): ``<package>/defs/`` holds component declarations (use cases, feature
sets) and ``data_contracts/`` holds contracts. Governance, the CLI and validation read every
location's declarations from here, without importing a business unit's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory_assets.lib.yaml_files import load_yaml
from factory_assets.settings import PROJECT_ROOT

__all__ = ["Location", "contract_files", "workspace_locations"]


@dataclass(frozen=True)
class Location:
    name: str
    root: Path
    package: str

    @property
    def defs_folder(self) -> Path:
        return self.root / self.package / "defs"

    @property
    def contracts_folder(self) -> Path:
        return self.root / "data_contracts"


def workspace_path() -> Path:
    import os

    return Path(os.environ.get("FACTORY_WORKSPACE", PROJECT_ROOT / "workspace.yaml"))


def workspace_locations(workspace: Path | None = None) -> list[Location]:
    """Every Python location of ``workspace.yaml`` (``FACTORY_WORKSPACE`` overrides the file), core first."""
    workspace = Path(workspace or workspace_path())
    doc = load_yaml(workspace.read_text()) or {}
    out = []
    for entry in doc.get("load_from", []):
        target = entry.get("python_module") or entry.get("python_package") or {}
        if isinstance(target, str):
            target = {"module_name": target}
        module = target.get("module_name") or target.get("package_name")
        if not module:
            continue
        root = (workspace.parent / target.get("working_directory", ".")).resolve()
        out.append(Location(name=target.get("location_name", module), root=root, package=module.split(".")[0]))
    return out


def contract_files(kind: str, workspace: Path | None = None) -> list[Path]:
    """``data_contracts/<kind>/*.odcs.yaml`` of every location (kind: raw, products, features, predictions)."""
    files = []
    for location in workspace_locations(workspace):
        folder = location.contracts_folder / kind
        if folder.is_dir():
            files += sorted(folder.glob("*.odcs.yaml"))
    return files
