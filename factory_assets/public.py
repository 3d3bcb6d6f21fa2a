"""The factory's public API: what a business-unit code location may import and rely on.

A business unit (``business_units/<unit>/``) imports only from this module. Everything here keeps
its name and meaning across factory releases; anything else in ``factory_assets`` is internal and
may change without notice. The building blocks:

* use cases: ``UseCaseSpec`` / ``load_use_case`` (one YAML file, validated like the core's) and
  ``use_case_assets(spec, training_sets={...})``, which gives the training set, model and champion
  assets with the core's checks, registry and governance (policy.yaml, approvals, audit);
* training sets: ``TrainingSetBuilder`` (``build`` / ``score`` / ``labels``), the core builders
  ``CORE_TRAINING_SETS`` and the point-in-time helpers ``weekly_cutoffs``, ``data_window``,
  ``data_end_date`` and ``sql_date``;
* feature sets: ``FEATURE_SETS`` (versioned SQL with a ``{spine}`` placeholder: ``render(spine)``),
  ``build_feature_set`` and ``feature_set_key(name)``, the asset key of the core's snapshot (a
  dependency on it draws the lineage edge across code locations);
* data products: the relation names below, read-only, and their contracts (``product_contract``,
  ``feature_contract``, ``load_contract``);
* templates: ``TEMPLATES`` (the names a spec's ``template`` may take) and ``fit_template`` for
  experiments outside Dagster;
* resources: ``FactoryStore`` / ``default_store()`` (the same FACTORY_HOME as the core, so models land
  in the one registry), ``dbt_resource()``, and ``WAREHOUSE_WRITER_TAG`` for jobs that touch the
  warehouse (one such run at a time).

A business unit must not define asset keys the core defines: it depends on them.
"""

import dagster as dg

from factory_assets.assembly.assets import use_case_assets
from factory_assets.assembly.features import (
    CALENDAR,
    DAILY_DEMAND,
    FEATURE_SETS,
    ORDER_LINES,
    SUPPLIER_RELIABILITY,
    TICKETS,
    FeatureSet,
    build_feature_set,
    data_end_date,
    feature_set_versions,
    weekly_cutoffs,
)
from factory_assets.assembly.specs import UseCaseSpec, UseCaseSpecError, load_use_case
from factory_assets.assembly.templates import TEMPLATE_TASK, fit_template
from factory_assets.assembly.training_sets import CORE_TRAINING_SETS, TrainingSetBuilder, data_window
from factory_assets.lib.contracts import ContractError, DataContract, feature_contract, load_contract, product_contract
from factory_assets.resources import FactoryStore, dbt_resource, default_store
from factory_assets.settings import WAREHOUSE_WRITER_TAG

__all__ = [
    "CALENDAR",
    "CORE_TRAINING_SETS",
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
    "build_feature_set",
    "data_end_date",
    "data_window",
    "dbt_resource",
    "default_store",
    "feature_contract",
    "feature_set_key",
    "feature_set_versions",
    "fit_template",
    "load_contract",
    "load_use_case",
    "product_contract",
    "sql_date",
    "use_case_assets",
    "weekly_cutoffs",
]

#: Model templates a use case's ``template`` field may name.
TEMPLATES: tuple[str, ...] = tuple(TEMPLATE_TASK)


def feature_set_key(name: str) -> dg.AssetKey:
    """The asset key of a core feature set's snapshot, e.g. ``assembly/customer_activity``."""
    if name not in FEATURE_SETS:
        raise KeyError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}")
    return dg.AssetKey(["assembly", name])


def sql_date(day) -> str:
    """A DuckDB date literal, ``DATE 'YYYY-MM-DD'``, for point-in-time SQL."""
    return f"DATE '{day.isoformat()}'"
