"""Layer 5, feedback: the retraining sensor over a location's use cases (each use case's monitoring
asset comes with its ``UseCase`` component)."""

import dagster as dg

from factory_assets.feedback.sensors import build_retraining_sensor


def build_feedback_defs(use_cases) -> dg.Definitions:
    return dg.Definitions(sensors=[build_retraining_sensor(sorted(use_cases))])
