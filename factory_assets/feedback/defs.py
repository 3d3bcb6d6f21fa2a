"""Layer 5, feedback: the retraining sensor over a location's use cases (each use case's monitoring
asset comes with its ``UseCase`` component), and the core's summary of service usage."""

import dagster as dg

from factory_assets.feedback.sensors import build_retraining_sensor


def build_feedback_defs(use_cases, core: bool = True) -> dg.Definitions:
    """``core``: the factory's own location, which also summarises the services' usage (one per workspace)."""
    from factory_assets.feedback.assets import service_usage

    return dg.Definitions(sensors=[build_retraining_sensor(sorted(use_cases))], assets=[service_usage] if core else [])
