"""Layer 3, assembly: the core's feature-set snapshots as Dagster definitions (use cases are
components: ``factory_assets/defs/use_cases``)."""

import dagster as dg

from factory_assets.assembly.assets import feature_set_asset
from factory_assets.assembly.features import FEATURE_SETS
from factory_assets.lib.contracts import feature_contract


def build_assembly_defs() -> dg.Definitions:
    return dg.Definitions(assets=[feature_set_asset(f, feature_contract(name)) for name, f in FEATURE_SETS.items()])


defs = build_assembly_defs()
