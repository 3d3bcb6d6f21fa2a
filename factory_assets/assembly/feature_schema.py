"""The feature contract of a model: recorded at training, checked before every scoring request.

Pure (polars only, no Dagster). A department that scores its own data sends what it has: numbers as
text from a CSV, 0/1 for booleans, store ids as integers. ``validate_features`` casts that to the
types the model was trained on and says, per column, what does not fit and what to do about it.
Only input the model cannot read at all is an error; input it can read but may score less well
(nulls, unknown categories, values outside the training range) is a warning, because the engines
treat missing values natively and refusing a whole batch for one odd row helps nobody.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import polars as pl

#: How many offending rows (and values) a problem names; ``count`` has the total.
SHOWN_ROWS = 5
#: The column name used for problems about the input as a whole (empty, unreadable).
INPUT = "(input)"

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
_TEXT = (pl.String, pl.Categorical, pl.Enum)


@dataclass(frozen=True)
class FeatureProblem:
    """One thing wrong with one column: what, where (0-based rows, first few), and what to do."""

    column: str
    problem: str
    fix: str
    rows: list[int] = field(default_factory=list)
    count: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.column}: {self.problem}. Fix: {self.fix}"


@dataclass
class ValidationResult:
    frame: pl.DataFrame  # the input cast to the schema's types, extra columns kept
    errors: list[FeatureProblem] = field(default_factory=list)
    warnings: list[FeatureProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class ScoringInputError(ValueError):
    """The input cannot be scored; ``problems`` says why, one entry per column."""

    def __init__(self, problems: list[FeatureProblem], *, context: str = "the input cannot be scored"):
        self.problems = list(problems)
        self.context = context
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join([f"{self.context}:", *(f"  - {p}" for p in self.problems)])


# --------------------------------------------------------------------------------------
# Recording the contract at training time
# --------------------------------------------------------------------------------------


def feature_kind(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype in _TEXT:
        return "categorical"
    if dtype.is_numeric() or dtype == pl.Null:
        return "numeric"
    raise TypeError(f"feature of type {dtype} has no scoring contract; derive a number, flag or category from it")


def infer_feature_schema(frame: pl.DataFrame, columns: list[str], categories: dict[str, list[str]]) -> list[dict]:
    """The contract of ``columns`` as seen in the training ``frame``, in model order.

    ``categories`` are the code lists ``encode_features`` used; a text column missing from it gets
    the list ``encode_features`` would derive (sorted distinct values), so the contract always
    matches the codes.
    """
    from factory_assets.assembly.text import is_text_encoding

    schema = []
    for name in columns:
        series = frame[name]
        kind = "text" if is_text_encoding(categories.get(name)) else feature_kind(series.dtype)
        entry = {"name": name, "kind": kind, "nullable": bool(_missing(series).any()),
                 "min": None, "max": None, "categories": None}
        if kind == "numeric":
            values = series.cast(pl.Float64)
            finite = values.filter(values.is_finite())
            if finite.len():
                entry["min"], entry["max"] = float(finite.min()), float(finite.max())
        elif kind == "categorical":
            known = categories.get(name)
            entry["categories"] = list(known) if known is not None else sorted(
                v for v in series.cast(pl.String).unique().to_list() if v is not None)
        schema.append(entry)
    return schema


# --------------------------------------------------------------------------------------
# Checking input at scoring time
# --------------------------------------------------------------------------------------


def validate_features(frame: pl.DataFrame, schema: list[dict]) -> ValidationResult:
    """Cast ``frame`` to ``schema`` and collect errors and warnings per column; raises nothing."""
    result = ValidationResult(frame=frame)
    if frame.height == 0:
        result.errors.append(FeatureProblem(
            INPUT, "the input has no rows", "send at least one row with the model's feature columns"))
        return result
    cast = {}
    for feature in schema:
        name = feature["name"]
        if name not in frame.columns:
            result.errors.append(FeatureProblem(
                name, f"column is missing ({_describe(feature)})",
                f"add a column named '{name}'; leave its values empty (null) where they are unknown",
                count=frame.height))
            continue
        series, error = _cast(frame[name], feature)
        if error:
            result.errors.append(error)
            continue
        cast[name] = series
        result.warnings.extend(_soft_checks(series, feature))
    if cast:
        result.frame = frame.with_columns(list(cast.values()))
    return result


def _cast(series: pl.Series, feature: dict) -> tuple[pl.Series, FeatureProblem | None]:
    """``series`` in the feature's type, or an error naming the values that do not convert."""
    kind, name = feature["kind"], series.name
    dtype = series.dtype
    if kind in ("categorical", "text"):
        if dtype in _TEXT or dtype.is_numeric() or dtype in (pl.Boolean, pl.Null):
            return series.cast(pl.String), None
        return series, _wrong_type(series, feature)
    if dtype in _TEXT:
        col = pl.col(name).cast(pl.String).str.strip_chars()
        text = series.to_frame().select(pl.when(col != "").then(col)).to_series()  # blank -> null
        if kind == "numeric":
            out = text.cast(pl.Float64, strict=False)
        else:
            lower = pl.col(name).str.to_lowercase()
            out = text.to_frame().select(pl.when(lower.is_in(sorted(_TRUE))).then(True)
                                         .when(lower.is_in(sorted(_FALSE))).then(False).alias(name)).to_series()
        bad = text.is_not_null() & out.is_null()
        if bad.any():
            return series, _unreadable(series, bad, feature)
        return out, None
    if kind == "numeric" and (dtype.is_numeric() or dtype in (pl.Boolean, pl.Null)):
        return series.cast(pl.Float64), None
    if kind == "boolean":
        if dtype in (pl.Boolean, pl.Null):
            return series.cast(pl.Boolean), None
        if dtype.is_numeric():
            bad = series.is_not_null() & ~series.cast(pl.Float64).is_in([0.0, 1.0])
            if bad.any():
                return series, _unreadable(series, bad, feature)
            return series.cast(pl.Float64).cast(pl.Boolean), None
    return series, _wrong_type(series, feature)


def _soft_checks(series: pl.Series, feature: dict) -> list[FeatureProblem]:
    """Warnings for values the model reads but was not trained on."""
    out = []
    missing = _missing(series)
    if not feature.get("nullable", True) and missing.any():
        out.append(_problem(
            series.name, missing,
            "row(s) empty, but the model never saw this column empty in training; they are scored as missing",
            "fill in the value where it is known"))
    if feature["kind"] == "numeric" and (feature.get("min") is not None or feature.get("max") is not None):
        lo = -math.inf if feature.get("min") is None else feature["min"]
        hi = math.inf if feature.get("max") is None else feature["max"]
        outside = ~missing & ((series < lo) | (series > hi))
        if outside.any():
            out.append(_problem(
                series.name, outside,
                f"value(s) outside the training range [{lo:g}, {hi:g}]; the model predicts them as if they were at "
                "the nearest edge", "check units and typing; predictions for these rows are less reliable",
                values=series))
    if feature["kind"] == "categorical" and feature.get("categories") is not None:
        known = pl.Series(feature["categories"], dtype=pl.String)
        unknown = series.is_not_null() & ~series.is_in(known)
        if unknown.any():
            out.append(_problem(
                series.name, unknown, "value(s) not among the categories the model was trained on; they are scored as missing",
                f"use one of the training categories ({_shown(feature['categories'])})", values=series))
    return out


def _missing(series: pl.Series) -> pl.Series:
    missing = series.is_null()
    if series.dtype.is_float():
        missing = missing | series.is_nan()
    return missing


def _problem(column: str, mask: pl.Series, what: str, fix: str, *, values: pl.Series | None = None) -> FeatureProblem:
    rows = mask.arg_true().head(SHOWN_ROWS).to_list()
    count = int(mask.sum())
    where = ", ".join(f"row {r}" + (f" = {_value(values[r])}" if values is not None else "") for r in rows)
    more = f", ... ({count} rows in all)" if count > len(rows) else ""
    return FeatureProblem(column, f"{count} {what} ({where}{more})", fix, rows, count)


def _unreadable(series: pl.Series, bad: pl.Series, feature: dict) -> FeatureProblem:
    expected = "numbers" if feature["kind"] == "numeric" else "true/false (or 1/0)"
    fix = ("send numbers with '.' as the decimal point" if feature["kind"] == "numeric"
           else "send true/false, 1/0 or yes/no") + "; leave the value empty (null) where it is unknown"
    return _problem(series.name, bad, f"value(s) are not {expected}", fix, values=series)


def _wrong_type(series: pl.Series, feature: dict) -> FeatureProblem:
    return FeatureProblem(series.name, f"column has type {series.dtype}, expected {_describe(feature)}",
                          f"send {_describe(feature)}", [], series.len())


def _describe(feature: dict) -> str:
    if feature["kind"] == "categorical":
        cats = feature.get("categories")
        return f"text, one of {_shown(cats)}" if cats else "text"
    return {"numeric": "a number", "boolean": "true/false", "text": "free text"}[feature["kind"]]


def _shown(values: list, limit: int = 10) -> str:
    head = ", ".join(repr(v) for v in values[:limit])
    return head + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _value(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
