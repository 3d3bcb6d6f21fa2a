"""Model templates: turn a training set into a trained, evaluated model, the same way every time.

A template fixes the task (binary classification, regression, forecasting, text classification),
the naive baseline a model must beat on the same test window, and the metrics reported. Frames
come in as polars and go to the engines as one float32 numpy matrix (sparse when text is hashed
into it): no pandas copy of the whole table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from factory_assets.assembly.text import hash_text, hashed_names, input_column, is_text_encoding, text_encoding
from factory_assets.assembly.training import (
    TrainedModel,
    classification_metrics,
    mean_baseline,
    prior_rate_baseline,
    regression_metrics,
    seasonal_naive,
    time_split,
    train_model,
)

TEMPLATE_TASK = {"binary_classification": "binary", "regression": "regression", "forecasting": "regression",
                 "text_classification": "binary"}
#: The forecasting template's seasonal-naive baseline reads this column (value one week earlier).
SEASONAL_LAG_COLUMN = "units_lag_7"


@dataclass
class TemplateResult:
    model: TrainedModel
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    baseline_name: str
    rows: dict[str, int]
    test_window: tuple[str, str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    #: per segment column, per value: test rows and metrics (the policy compares best and worst)
    segment_metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


def segment_metrics(frame: pl.DataFrame, y: np.ndarray, prediction: np.ndarray, task: str,
                    columns: tuple[str, ...], baseline: np.ndarray | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of ``prediction`` per value of each segment column present in ``frame`` (test rows).

    With a naive forecast as ``baseline``, each segment also gets ``relative_mae``: the model's MAE
    over the naive forecast's on the same rows (a scaled error, as MASE). Raw errors grow with a
    series' noise (sparse daily counts have a larger WAPE however good the forecast), the naive
    forecast's alike, so forecasts' segments are compared on this ratio instead. (A training-mean
    baseline's error measures the target's spread, not noise: other regressions keep WAPE.)"""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        if column not in frame.columns:
            continue
        values = frame[column].cast(pl.String).fill_null("(missing)").to_numpy()
        out[column] = {}
        for value in sorted(set(values)):
            mask = values == value
            if task == "binary":
                metrics = classification_metrics(y[mask], prediction[mask]) if len(np.unique(y[mask])) == 2 else {}
            else:
                metrics = regression_metrics(y[mask], prediction[mask])
                if baseline is not None:
                    naive = regression_metrics(y[mask], baseline[mask])["mae"]
                    metrics["relative_mae"] = metrics["mae"] / naive if naive > 0 else math.nan
            out[column][str(value)] = {"rows": int(mask.sum()), **{k: float(v) for k, v in metrics.items()}}
    return out


def encode_features(frame: pl.DataFrame, columns: list[str], categories: dict | None = None):
    """float32 matrix of ``columns``; strings become stable integer codes (unknown -> NaN), and a
    column whose codes are a text encoding becomes its hashed words (the matrix is then CSR).

    Returns the matrix and the category codes used, so scoring can apply the same codes.
    """
    categories = dict(categories or {})
    exprs, text = [], {}
    for name in columns:
        dtype = frame.schema[name]
        if is_text_encoding(categories.get(name)):
            text[name] = len(exprs)
            continue
        if dtype in (pl.String, pl.Categorical, pl.Enum):
            if name not in categories:
                categories[name] = sorted(v for v in frame[name].unique().to_list() if v is not None)
            mapping = {v: i for i, v in enumerate(categories[name])}
            exprs.append(pl.col(name).cast(pl.String).replace_strict(mapping, default=None, return_dtype=pl.Float32))
        elif dtype == pl.Boolean:
            exprs.append(pl.col(name).cast(pl.Float32))
        elif dtype.is_temporal():
            raise TypeError(f"feature {name!r} is {dtype}; derive a number from it (age in days, day of week)")
        else:
            exprs.append(pl.col(name).cast(pl.Float32))
    dense = frame.select(exprs).to_numpy().astype(np.float32, copy=False) if exprs else np.zeros((frame.height, 0), np.float32)
    if not text:
        return dense, categories
    import scipy.sparse

    # Dense columns keep their order, each text column's hashed block goes where the column stood.
    blocks, at = [], 0
    for name, position in text.items():
        if position > at:
            blocks.append(scipy.sparse.csr_matrix(dense[:, at:position]))
        blocks.append(hash_text(frame[name], categories[name]))
        at = position
    if at < dense.shape[1]:
        blocks.append(scipy.sparse.csr_matrix(dense[:, at:]))
    return scipy.sparse.hstack(blocks, format="csr", dtype=np.float32), categories


def predict(model, categories: dict[str, list[str]], frame: pl.DataFrame) -> np.ndarray:
    """The model's predictions for ``frame`` with the category codes it was trained with."""
    if frame.height == 0:
        return np.zeros(0, dtype=np.float64)
    X, _ = encode_features(frame, list(model.feature_names), categories)
    return np.asarray(model.predict(X), dtype=np.float64)


def matrix_columns(columns: list[str], categories: dict) -> list[str]:
    """The names of the matrix ``encode_features`` builds: a text column becomes its hashed columns."""
    out = []
    for name in columns:
        out += hashed_names(name, categories[name]) if is_text_encoding(categories.get(name)) else [name]
    return out


def objective_params(engine: str, template: str, metric: str) -> dict:
    """Train on the loss the use case is judged by: absolute error for MAE / WAPE targets.

    Squared error on sparse daily demand chases the mean and loses to a seasonal-naive forecast on
    WAPE; the absolute-error objective estimates the median, which is what WAPE rewards.
    """
    if TEMPLATE_TASK[template] == "regression" and metric in ("mae", "wape"):
        if engine == "lightgbm":
            return {"objective": "l1", "metric": "l1"}
        return {"objective": "reg:absoluteerror", "eval_metric": "mae"}
    return {}


def fit_template(
    template: str,
    frame: pl.DataFrame,
    *,
    target: str,
    feature_columns: list[str],
    time_column: str,
    engine: str,
    device: str = "auto",
    params: dict | None = None,
    metric: str | None = None,
    seed: int = 0,
    refit: bool = True,
    segment_columns: tuple[str, ...] = (),
    text_columns: tuple[str, ...] = (),
    text_features: int = 2**16,
) -> TemplateResult:
    """Time-split ``frame``, train ``engine`` with early stopping, evaluate model and baseline on test.

    ``refit``: after early stopping has chosen the number of rounds on the validation window, train
    again on training + validation rows with that many rounds. The model then knows the most
    recent weeks before the test window, which is what lets a retrained challenger learn a change
    in the world (e.g. a new sales channel) instead of only being judged on it.

    ``text_columns`` (the text-classification template, which needs at least one): free text
    hashed into ``text_features`` sparse columns of words and word pairs; the naive baseline is
    then a logistic regression on the same hashed text.
    """
    task = TEMPLATE_TASK[template]
    if (template == "text_classification") != bool(text_columns):
        raise ValueError("the text_classification template needs text_columns; other templates take none"
                         f" (template {template!r}, text_columns {list(text_columns)})")
    missing = [c for c in text_columns if c not in feature_columns]
    if missing:
        raise ValueError(f"text columns {missing} are not among the feature columns")
    params = {**objective_params(engine, template, metric), **(params or {})} if metric else params
    frame = frame.sort(time_column)
    times = frame[time_column].to_numpy()
    train_idx, valid_idx, test_idx = time_split(times)
    X, categories = encode_features(frame, feature_columns, {c: text_encoding(text_features) for c in text_columns})
    names = matrix_columns(feature_columns, categories)
    y = frame[target].cast(pl.Float64).to_numpy()
    model = train_model(
        task, engine, X[train_idx], y[train_idx], X[valid_idx], y[valid_idx],
        feature_names=names, params=params, device=device, seed=seed,
    )
    if refit:
        early = model
        fit_idx = np.concatenate([train_idx, valid_idx])
        model = train_model(
            task, engine, X[fit_idx], y[fit_idx], X[valid_idx], y[valid_idx], feature_names=names,
            params=params, device=device, seed=seed, num_boost_round=max(early.best_iteration, 1), early_stopping_rounds=0,
        )
        model.training_seconds += early.training_seconds
    model.feature_names = list(feature_columns)  # what scoring passes to encode_features
    prediction = model.predict(X[test_idx])
    y_test = y[test_idx]
    if template == "text_classification":
        metrics = classification_metrics(y_test, prediction)
        hashed = [i for i, name in enumerate(names) if name not in feature_columns and input_column(name) in text_columns]
        baseline = linear_text_baseline(X[:, hashed], y, train_idx, test_idx, seed)
        baseline_metrics = classification_metrics(y_test, baseline)
        baseline_name = "linear (logistic regression on the hashed text)"
    elif task == "binary":
        metrics = classification_metrics(y_test, prediction)
        baseline = prior_rate_baseline(y[train_idx], len(test_idx))
        baseline_metrics, baseline_name = classification_metrics(y_test, baseline), "prior rate"
    else:
        metrics = regression_metrics(y_test, prediction)
        if template == "forecasting":
            baseline = seasonal_naive(frame[SEASONAL_LAG_COLUMN].to_numpy()[test_idx])
            baseline_name = "seasonal naive (same weekday last week)"
        else:
            baseline, baseline_name = mean_baseline(y[train_idx], len(test_idx)), "training mean"
        baseline_metrics = regression_metrics(y_test, baseline)
    test_times = times[test_idx]
    segments = segment_metrics(frame[test_idx], y_test, prediction, task, segment_columns,
                               baseline=baseline if template == "forecasting" else None)
    return TemplateResult(
        model=model,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        baseline_name=baseline_name,
        rows={"train": len(train_idx), "valid": len(valid_idx), "test": len(test_idx)},
        test_window=(str(test_times.min()), str(test_times.max())),
        categories=categories,
        segment_metrics=segments,
    )


def linear_text_baseline(words, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
                         seed: int = 0) -> np.ndarray:
    """Probabilities of a logistic regression on the hashed ``words`` alone (rows scaled to unit
    length): what a plain bag-of-words model gets, which the boosted model with its context must beat."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize

    if len(np.unique(y[train_idx])) < 2:
        return prior_rate_baseline(y[train_idx], len(test_idx))
    words = normalize(words)
    linear = LogisticRegression(C=1.0, max_iter=200, random_state=seed).fit(words[train_idx], y[train_idx])
    return linear.predict_proba(words[test_idx])[:, 1]


def evaluate_on_holdout(spec, registry, alias: str, frame: pl.DataFrame, window: tuple[str, str],
                        time_column: str = "split_time") -> dict[str, float]:
    """Metrics of a registered model on the rows of ``frame`` whose time falls in ``window``.

    Champion and challenger are compared on the same rows, with each model's own feature list and
    category codes from its manifest.
    """
    version = registry.get(spec.name, alias)
    model = registry.load_model(spec.name, alias)
    categories = version.manifest.get("extra", {}).get("categories", {})
    as_text = frame[time_column].cast(pl.String)
    holdout = frame.filter((as_text >= window[0]) & (as_text <= window[1]))
    X, _ = encode_features(holdout, list(model.feature_names), categories)
    y = holdout[spec.target].cast(pl.Float64).to_numpy()
    prediction = model.predict(X)
    if TEMPLATE_TASK[spec.template] == "binary":
        return classification_metrics(y, prediction)
    return regression_metrics(y, prediction)
