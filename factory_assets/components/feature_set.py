"""The ``FeatureSet`` component: one ``defs.yaml`` gives a feature set and its contracted snapshot."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from factory_assets.assembly.catalogue import FeatureSetDecl


class FeatureSet(dg.Component, dg.Resolvable, FeatureSetDecl):
    """A versioned, point-in-time feature set over declared data products. Its contract is
    ``data_contracts/features/<name>.odcs.yaml`` of the same location."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from factory_assets.assembly.assets import feature_set_asset
        from factory_assets.assembly.catalogue import feature_set_from_declaration
        from factory_assets.lib.contracts import load_contract

        path = Path(context.path) / "defs.yaml"
        contracts = _location_root(Path(context.path)) / "data_contracts"
        feature_set = feature_set_from_declaration(FeatureSetDecl.model_validate(self.model_dump()), path, contracts)
        contract = load_contract(contracts / "features" / f"{feature_set.name}.odcs.yaml")
        return dg.Definitions(assets=[feature_set_asset(feature_set, contract)])


def _location_root(path: Path) -> Path:
    """The location's folder: the nearest parent with a pyproject.toml."""
    for parent in [path, *path.parents]:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise FileNotFoundError(f"{path}: no pyproject.toml above it; a location's folder holds one")
