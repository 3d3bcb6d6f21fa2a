"""Drift and quality measurement with Evidently 0.7, and the per-tier thresholds that judge them.

Pure layer (no Dagster). Evidently is imported inside the functions (it takes seconds to import).

Method, fixed so that verdicts do not change with sample size: every monitored column is compared
between a reference (what the model saw when it was trained) and the current batch with the
normed Wasserstein distance (numbers) or the Jensen-Shannon distance (categories, booleans); a
column drifts when its distance exceeds ``column_threshold``; the drift share is the share of
drifted columns. Categorical columns with more than ``max_categories`` values (identifiers such as
product ids) are left out: on a day's batch their distance measures sampling noise. Inputs larger
than ``sample_rows`` are sampled uniformly without replacement with a fixed seed, and the
metadata says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factory_assets.lib.warehouse_sql import sample_rows
from factory_assets.lib.yaml_files import load_yaml

THRESHOLDS_FILE = Path(__file__).with_name("monitoring_method.yaml")


class MonitoringConfigError(ValueError):
    """The thresholds file is invalid (the message names the file and the field)."""


class TierThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_drift_share: float = Field(gt=0, le=1)
    max_prediction_drift: float = Field(gt=0)
    max_quality_drop: float = Field(gt=0, lt=1)
    min_labelled_rows: int = Field(ge=1)


class MonitoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    numerical_method: Literal["wasserstein", "ks", "psi", "jensenshannon"] = "wasserstein"
    categorical_method: Literal["jensenshannon", "psi", "chisquare", "TVD"] = "jensenshannon"
    column_threshold: float = Field(0.1, gt=0)
    sample_rows: int = Field(20_000, ge=100)
    max_categories: int = Field(50, ge=2)
    tiers: dict[Literal["low", "medium", "high"], TierThresholds]


def load_monitoring_config(path: Path | str = THRESHOLDS_FILE, policy_file: Path | str | None = None) -> MonitoringConfig:
    """The drift method from ``path`` and, per risk tier, the limits from the policy file
    (governance/policy.yaml: one place for every tier rule)."""
    from factory_assets.governance.policy import POLICY_FILE, load_policy

    path = Path(path)
    try:
        raw = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MonitoringConfigError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise MonitoringConfigError(f"{path}: expected a mapping of settings")
    policy = load_policy(policy_file or POLICY_FILE)
    fields = set(TierThresholds.model_fields)
    tiers = {name: {k: v for k, v in tier.model_dump().items() if k in fields} for name, tier in policy.tiers.items()}
    try:
        return MonitoringConfig.model_validate({**raw, "tiers": tiers})
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise MonitoringConfigError(f"{path}: invalid monitoring settings: {problems}") from exc


@cache
def monitoring_config() -> MonitoringConfig:
    return load_monitoring_config()


# ---------------------------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------------------------


@dataclass
class DriftResult:
    share: float
    drifted_columns: list[str]
    scores: dict[str, float]
    columns: list[str]
    excluded: dict[str, str]
    reference_rows: int
    current_rows: int
    sampling: str
    method: str
    report_path: Path | None = None


def _kinds(reference: pl.DataFrame, columns: list[str], max_categories: int):
    numerical, categorical, excluded = [], [], {}
    for name in columns:
        dtype = reference.schema[name]
        if dtype in (pl.String, pl.Categorical, pl.Enum, pl.Boolean):
            n = reference[name].n_unique()
            if dtype != pl.Boolean and n > max_categories:
                excluded[name] = f"{n} categories (> {max_categories}): identifier-like, drift would measure noise"
            else:
                categorical.append(name)
        elif dtype.is_numeric():
            if reference[name].drop_nulls().len() == 0:
                excluded[name] = "always null in the reference"
            else:
                numerical.append(name)
        else:
            excluded[name] = f"type {dtype} is not monitored"
    return numerical, categorical, excluded


def _to_pandas(frame: pl.DataFrame, numerical: list[str], categorical: list[str]):
    return frame.select(
        *[pl.col(c).cast(pl.Float64) for c in numerical],
        *[pl.col(c).cast(pl.String) for c in categorical],
    ).to_pandas()


def _value_drift_scores(snapshot) -> dict[str, float]:
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return scores


def data_drift(reference: pl.DataFrame, current: pl.DataFrame, columns: list[str], *,
               config: MonitoringConfig | None = None, report_path: Path | None = None, seed: int = 0) -> DriftResult:
    """Evidently drift of each of ``columns`` (see the module docstring for the method).

    The report is the preset's own metrics (``DriftedColumnsCount`` and one ``ValueDrift`` per
    column) rather than ``DataDriftPreset``: the preset renders every column's plots twice, and
    computes every drift twice, for a legacy summary table it draws over them (measured: half the
    time of a report, same scores; README, what the benchmarks found)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    config = config or monitoring_config()
    if current.height == 0 or reference.height == 0:
        raise ValueError(f"drift needs rows on both sides (reference {reference.height}, current {current.height})")
    numerical, categorical, excluded = _kinds(reference, columns, config.max_categories)
    monitored = numerical + categorical
    ref = sample_rows(reference, config.sample_rows, seed)
    cur = sample_rows(current, config.sample_rows, seed)
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    metrics = [DriftedColumnsCount(columns=monitored, num_method=config.numerical_method,
                                   cat_method=config.categorical_method, threshold=config.column_threshold)]
    metrics += [ValueDrift(column=c, method=config.numerical_method if c in numerical else config.categorical_method,
                           threshold=config.column_threshold) for c in monitored]
    snapshot = Report(metrics, include_tests=False).run(
        Dataset.from_pandas(_to_pandas(cur, numerical, categorical), definition),
        Dataset.from_pandas(_to_pandas(ref, numerical, categorical), definition))
    scores = {c: s for c, s in _value_drift_scores(snapshot).items() if c in monitored}
    drifted = sorted((c for c, s in scores.items() if s > config.column_threshold), key=lambda c: -scores[c])
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(report_path))  # a Path is silently ignored by Evidently 0.7
    return DriftResult(
        share=len(drifted) / len(monitored) if monitored else 0.0,
        drifted_columns=drifted, scores=scores, columns=monitored, excluded=excluded,
        reference_rows=reference.height, current_rows=current.height,
        sampling=_sampling_note(reference.height, current.height, config.sample_rows, seed),
        method=f"{config.numerical_method} (numbers) / {config.categorical_method} (categories), "
               f"column drifts above {config.column_threshold}",
        report_path=report_path,
    )


def _sampling_note(ref_rows: int, cur_rows: int, max_rows: int, seed: int) -> str:
    if ref_rows <= max_rows and cur_rows <= max_rows:
        return f"all rows (reference {ref_rows}, current {cur_rows})"
    return (f"uniform sample without replacement, seed {seed}: reference {min(ref_rows, max_rows)} of {ref_rows}, "
            f"current {min(cur_rows, max_rows)} of {cur_rows}")


# ---------------------------------------------------------------------------------------------
# Quality (labels known)
# ---------------------------------------------------------------------------------------------


@dataclass
class QualityResult:
    metrics: dict[str, float]
    rows: int
    report_path: Path | None = None
    evidently: dict[str, float] = field(default_factory=dict)


def model_quality(labelled: pl.DataFrame, task: str, *, report_path: Path | None = None) -> QualityResult:
    """Metrics of predictions against outcomes (columns ``prediction``, ``actual``), computed with
    the same functions as training (so they compare with the champion's test metrics) plus an
    Evidently classification / regression report for people to read."""
    from factory_assets.assembly.training import classification_metrics, regression_metrics

    y = labelled["actual"].cast(pl.Float64).to_numpy()
    p = labelled["prediction"].cast(pl.Float64).to_numpy()
    if len(y) == 0:
        return QualityResult({}, 0)
    if task == "binary":
        metrics = classification_metrics(y, p) if len(np.unique(y)) == 2 else {}
    else:
        metrics = regression_metrics(y, p)
    evidently_values = {}
    if report_path is not None and metrics:
        evidently_values = _quality_report(labelled, task, report_path)
    return QualityResult({k: float(v) for k, v in metrics.items()}, len(y), report_path if metrics else None, evidently_values)


def _quality_report(labelled: pl.DataFrame, task: str, report_path: Path) -> dict[str, float]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.datasets import BinaryClassification, Regression
    from evidently.presets import ClassificationPreset, RegressionPreset

    frame = labelled.select(pl.col("prediction").cast(pl.Float64), pl.col("actual"))
    if task == "binary":
        frame = frame.with_columns(pl.col("actual").cast(pl.Int64))
        definition = DataDefinition(classification=[BinaryClassification(target="actual", prediction_probas="prediction")],
                                    numerical_columns=["prediction"], categorical_columns=["actual"])
        preset = ClassificationPreset()
    else:
        frame = frame.with_columns(pl.col("actual").cast(pl.Float64))
        definition = DataDefinition(regression=[Regression(target="actual", prediction="prediction")],
                                    numerical_columns=["prediction", "actual"])
        preset = RegressionPreset()
    snapshot = Report([preset]).run(Dataset.from_pandas(frame.to_pandas(), definition), None)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(report_path))
    values = {}
    for metric in snapshot.dict()["metrics"]:
        value = metric.get("value")
        if isinstance(value, (int, float)) and math.isfinite(value):
            values[metric["metric_name"].split("(")[0]] = float(value)
    return values


def relative_drop(metric_higher_is_better: bool, reference: float, live: float) -> float:
    """How much worse ``live`` is than ``reference``, as a share of the reference (<= 0: not worse)."""
    if reference == 0 or not (math.isfinite(reference) and math.isfinite(live)):
        return 0.0
    change = (reference - live) if metric_higher_is_better else (live - reference)
    return change / abs(reference)
