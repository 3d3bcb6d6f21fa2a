"""Customer care's code location (``workspace.yaml``: location ``customer_care``).

Built only on ``factory_assets.public``: its use cases are YAML files in ``use_cases/`` whose
assets (training set, model, champion gate, with the core's checks and governance) come from the
factory's ``use_case_assets``, fed by this unit's own training-set builders. They depend on the
core's feature-set snapshots (``assembly/customer_activity``), which this location does not
define: that dependency is the lineage edge between the two code locations.
"""

from pathlib import Path

import dagster as dg

from customer_care.training_sets import TRAINING_SETS
from factory_assets.public import WAREHOUSE_WRITER_TAG, default_store, load_use_case, use_case_assets

USE_CASES_DIR = Path(__file__).parent / "use_cases"


def build_definitions(store=None) -> dg.Definitions:
    """This location's definitions, on ``store`` (default: the factory's FACTORY_HOME)."""
    specs = [load_use_case(path) for path in sorted(USE_CASES_DIR.glob("*.yaml"))]
    assets = [a for spec in specs for a in use_case_assets(spec, training_sets=TRAINING_SETS)]
    training = dg.define_asset_job(
        name="customer_care_training",
        owners=["team:customer-care"],
        description="Builds customer care's training sets, trains its models and runs their promotion gates "
        "(after the core's nightly run has refreshed the data products and feature sets).",
        selection=dg.AssetSelection.assets(*assets),
        tags={WAREHOUSE_WRITER_TAG: "true"},
    )
    return dg.Definitions(
        assets=assets,
        jobs=[training],
        resources={"store": store or default_store()},
        executor=dg.in_process_executor,
    )


defs = build_definitions()
