"""Every asset key of the factory, built in one place.

A layer's assets, a job's selection, a sensor's run request and a test all name an asset through
these functions, so a key's shape changes here and nowhere else.
"""

import dagster as dg

__all__ = [
    "BREACHES",
    "USAGE_KEY",
    "COMPLIANCE_KEY",
    "PORTFOLIO_KEY",
    "champion_key",
    "feature_set_key",
    "model_key",
    "monitoring_key",
    "predictions_key",
    "product_key",
    "raw_key",
    "training_keys",
    "training_set_key",
    "use_case_keys",
]

COMPLIANCE_KEY = dg.AssetKey(["feedback", "model_compliance"])
PORTFOLIO_KEY = dg.AssetKey(["feedback", "use_case_portfolio"])
USAGE_KEY = dg.AssetKey(["feedback", "service_usage"])
#: The monitoring asset's metadata entry listing the limits a day breached (the retraining sensor reads it).
BREACHES = "breaches"


def raw_key(source: str) -> dg.AssetKey:
    """A raw source's ingestion asset, e.g. ``raw_material/transactions``."""
    return dg.AssetKey(["raw_material", source])


def product_key(name: str) -> dg.AssetKey:
    """A dbt model (data product or intermediate), e.g. ``processing/fct_order_lines``."""
    return dg.AssetKey(["processing", name])


def feature_set_key(name: str) -> dg.AssetKey:
    """A feature set's latest snapshot, e.g. ``assembly/customer_activity``."""
    return dg.AssetKey(["assembly", name])


def training_set_key(use_case: str) -> dg.AssetKey:
    return dg.AssetKey(["assembly", f"{use_case}_training_set"])


def model_key(use_case: str) -> dg.AssetKey:
    return dg.AssetKey(["assembly", f"{use_case}_model"])


def champion_key(use_case: str) -> dg.AssetKey:
    return dg.AssetKey(["assembly", f"{use_case}_champion"])


def predictions_key(use_case: str) -> dg.AssetKey:
    return dg.AssetKey(["distribution", f"{use_case}_predictions"])


def monitoring_key(use_case: str) -> dg.AssetKey:
    return dg.AssetKey(["feedback", f"{use_case}_monitoring"])


def training_keys(use_case: str) -> list[dg.AssetKey]:
    """What retraining one use case materialises: training set, model, promotion gate."""
    return [training_set_key(use_case), model_key(use_case), champion_key(use_case)]


def use_case_keys(use_case: str) -> list[dg.AssetKey]:
    """The whole vertical slice of one use case, training to monitoring."""
    return [*training_keys(use_case), predictions_key(use_case), monitoring_key(use_case)]
