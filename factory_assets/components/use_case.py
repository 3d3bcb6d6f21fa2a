"""The ``UseCase`` component: one ``defs.yaml`` gives a use case's whole vertical slice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from dagster.components.scaffold.scaffold import ScaffoldRequest, scaffold_with

from factory_assets.assembly.specs import UseCaseSpec, UseCaseSpecError, spec_from_attributes

_TEMPLATE = """\
# A use case: this one declaration gives its training set, model(s), promotion gate, prediction
# product, monitoring and governance rows. Fields: `dg list components`; README "Onboard your own data".
type: factory_assets.components.UseCase
attributes:
  name: {name}
  description: What is predicted, for whom, and what they do with it.
  template: binary_classification      # binary_classification | regression | forecasting
  training_set:
    products: [my_product]             # data products the SQL reads, written {{{{ my_product }}}}
    spine: >                           # one row per prediction: entity, time and context columns
      select my_id, event_date, region from {{{{ my_product }}}}
    outcome: >                         # the entity and the label, once known (omit if the spine has it)
      select my_id, outcome_flag from {{{{ my_product }}}}
  entity: [my_id]                      # key columns, any type
  time_column: event_date              # DATE or TIMESTAMP: when the prediction is made
  target: outcome_flag                 # the label
  label_delay_days: 30                 # days after the time column at the end of which the label is known
  feature_sets: []                     # declared feature sets, read as of the day before the time column
  metric: auc                          # auc | pr_auc | log_loss (classification); mae | rmse | wape
  risk_tier: low                       # a tier of governance/policy.yaml
  uses: [replenishment]                # allowed for the tier by governance/policy.yaml
  business_unit: my_unit
  owner: team:my-team
  engine: lightgbm                     # lightgbm | xgboost | both
"""


class UseCaseScaffolder(dg.Scaffolder):
    """Writes a commented ``defs.yaml`` with every field a use case needs."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        target = Path(request.target_path)
        target.mkdir(parents=True, exist_ok=True)
        (target / "defs.yaml").write_text(_TEMPLATE.format(name=target.name))


@scaffold_with(UseCaseScaffolder)
class UseCase(dg.Component, dg.Resolvable, UseCaseSpec):
    """A use case declared once: training set, model(s), promotion gate and policy check, prediction
    product with its contract, outcomes, monitoring and governance, for any domain."""

    #: A builder's import path, or the declared spine (``TrainingSetDecl``); validated in build_defs.
    training_set: str | dict[str, Any]

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        path = Path(context.path) / "defs.yaml"
        spec = spec_from_attributes(self.model_dump(), path)
        try:
            return use_case_definitions(spec, path)
        except UseCaseSpecError:
            raise
        except ValueError as exc:
            raise UseCaseSpecError(f"{path}: {exc}") from exc


def use_case_builder(spec: UseCaseSpec, path: Path, feature_sets=None):
    """The use case's training-set builder, after every load-time check of its declaration."""
    from factory_assets.assembly import catalogue
    from factory_assets.assembly.training_sets import declared_builder, declared_sql, import_builder
    from factory_assets.assembly.validation import check_declared_sql, check_references
    from factory_assets.governance.facts import current_policy

    feature_sets = catalogue.feature_sets() if feature_sets is None else feature_sets
    check_references(spec, path, feature_sets, current_policy())
    if not spec.training_set.declared:
        return import_builder(spec.training_set.builder, str(path))
    relations = catalogue.product_relations()
    spine_sql, outcome_sql = declared_sql(spec, relations, str(path))
    contracts = catalogue.product_contracts()
    check_declared_sql(spec, path, spine_sql, outcome_sql, {p: contracts[p] for p in spec.training_set.products},
                       feature_sets)
    return declared_builder(spec, relations, feature_sets, str(path))


def use_case_definitions(spec: UseCaseSpec, path: Path) -> dg.Definitions:
    """Every asset and check of one use case's slice, from its declaration alone."""
    from factory_assets.assembly import catalogue
    from factory_assets.assembly.assets import use_case_assets
    from factory_assets.distribution.assets import prediction_asset, prediction_checks
    from factory_assets.feedback.assets import monitoring_asset

    feature_sets = catalogue.feature_sets()
    builder = use_case_builder(spec, path, feature_sets)
    return dg.Definitions(
        assets=[*use_case_assets(spec, builder, feature_sets), prediction_asset(spec, builder),
                monitoring_asset(spec, builder)],
        asset_checks=prediction_checks(spec),
    )
