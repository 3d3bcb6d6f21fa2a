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

Every saved report says on the page what it is (:class:`ReportContext`, :func:`write_report`): a
heading above Evidently's widgets, and the page's ``<title>``, name the use case, the report kind
and what it measures, the day, the reference it is compared with and the limits of the use case's
risk tier. Evidently 0.7 renders none of a snapshot's name, metadata or tags in a saved HTML file
(they are kept in its JSON only), so the heading is written into the file, every value escaped.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factory_assets.lib.warehouse_sql import sample_rows
from factory_assets.lib.yaml_files import read_yaml_file

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
    raw = read_yaml_file(path, MonitoringConfigError)
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
# What a report says about itself
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportContext:
    """What the caller knows about a report: whose, which day, compared with what, judged by which
    limits. The measuring function adds what it measured (columns, rows, method)."""

    use_case: str
    day: str
    risk_tier: str
    limits: TierThresholds
    reference: str  #: what the current data is compared with, in words
    model_version: str | None = None


def drift_reference_text(model_version: str, extra: dict) -> str:
    """A model's drift reference in words, from its manifest's ``extra`` (see
    ``assembly.lifecycle.drift_reference``)."""
    info = extra.get("reference") or {}
    days = sorted(info.get("days") or [])
    text = f"model {model_version}'s drift reference"
    if days:
        text += (f": the scoring sets of {len(days)} days from {days[0]} to {days[-1]}, scored by the model"
                 + (f" (up to its training as-of date {extra['training_as_of']})"
                    if extra.get("training_as_of") else ""))
    if info.get("sampling"):
        text += f"; {info['sampling']}"
    return text


def quality_reference_text(metric: str, expected: float, versions: dict[str, dict]) -> str:
    """The expected metric live quality is compared with: the test metric of the model version(s)
    that scored the labelled rows (``versions``: version -> its manifest's ``extra``)."""
    windows = "; ".join(f"{v} tested on {' to '.join(map(str, x.get('test_window') or []))}"
                        if x.get("test_window") else v for v, x in sorted(versions.items()))
    return (f"expected {metric} {expected:.4g}: the test {metric} recorded when the scoring model was trained "
            f"({windows})")


def _limits_text(kind: str, context: ReportContext, config: MonitoringConfig | None = None) -> str:
    limits, tier = context.limits, f"{context.risk_tier} tier of governance/policy.yaml"
    if kind == "prediction drift":
        text = (f"max_prediction_drift {limits.max_prediction_drift:g} (drift score of the predictions; "
                f"above it retraining is recommended), {tier}")
    elif kind == "data drift":
        text = (f"max_drift_share {limits.max_drift_share:g} (share of drifted feature columns; above it retraining "
                f"is recommended), {tier}")
    else:
        text = (f"max_quality_drop {limits.max_quality_drop:g} (relative loss against the expected metric; above it "
                f"retraining is recommended); quality is judged only with at least {limits.min_labelled_rows} "
                f"labelled rows (min_labelled_rows), {tier}")
    if config is not None:
        text += f"; a column drifts when its distance exceeds {config.column_threshold:g}"
    return text


def report_title(kind: str, context: ReportContext) -> str:
    return f"{context.use_case}: {kind} on {context.day}"


def write_report(snapshot, path: Path, title: str, lines: list[tuple[str, str]]) -> Path:
    """Save an Evidently snapshot as HTML with ``title`` as the page's ``<title>`` and, above the
    report, a heading: ``title`` and one labelled line each of ``lines`` (all escaped)."""
    from factory_assets.lib.files import atomic_write

    page = snapshot.get_html_str(as_iframe=False)  # what Snapshot.save_html writes
    rows = "".join(f'<dt style="font-weight:600">{html.escape(label)}</dt><dd style="margin:0">{html.escape(text)}</dd>'
                   for label, text in lines)
    header = ('<header id="factory-report-heading" style="font-family:Helvetica,Arial,sans-serif;font-size:14px;'
              'line-height:1.4;padding:16px 24px;border-bottom:1px solid #ddd;background:#fafafa;color:#222">'
              f'<h1 style="font-size:22px;margin:0 0 8px 0">{html.escape(title)}</h1>'
              '<dl style="display:grid;grid-template-columns:max-content auto;gap:4px 16px;margin:0">'
              f"{rows}</dl></header>")
    page, titled = re.subn(r"<head(\s[^>]*)?>", lambda m: f"{m.group(0)}\n<title>{html.escape(title)}</title>",
                           page, count=1, flags=re.IGNORECASE)
    page, headed = re.subn(r"<body(\s[^>]*)?>", lambda m: f"{m.group(0)}\n{header}", page, count=1, flags=re.IGNORECASE)
    if not (titled and headed):
        raise ValueError(f"{path}: Evidently's page has no <head> or <body> to put the report's heading in")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, page.encode("utf-8"))
    path.chmod(0o644)  # readable like a file Evidently writes itself (the artifact server serves it)
    return path


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
               config: MonitoringConfig | None = None, report_path: Path | None = None, seed: int = 0,
               context: ReportContext | None = None, kind: str = "data drift",
               text_columns: tuple[str, ...] = ()) -> DriftResult:
    """Evidently drift of each of ``columns`` (see the module docstring for the method).

    A column of ``text_columns`` (free text, personal data) is monitored through its descriptors
    (length in characters and words, share of words unseen in the reference): the text itself
    never enters the report.

    The report is the preset's own metrics (``DriftedColumnsCount`` and one ``ValueDrift`` per
    column) rather than ``DataDriftPreset``: the preset renders every column's plots twice, and
    computes every drift twice, for a legacy summary table it draws over them (measured: half the
    time of a report, same scores; README, what the benchmarks found).

    ``context`` (whose report, which day, reference, limits) and ``kind`` ("data drift" of
    features, "prediction drift") head the saved report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    from factory_assets.assembly.text import with_text_described

    config = config or monitoring_config()
    if current.height == 0 or reference.height == 0:
        raise ValueError(f"drift needs rows on both sides (reference {reference.height}, current {current.height})")
    reference, current, columns = with_text_described(reference, current, list(columns), list(text_columns))
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
        Dataset.from_pandas(_to_pandas(ref, numerical, categorical), definition),
        **_snapshot_labels(kind, context))
    scores = {c: s for c, s in _value_drift_scores(snapshot).items() if c in monitored}
    drifted = sorted((c for c, s in scores.items() if s > config.column_threshold), key=lambda c: -scores[c])
    sampling = _sampling_note(reference.height, current.height, config.sample_rows, seed)
    method = (f"{config.numerical_method} (numbers) / {config.categorical_method} (categories), "
              f"column drifts above {config.column_threshold}")
    if report_path is not None:
        what = (f"drift of the predictions (column {', '.join(monitored)}) of model {context.model_version}"
                if kind == "prediction drift" and context and context.model_version else
                f"{kind} of {len(monitored)} column(s): {', '.join(monitored) or 'none'}")
        if excluded:
            what += "; left out: " + "; ".join(f"{c} ({why})" for c, why in excluded.items())
        lines = [("Monitors", what)]
        if context is not None:
            lines += [("Day", f"{context.day}: the day's scoring batch, {current.height} rows"),
                      ("Reference", f"{context.reference}; {reference.height} rows"),
                      ("Limits", _limits_text(kind, context, config if kind == "data drift" else None))]
        lines += [("Method", f"{method}; {sampling}")]
        title = report_title(kind, context) if context else kind
        write_report(snapshot, report_path, title, lines)
    return DriftResult(
        share=len(drifted) / len(monitored) if monitored else 0.0,
        drifted_columns=drifted, scores=scores, columns=monitored, excluded=excluded,
        reference_rows=reference.height, current_rows=current.height,
        sampling=sampling, method=method, report_path=report_path,
    )


def _snapshot_labels(kind: str, context: ReportContext | None) -> dict:
    """Name, metadata and tags of a snapshot (kept in its JSON; the saved HTML shows the heading)."""
    if context is None:
        return {"name": kind, "tags": [kind]}
    return {"name": report_title(kind, context), "tags": [context.use_case, kind, context.risk_tier],
            "metadata": {"use_case": context.use_case, "day": str(context.day), "report": kind,
                         "risk_tier": context.risk_tier, "reference": context.reference,
                         **({"model_version": context.model_version} if context.model_version else {})}}


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


def model_quality(labelled: pl.DataFrame, task: str, *, report_path: Path | None = None,
                  context: ReportContext | None = None, metric: str | None = None,
                  scored: str | None = None) -> QualityResult:
    """Metrics of predictions against outcomes (columns ``prediction``, ``actual``), computed with
    the same functions as training (so they compare with the champion's test metrics) plus an
    Evidently classification / regression report for people to read, headed by ``context`` (the
    judged ``metric``; the predictions were ``scored`` that day, the outcomes known by its day)."""
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
        evidently_values = _quality_report(labelled, task, report_path, context, metric, scored)
    return QualityResult({k: float(v) for k, v in metrics.items()}, len(y), report_path if metrics else None, evidently_values)


def _quality_report(labelled: pl.DataFrame, task: str, report_path: Path, context: ReportContext | None = None,
                    metric: str | None = None, scored: str | None = None) -> dict[str, float]:
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
    kind = f"live quality ({metric})" if metric else "live quality"
    snapshot = Report([preset]).run(Dataset.from_pandas(frame.to_pandas(), definition), None,
                                    **_snapshot_labels(kind, context))
    versions = (sorted(labelled["model_version"].unique().to_list()) if "model_version" in labelled.columns
                else [context.model_version] if context and context.model_version else [])
    what = (f"{metric or 'quality'} of the predictions" + (f" of {', '.join(versions)}" if versions else "")
            + (f" scored on {scored}" if scored else "") + f" against their outcomes, {labelled.height} labelled rows ("
            + ("binary classification: ClassificationPreset" if task == "binary" else "regression: RegressionPreset")
            + ")")
    lines = [("Monitors", what)]
    if context is not None:
        lines += [("Day", f"{context.day}: outcomes known by the end of the day"
                   + (f", for the predictions scored on {scored}" if scored else "")),
                  ("Reference", context.reference),
                  ("Limits", _limits_text("quality", context))]
    write_report(snapshot, report_path, report_title(kind, context) if context else kind, lines)
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
