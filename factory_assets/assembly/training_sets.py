"""Training-set builders: where a use case's rows come from, point in time, for training and scoring.

Pure layer (no Dagster import). A use case names its builder in the ``training_set`` field of its
YAML file. A builder gives, for a date ``as_of`` (everything dated up to ``as_of - 1`` is known):

* ``build(conn, spec, as_of)``: the training rows whose label is known at the start of ``as_of``,
  each with ``split_time`` (the first day at whose start the row is complete), at most
  ``spec.max_training_rows`` of them (the newest whole days; ``features.newest_days`` cuts in SQL);
* ``score(conn, spec, as_of)``: the rows still to be predicted at the start of ``as_of``, with the
  same feature columns and the label null (nightly scoring and the model's drift reference);
* ``labels``: the columns only known after the prediction time (never used as features).

``CORE_TRAINING_SETS`` holds the factory's three builders. A business unit brings its own to
``use_case_assets(spec, training_sets={name: TrainingSetBuilder(...)})``; a core name cannot be
redefined there.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import duckdb
import polars as pl

from factory_assets.assembly import features as fs
from factory_assets.assembly.specs import UseCaseSpec, UseCaseSpecError

__all__ = ["CORE_TRAINING_SETS", "TrainingSetBuilder", "data_window", "resolve_training_set"]

#: ``(conn, spec, as_of) -> frame``
FrameBuilder = Callable[[duckdb.DuckDBPyConnection, UseCaseSpec, dt.date], pl.DataFrame]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TrainingSetBuilder:
    """How one kind of training set is built (``build``) and scored (``score``); see the module doc."""

    build: FrameBuilder
    score: FrameBuilder
    labels: frozenset[str]
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            raise TypeError(f"labels must be a set of column names, got the string {self.labels!r}")
        object.__setattr__(self, "labels", frozenset(self.labels))
        if not self.labels:
            raise ValueError("a training-set builder names at least one label column")
        for part in ("build", "score"):
            if not callable(getattr(self, part)):
                raise TypeError(f"{part} must be a callable (conn, spec, as_of) -> polars.DataFrame")


def data_window(conn: duckdb.DuckDBPyConnection, as_of: dt.date, warmup_days: int = 28) -> tuple[dt.date, dt.date]:
    """First and last cutoff a cutoff-based training set may use at the start of ``as_of``: from
    ``warmup_days`` after the first order (so features have history) to the last order day known."""
    first, last = conn.execute(f"select min(order_date), max(order_date) from {fs.ORDER_LINES} "
                               f"where order_date < DATE '{as_of.isoformat()}'").fetchone()
    return first + dt.timedelta(days=warmup_days), last


CORE_TRAINING_SETS: dict[str, TrainingSetBuilder] = {
    "order_lines": TrainingSetBuilder(
        build=lambda conn, spec, as_of: fs.late_delivery_training_set(conn, as_of, max_rows=spec.max_training_rows),
        score=lambda conn, spec, as_of: fs.late_delivery_scoring_set(conn, as_of),
        labels=frozenset({"is_late"}),
        description="one row per order line, predicted after dispatch (late_delivery_training_set)",
    ),
    "product_warehouse_days": TrainingSetBuilder(
        build=lambda conn, spec, as_of: fs.demand_training_set(conn, as_of, horizon=spec.horizon_days,
                                                              max_rows=spec.max_training_rows),
        score=lambda conn, spec, as_of: fs.demand_scoring_set(conn, as_of, horizon=spec.horizon_days),
        labels=frozenset({"units"}),
        description="product x warehouse x origin day x horizon step (demand_training_set)",
    ),
    "customer_cutoffs": TrainingSetBuilder(
        build=lambda conn, spec, as_of: fs.propensity_training_set(
            conn, fs.weekly_cutoffs(*data_window(conn, as_of)), data_end=as_of - dt.timedelta(days=1),
            max_rows=spec.max_training_rows),
        score=lambda conn, spec, as_of: fs.propensity_scoring_set(conn, as_of),
        labels=frozenset({"purchased_next_30d"}),
        description="customer x weekly cutoff, label: an order in the next 30 days (propensity_training_set)",
    ),
}


def resolve_training_set(spec: UseCaseSpec,
                         extra: Mapping[str, TrainingSetBuilder] | None = None) -> TrainingSetBuilder:
    """The builder ``spec.training_set`` names, among the core ones and ``extra`` (a business unit's).

    Raises ``UseCaseSpecError`` naming the use case file, the field and every known builder when the
    name is unknown, and when ``extra`` tries to redefine a core builder or is not a builder.
    """
    extra = dict(extra or {})
    where = f"use case {spec.name!r} ({spec.name}.yaml)"
    shadowed = sorted(set(extra) & set(CORE_TRAINING_SETS))
    if shadowed:
        raise UseCaseSpecError(f"{where}: training set(s) {shadowed} are core builders and cannot be redefined; "
                               "give the business unit's builder its own name")
    for name, builder in extra.items():
        if not _NAME.match(name):
            raise UseCaseSpecError(f"{where}: training set name {name!r} must be snake_case (a-z, 0-9, _)")
        if not isinstance(builder, TrainingSetBuilder):
            raise UseCaseSpecError(f"{where}: training set {name!r} must be a TrainingSetBuilder, "
                                   f"got {type(builder).__name__}")
    known = {**CORE_TRAINING_SETS, **extra}
    if spec.training_set not in known:
        raise UseCaseSpecError(
            f"{where}: field 'training_set': unknown training set {spec.training_set!r}; known builders: "
            f"{sorted(known)}. A business unit passes its own: use_case_assets(spec, training_sets="
            f"{{{spec.training_set!r}: TrainingSetBuilder(build=..., score=..., labels=...)}})"
        )
    return known[spec.training_set]
