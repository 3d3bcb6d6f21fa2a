"""Training sets: where a use case's rows come from, point in time, for training, scoring and outcomes.

Pure layer (no Dagster import). A ``TrainingSetBuilder`` gives, for a date ``as_of`` (everything
dated up to ``as_of - 1`` is known):

* ``build(conn, spec, as_of)``: the training rows whose label is known at the start of ``as_of``,
  each with ``split_time`` (the first day at whose start the row is complete), at most
  ``spec.max_training_rows`` of them (the newest whole days);
* ``score(conn, spec, as_of)``: the rows still to be predicted at the start of ``as_of``, with the
  same feature columns and the label null (nightly scoring and the model's drift reference);
* ``outcome(spec, table, scored_date, known_by)``: SQL over a prediction table giving the rows
  scored on ``scored_date`` whose outcome is known by the end of ``known_by``, as ``actual``;
* ``data_end(conn, spec)``: the last complete day of the use case's own data (its "today");
* ``labels``: the columns only known after the prediction time (never used as features).

A use case declares its rows in SQL (``declared_builder``: any domain, no Python) or names a
builder by import path (``ORDER_LINES``, ``PRODUCT_WAREHOUSE_DAYS``, ``CUSTOMER_CUTOFFS`` below,
or a business unit's own).
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import duckdb
import polars as pl

from factory_assets.assembly import features as fs
from factory_assets.assembly.specs import UseCaseSpec, UseCaseSpecError

__all__ = [
    "CUSTOMER_CUTOFFS",
    "ORDER_LINES",
    "PRODUCT_WAREHOUSE_DAYS",
    "TrainingSetBuilder",
    "data_window",
    "declared_builder",
    "resolve_training_set",
]

#: ``(conn, spec, as_of) -> frame``
FrameBuilder = Callable[[duckdb.DuckDBPyConnection, UseCaseSpec, dt.date], pl.DataFrame]
#: ``(spec, prediction_table, scored_date, known_by) -> SQL``
OutcomeQuery = Callable[[UseCaseSpec, str, dt.date, dt.date], str]


def _d(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _orders_end(conn: duckdb.DuckDBPyConnection, spec: UseCaseSpec) -> dt.date | None:
    return fs.data_end_date(conn)


@dataclass(frozen=True)
class TrainingSetBuilder:
    """How one kind of training set is built, scored and labelled; see the module doc."""

    build: FrameBuilder
    score: FrameBuilder
    outcome: OutcomeQuery
    labels: frozenset[str]
    data_end: Callable[[duckdb.DuckDBPyConnection, UseCaseSpec], dt.date | None] = _orders_end
    description: str = ""
    #: The data products the rows are read from (lineage of the training set and of monitoring).
    products: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            raise TypeError(f"labels must be a set of column names, got the string {self.labels!r}")
        object.__setattr__(self, "labels", frozenset(self.labels))
        object.__setattr__(self, "products", tuple(self.products))
        if not self.labels:
            raise ValueError("a training-set builder names at least one label column")
        for part in ("build", "score", "outcome", "data_end"):
            if not callable(getattr(self, part)):
                raise TypeError(f"{part} must be a callable (see factory_assets.assembly.training_sets)")


def data_window(conn: duckdb.DuckDBPyConnection, as_of: dt.date, warmup_days: int = 28) -> tuple[dt.date, dt.date]:
    """First and last cutoff a cutoff-based training set may use at the start of ``as_of``: from
    ``warmup_days`` after the first order (so features have history) to the last order day known."""
    first, last = conn.execute(f"select min(order_date), max(order_date) from {fs.ORDER_LINES} "
                               f"where order_date < DATE '{as_of.isoformat()}'").fetchone()
    return first + dt.timedelta(days=warmup_days), last


def _late_outcome(spec: UseCaseSpec, table: str, scored: dt.date, known_by: dt.date) -> str:
    return f"""
        select p.*, f.{spec.target} as actual from {table} p
        join {fs.ORDER_LINES} f on f.order_line_id = p.order_line_id
        where p.scored_date = {_d(scored)} and f.delivered_date is not null
          and f.delivered_date + {fs.DELIVERY_REPORT_LAG_DAYS} <= {_d(known_by)}"""


def _demand_outcome(spec: UseCaseSpec, table: str, scored: dt.date, known_by: dt.date) -> str:
    return f"""
        select p.*, cast(coalesce(d.units, 0) as double) as actual from {table} p
        left join {fs.DAILY_DEMAND} d on d.product_id = p.product_id and d.warehouse_id = p.warehouse_id
            and d.demand_date = p.target_date
        where p.scored_date = {_d(scored)} and p.target_date <= {_d(known_by)}"""


def _propensity_outcome(spec: UseCaseSpec, table: str, scored: dt.date, known_by: dt.date) -> str:
    w = fs.PROPENSITY_WINDOW_DAYS
    return f"""
        select p.*, exists (select 1 from {fs.ORDER_LINES} f where f.customer_key = p.customer_key
               and f.order_date > p.cutoff_date and f.order_date <= p.cutoff_date + {w}) as actual
        from {table} p
        where p.scored_date = {_d(scored)} and p.cutoff_date + {w} <= {_d(known_by)}"""


ORDER_LINES = TrainingSetBuilder(
    build=lambda conn, spec, as_of: fs.late_delivery_training_set(conn, as_of, max_rows=spec.max_training_rows),
    score=lambda conn, spec, as_of: fs.late_delivery_scoring_set(conn, as_of),
    outcome=_late_outcome,
    labels=frozenset({"is_late"}),
    description="one row per order line, predicted after dispatch (late_delivery_training_set)",
    products=("fct_order_lines",),
)

PRODUCT_WAREHOUSE_DAYS = TrainingSetBuilder(
    build=lambda conn, spec, as_of: fs.demand_training_set(conn, as_of, horizon=spec.horizon_days,
                                                          max_rows=spec.max_training_rows),
    score=lambda conn, spec, as_of: fs.demand_scoring_set(conn, as_of, horizon=spec.horizon_days),
    outcome=_demand_outcome,
    labels=frozenset({"units"}),
    description="product x warehouse x origin day x horizon step (demand_training_set)",
    products=("daily_demand", "fct_order_lines", "calendar"),
)

CUSTOMER_CUTOFFS = TrainingSetBuilder(
    build=lambda conn, spec, as_of: fs.propensity_training_set(
        conn, fs.weekly_cutoffs(*data_window(conn, as_of)), data_end=as_of - dt.timedelta(days=1),
        max_rows=spec.max_training_rows),
    score=lambda conn, spec, as_of: fs.propensity_scoring_set(conn, as_of),
    outcome=_propensity_outcome,
    labels=frozenset({"purchased_next_30d"}),
    description="customer x weekly cutoff, label: an order in the next 30 days (propensity_training_set)",
    products=("fct_order_lines",),
)


# --------------------------------------------------------------------------------------------
# Declared training sets: SQL over data products, any domain
# --------------------------------------------------------------------------------------------

def render_product_sql(sql: str, relations: Mapping[str, str], where: str) -> str:
    """``sql`` with each ``{{ product }}`` replaced by that product's relation; a name not declared
    in ``products`` fails, naming it."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        return env.from_string(sql).render(**relations)
    except jinja2.UndefinedError as exc:
        raise UseCaseSpecError(f"{where}: {exc.message}: every {{{{ name }}}} in the SQL must be one of "
                               f"'products' {sorted(relations)}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise UseCaseSpecError(f"{where}: SQL template line {exc.lineno}: {exc.message}") from exc


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


@dataclass(frozen=True)
class DeclaredRows:
    """The SQL pieces of a declared training set, rendered once at load."""

    spine: str
    outcome: str | None
    feature_sets: tuple[fs.FeatureSet, ...]

    def rows_sql(self, spec: UseCaseSpec, where: str, training: bool) -> str:
        lag = spec.training_set.feature_lag_days
        time, target = _q(spec.time_column), _q(spec.target)
        entity = [_q(c) for c in spec.entity]
        ctes = [f"spine_rows as materialized (select *, cast({time} as date) as __day from ({self.spine}))",
                f"rows as (select * from spine_rows where {where})"]
        selects, joins = [], []
        for i, feature_set in enumerate(self.feature_sets):
            keys = [_q(c) for c in feature_set.entity]
            ctes.append(f"fs{i}_spine as (select distinct {', '.join(keys)}, cast(__day - {lag} as date) as feature_date "
                        f"from rows)")
            ctes.append(f"fs{i} as ({feature_set.render(f'fs{i}_spine')})")
            selects.append(f"fs{i}.* exclude ({', '.join([*keys, 'feature_date'])})")
            on = " and ".join([*(f"fs{i}.{k} = r.{k}" for k in keys), f"fs{i}.feature_date = r.__day - {lag}"])
            joins.append(f"left join fs{i} on {on}")
        label_in_spine = self.outcome is None
        base = "r.* exclude (__day" + (f", {target})" if label_in_spine else ")")
        if self.outcome is not None:
            ctes.append(f"outcome as ({self.outcome})")
            joins.append("left join outcome o on " + " and ".join(f"o.{k} = r.{k}" for k in entity))
            label = f"o.{target}"
        else:
            label = f"r.{target}"
        if training:
            selects += [f"{label} as {target}", f"cast(r.__day + {spec.label_delay_days + 1} as date) as split_time"]
        else:
            selects.append(f"null as {target}")
        filter_label = f"where {label} is not null" if training else ""
        return (f"with {', '.join(ctes)}\nselect {', '.join([base, *selects])}\nfrom rows r\n" + "\n".join(joins)
                + f"\n{filter_label}\norder by r.__day, {', '.join(f'r.{k}' for k in entity)}")

    def labels_sql(self, spec: UseCaseSpec, where: str) -> str:
        """The entity and the known label of the spine rows ``where`` selects: no feature is computed."""
        time, target = _q(spec.time_column), _q(spec.target)
        entity = [_q(c) for c in spec.entity]
        keys = ", ".join(f"r.{k}" for k in entity)
        if self.outcome is None:
            return (f"select {keys}, r.{target} from (select *, cast({time} as date) as __day from ({self.spine})) r "
                    f"where {where} and r.{target} is not null")
        on = " and ".join(f"o.{k} = r.{k}" for k in entity)
        return (f"with outcome as ({self.outcome}) select {keys}, o.{target} "
                f"from (select *, cast({time} as date) as __day from ({self.spine})) r join outcome o on {on} "
                f"where {where} and o.{target} is not null")

    def data_end(self, conn, spec: UseCaseSpec) -> dt.date | None:
        return conn.execute(f"select max(cast({_q(spec.time_column)} as date)) from ({self.spine})").fetchone()[0]


def declared_sql(spec: UseCaseSpec, relations: Mapping[str, str], where: str) -> tuple[str, str | None]:
    """The declared spine and outcome SQL with each ``{{ product }}`` resolved."""
    decl = spec.training_set
    unknown = [p for p in decl.products if p not in relations]
    if unknown:
        raise UseCaseSpecError(f"{where}: field 'training_set.products': unknown data product(s) {unknown}; known: "
                               f"{sorted(relations)} (a product has a contract in data_contracts/products/)")
    own = {p: relations[p] for p in decl.products}
    spine_sql = decl.spine.strip()
    if spine_sql in own:
        spine_sql = f"select * from {own[spine_sql]}"
    spine = render_product_sql(spine_sql, own, f"{where}: field 'training_set.spine'")
    outcome = render_product_sql(decl.outcome, own, f"{where}: field 'training_set.outcome'") if decl.outcome else None
    return spine, outcome


def declared_builder(spec: UseCaseSpec, relations: Mapping[str, str],
                     feature_sets: Mapping[str, fs.FeatureSet], where: str) -> TrainingSetBuilder:
    """The builder of a use case whose ``training_set`` declares a spine: rows with ``time < as_of``
    whose label is known (``time + label_delay_days < as_of``) train; rows whose label is still
    open score. ``relations``: product name -> warehouse relation."""
    decl = spec.training_set
    spine_sql, outcome_sql = declared_sql(spec, relations, where)
    rows = DeclaredRows(spine=spine_sql, outcome=outcome_sql,
                        feature_sets=tuple(feature_sets[n] for n in spec.feature_sets))
    delay = spec.label_delay_days

    def build(conn, spec, as_of):
        sql = rows.rows_sql(spec, f"__day < {_d(as_of)} and __day + {delay} < {_d(as_of)}", training=True)
        order = ", ".join(["split_time", *(_q(c) for c in spec.entity)])
        return conn.execute(fs.newest_days(sql, spec.max_training_rows, order)).pl()

    def score(conn, spec, as_of):
        first_open = as_of - dt.timedelta(days=max(delay, 1))
        return conn.execute(rows.rows_sql(spec, f"__day < {_d(as_of)} and __day >= {_d(first_open)}",
                                          training=False)).pl()

    def outcome(spec, table, scored, known_by):
        labelled = rows.labels_sql(spec, f"__day + {delay} <= {_d(known_by)}")
        keys = [_q(c) for c in spec.entity]
        return (f"select p.*, l.{_q(spec.target)} as actual from {table} p join ({labelled}) l on "
                + " and ".join(f"l.{k} = p.{k}" for k in keys) + f" where p.scored_date = {_d(scored)}")

    return TrainingSetBuilder(build=build, score=score, outcome=outcome, labels=frozenset({spec.target}),
                              data_end=rows.data_end, description="declared spine over " + ", ".join(decl.products),
                              products=decl.products)


def import_builder(path: str, where: str) -> TrainingSetBuilder:
    """The ``TrainingSetBuilder`` at ``package.module:NAME``."""
    module_name, _, attribute = path.partition(":")
    try:
        builder = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise UseCaseSpecError(f"{where}: field 'training_set': cannot import {path!r} ({exc}); give "
                               "'package.module:NAME' of a TrainingSetBuilder, or declare a spine") from exc
    if not isinstance(builder, TrainingSetBuilder):
        raise UseCaseSpecError(f"{where}: field 'training_set': {path!r} is a {type(builder).__name__}, "
                               "not a TrainingSetBuilder")
    return builder


def resolve_training_set(spec: UseCaseSpec, *, relations: Mapping[str, str] | None = None,
                         feature_sets: Mapping[str, fs.FeatureSet] | None = None,
                         where: str | None = None) -> TrainingSetBuilder:
    """The builder of ``spec``: imported from its path, or built from its declared SQL."""
    where = where or f"use case {spec.name!r}"
    if spec.training_set.declared:
        if relations is None:
            from factory_assets.assembly.catalogue import product_relations

            relations = product_relations()
        if feature_sets is None:
            from factory_assets.assembly.catalogue import feature_sets as all_feature_sets

            feature_sets = all_feature_sets()
        return declared_builder(spec, relations, feature_sets, where)
    return import_builder(spec.training_set.builder, where)
