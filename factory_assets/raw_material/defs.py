"""Layer 1, raw material: landing files become immutable, contract-checked raw data."""

import dagster as dg

from factory_assets.raw_material.assets import daily_partitions, raw_assets
from factory_assets.raw_material.sensors import landing_zone_sensor

defs = dg.Definitions(assets=raw_assets, sensors=[landing_zone_sensor])

__all__ = ["daily_partitions", "defs", "raw_assets"]
