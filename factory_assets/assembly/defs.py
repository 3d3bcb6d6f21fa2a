"""Layer 3, assembly: feature sets and use-case models as Dagster definitions."""

from pathlib import Path

import dagster as dg

from factory_assets.assembly.assets import all_use_case_assets, feature_set_assets


def build_assembly_defs(use_cases_folder: Path | None = None) -> dg.Definitions:
    return dg.Definitions(assets=[*feature_set_assets, *all_use_case_assets(use_cases_folder)])


defs = build_assembly_defs()
