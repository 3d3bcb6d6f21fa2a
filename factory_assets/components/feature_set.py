"""The ``FeatureSet`` component: one ``defs.yaml`` gives a feature set and its contracted snapshot."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from factory_assets.assembly.catalogue import FeatureSetDecl


class FeatureSet(dg.Component, dg.Resolvable, FeatureSetDecl):
    """A versioned, point-in-time feature set over declared data products. Its contract is
    ``data_contracts/features/<name>.odcs.yaml`` of the same location."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return feature_set_definitions(FeatureSetDecl.model_validate(self.model_dump()), Path(context.path) / "defs.yaml")


def feature_set_definitions(decl: FeatureSetDecl, path: Path) -> dg.Definitions:
    """The snapshot asset of one declared feature set, checked against its location's contract."""
    from factory_assets.assembly.assets import feature_set_asset
    from factory_assets.assembly.catalogue import feature_set_from_declaration
    from factory_assets.lib.contracts import load_contract
    from factory_assets.location import project_root

    contracts = project_root(path.parent) / "data_contracts"
    feature_set = feature_set_from_declaration(decl, path, contracts)
    contract = load_contract(contracts / "features" / f"{feature_set.name}.odcs.yaml")
    return dg.Definitions(assets=[feature_set_asset(feature_set, contract)])
