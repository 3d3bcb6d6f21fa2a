"""The factory's public API: what a business-unit code location may import and rely on.

A business unit (``business_units/<unit>/``) is a dg project of its own: ``pyproject.toml`` with
``[tool.dg]``, a package whose ``defs/`` folder holds its declarations (``UseCase`` and
``FeatureSet`` components, ``defs.yaml`` each), ``data_contracts/`` for its raw sources, products
and feature sets, and optionally a dbt project. Its ``definitions.py`` is one call:
``defs = business_unit_definitions(__file__)``. Everything here keeps its name and meaning across
factory releases; anything else in ``factory_assets`` is internal and may change without notice.

* ``business_unit_definitions``: the unit's location (its components, raw sources, dbt models, a
  nightly scoring-and-monitoring job and schedule, a training job and the retraining sensor), on the
  same store, registry and policy as the core;
* ``UseCaseSpec`` / ``load_use_case`` / ``UseCaseSpecError``: a declaration, validated;
* ``TrainingSetBuilder`` and the point-in-time helpers (``weekly_cutoffs``, ``data_window``,
  ``data_end_date``, ``sql_date``) for rows that SQL cannot declare;
* ``FEATURE_SETS`` (the core's), ``FeatureSet`` and ``feature_set_key``;
* the core's product relations below, read-only, and their contracts;
* ``FactoryStore`` / ``default_store()``, ``WAREHOUSE_WRITER_TAG``.

A business unit must not define asset keys another location defines: it depends on them.
"""

from pathlib import Path

import dagster as dg

from factory_assets.assembly.features import (
    CALENDAR,
    DAILY_DEMAND,
    FEATURE_SETS,
    ORDER_LINES,
    SUPPLIER_RELIABILITY,
    TICKETS,
    FeatureSet,
    data_end_date,
    weekly_cutoffs,
)
from factory_assets.assembly.specs import UseCaseSpec, UseCaseSpecError, load_use_case
from factory_assets.assembly.templates import TEMPLATE_TASK, fit_template
from factory_assets.assembly.training_sets import TrainingSetBuilder, data_window
from factory_assets.keys import feature_set_key
from factory_assets.lib.contracts import ContractError, DataContract, load_contract, product_contract
from factory_assets.resources import FactoryStore, default_store
from factory_assets.settings import WAREHOUSE_WRITER_TAG

__all__ = [
    "CALENDAR",
    "DAILY_DEMAND",
    "FEATURE_SETS",
    "ORDER_LINES",
    "SUPPLIER_RELIABILITY",
    "TEMPLATES",
    "TICKETS",
    "WAREHOUSE_WRITER_TAG",
    "ContractError",
    "DataContract",
    "FactoryStore",
    "FeatureSet",
    "TrainingSetBuilder",
    "UseCaseSpec",
    "UseCaseSpecError",
    "business_unit_definitions",
    "data_end_date",
    "data_window",
    "default_store",
    "feature_set_key",
    "fit_template",
    "load_contract",
    "load_use_case",
    "product_contract",
    "sql_date",
    "weekly_cutoffs",
]

#: Model templates a use case's ``template`` field may name.
TEMPLATES: tuple[str, ...] = tuple(TEMPLATE_TASK)


def sql_date(day) -> str:
    """A DuckDB date literal, ``DATE 'YYYY-MM-DD'``, for point-in-time SQL."""
    return f"DATE '{day.isoformat()}'"


def business_unit_definitions(anchor: str | Path, store: FactoryStore | None = None) -> dg.Definitions:
    """A business unit's whole location, from its folder (``anchor``: any path inside it, e.g.
    ``__file__``). Built like the core's: see ``factory_assets.location``."""
    from factory_assets.location import unit_definitions

    return unit_definitions(Path(anchor), store)
