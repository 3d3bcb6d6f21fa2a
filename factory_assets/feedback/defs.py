"""Layer 5, feedback: monitoring assets and the retraining sensor as Dagster definitions."""

from pathlib import Path

import dagster as dg

from factory_assets.feedback.assets import all_monitoring_assets
from factory_assets.feedback.sensors import retraining_sensor


def build_feedback_defs(use_cases_folder: Path | None = None) -> dg.Definitions:
    return dg.Definitions(assets=all_monitoring_assets(use_cases_folder), sensors=[retraining_sensor(use_cases_folder)])


defs = build_feedback_defs()
