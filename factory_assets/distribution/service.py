"""Scoring as a service: any department scores its own rows against a registered model.

Pure (polars + the registry, no Dagster); the CLI and the HTTP endpoint are thin shells over
``ScoringService``. A request names a use case and an alias (or a version id); the input is checked
against the feature contract the model was trained with, then encoded with the model's own category
codes, exactly as in batch scoring, so a department gets the numbers the nightly run would give.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from factory_assets.assembly.registry import ModelRegistry, ModelVersion, RegistryIntegrityError, RegistryKeyError
from factory_assets.assembly.templates import encode_features
from factory_assets.assembly.feature_schema import (
    INPUT,
    FeatureProblem,
    ScoringInputError,
    validate_features,
)

#: File types ``score`` reads when given a path.
INPUT_SUFFIXES = (".csv", ".parquet", ".json", ".jsonl", ".ndjson")


class ModelNotFoundError(LookupError):
    """No such use case, alias or version; the message lists what exists."""


class ModelRefusedError(ModelNotFoundError):
    """The model exists but its manifest or files changed after registration: it does not score."""


@dataclass
class ScoredFrame:
    """The input rows with ``prediction`` and ``model_version`` appended, and what to know about them."""

    frame: pl.DataFrame
    use_case: str
    model_version: str
    warnings: list[FeatureProblem] = field(default_factory=list)

    @property
    def predictions(self) -> list[float]:
        return self.frame["prediction"].to_list()


class ScoringService:
    """Scores data against the models in a ``ModelRegistry`` folder; safe to share between threads."""

    def __init__(self, registry_root: Path | str):
        self.registry = ModelRegistry(registry_root)
        self._models: dict[tuple[str, str], Any] = {}  # versions are immutable: cache by version id
        self._lock = threading.Lock()

    # ---- lookup -------------------------------------------------------------------------

    def resolve(self, use_case: str, alias_or_version: str = "champion") -> ModelVersion:
        """The registered version behind an alias or version id, or ModelNotFoundError saying what exists."""
        try:
            return self.registry.get(use_case, alias_or_version)
        except RegistryIntegrityError as exc:
            raise ModelRefusedError(str(exc)) from None
        except RegistryKeyError as exc:
            known = self.registry.use_cases()
            if not known:
                raise ModelNotFoundError(f"no models are registered (registry folder {self.registry.root})") from None
            raise ModelNotFoundError(str(exc)) from None
        except json.JSONDecodeError:  # a corrupt manifest is the server's problem, not the caller's
            raise
        except ValueError:  # a name the registry refuses (e.g. "../x"): it cannot exist
            raise ModelNotFoundError(
                f"no model {use_case!r} / {alias_or_version!r}; registered use cases: {self.registry.use_cases()}"
            ) from None

    def list_models(self) -> dict[str, dict]:
        """Per use case: its aliases and its versions (newest first)."""
        return {
            uc: {"aliases": self.registry.aliases(uc), "versions": [mv.version for mv in self.registry.list_versions(uc)]}
            for uc in self.registry.use_cases()
        }

    def verified(self, use_case: str, alias_or_version: str = "champion") -> ModelVersion:
        """``resolve``, refusing (ModelRefusedError) a version whose manifest or files changed; the files are
        hashed when the model is first loaded, the manifest on every call."""
        mv = self.resolve(use_case, alias_or_version)
        try:
            return self.registry.verify(use_case, mv.version, deep=(use_case, mv.version) not in self._models)
        except RegistryIntegrityError as exc:
            raise ModelRefusedError(str(exc)) from None

    def describe(self, use_case: str, alias_or_version: str = "champion") -> dict:
        """What a caller needs to build input for this model, and how good it was on its test window."""
        mv = self.verified(use_case, alias_or_version)
        aliases = self.registry.aliases(use_case)
        return {
            "use_case": use_case,
            "version": mv.version,
            "aliases": sorted(a for a, v in aliases.items() if v == mv.version),
            "engine": mv.engine,
            "task": mv.task,
            "template": mv.manifest.get("extra", {}).get("template"),
            "created_at": mv.created_at,
            "metrics": _finite(mv.metrics),
            "baseline_metrics": _finite(mv.baseline_metrics),
            "feature_schema": feature_schema(mv),
        }

    # ---- scoring ------------------------------------------------------------------------

    def score(self, use_case: str, data: Any, *, alias: str = "champion", version: str | None = None) -> ScoredFrame:
        """Validate ``data`` against the model's feature contract and append its predictions.

        ``data``: polars or pandas DataFrame, list of row dicts, or a .csv/.parquet/.json/.jsonl path.
        Raises ModelNotFoundError for an unknown model (ModelRefusedError for one whose files changed) and
        ScoringInputError for input it cannot read.
        """
        mv = self.verified(use_case, version or alias)
        frame = to_frame(data)
        checked = validate_features(frame, feature_schema(mv))
        if checked.errors:
            raise ScoringInputError(
                checked.errors,
                context=f"the input does not fit model {use_case} {mv.version} ({len(checked.errors)} problem(s))")
        model = self._model(mv)
        X, _ = encode_features(checked.frame, list(model.feature_names), _categories(mv))
        prediction = np.asarray(model.predict(X), dtype=np.float64)
        if mv.manifest.get("extra", {}).get("template") == "forecasting":
            prediction = np.clip(prediction, 0.0, None)  # as batch scoring: a forecast of units is never negative
        scored = checked.frame.with_columns(
            pl.Series("prediction", prediction, dtype=pl.Float64),
            pl.lit(mv.version, dtype=pl.String).alias("model_version"),
        )
        return ScoredFrame(scored, use_case, mv.version, checked.warnings)

    def _model(self, mv: ModelVersion):
        key = (mv.use_case, mv.version)
        with self._lock:
            if key not in self._models:
                try:
                    self._models[key] = self.registry.load_model(mv.use_case, mv.version)
                except RegistryIntegrityError as exc:
                    raise ModelRefusedError(str(exc)) from None
            return self._models[key]


# --------------------------------------------------------------------------------------
# Contract and input helpers
# --------------------------------------------------------------------------------------


def feature_schema(mv: ModelVersion) -> list[dict]:
    """The recorded contract, in model order; models registered without one get names + categories only."""
    recorded = {f["name"]: f for f in mv.manifest.get("extra", {}).get("feature_schema") or []}
    categories = _categories(mv)
    return [
        recorded.get(name) or {
            "name": name, "kind": "categorical" if name in categories else "numeric", "nullable": True,
            "min": None, "max": None, "categories": categories.get(name),
        }
        for name in mv.feature_names
    ]


def _categories(mv: ModelVersion) -> dict[str, list[str]]:
    """Category codes of the model: the manifest's, else those in the recorded contract."""
    extra = mv.manifest.get("extra", {})
    out = {f["name"]: f["categories"] for f in extra.get("feature_schema") or [] if f.get("categories") is not None}
    out.update(extra.get("categories") or {})
    return out


def to_frame(data: Any) -> pl.DataFrame:
    """``data`` as a polars frame; anything unreadable is a ScoringInputError about the input."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        return read_input_file(Path(data))
    if type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame":
        return _from_pandas(data)
    if isinstance(data, list):
        return rows_to_frame(data)
    raise ScoringInputError([FeatureProblem(
        INPUT, f"cannot score a {type(data).__name__}",
        "pass a polars or pandas DataFrame, a list of row dicts, or a path to a .csv/.parquet/.json/.jsonl file")])


def rows_to_frame(rows: Any) -> pl.DataFrame:
    """A list of JSON-like row dicts as a frame; a column of mixed types becomes text, for the validator to name."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None) if isinstance(rows, list) else None
        raise ScoringInputError([FeatureProblem(
            INPUT, "rows must be a list of objects (one {column: value} per row)"
            + (f"; row {bad} is a {type(rows[bad]).__name__}" if bad is not None else ""),
            'send [{"column": value, ...}, ...]', [bad] if bad is not None else [], 1)])
    try:
        return pl.DataFrame(rows, infer_schema_length=None)
    except Exception:  # types polars will not mix in one column: make those columns text
        names = list(dict.fromkeys(k for r in rows for k in r))
        columns = {}
        for name in names:
            values = [r.get(name) for r in rows]
            try:
                columns[name] = pl.Series(name, values)
            except Exception:
                columns[name] = pl.Series(name, [None if v is None else json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                                                 for v in values], dtype=pl.String)
        return pl.DataFrame(columns)


def read_input_file(path: Path) -> pl.DataFrame:
    """Read a scoring input file by its suffix; unreadable files are a ScoringInputError naming the file."""
    suffix = path.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise ScoringInputError([FeatureProblem(
            INPUT, f"{path.name}: cannot read files of type {suffix or '(none)'}", f"use one of {', '.join(INPUT_SUFFIXES)}")])
    if not path.is_file():
        raise ScoringInputError([FeatureProblem(INPUT, f"{path}: no such file", "check the path")])
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=None)
        if suffix == ".parquet":
            return pl.read_parquet(path)
        text = path.read_text(encoding="utf-8")
        if suffix == ".json":
            parsed = json.loads(text)
            return rows_to_frame(parsed.get("rows") if isinstance(parsed, dict) else parsed)
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ScoringInputError([FeatureProblem(
                        INPUT, f"{path.name} line {number} is not valid JSON ({exc.msg})",
                        "write one JSON object per line", [len(rows)], 1)]) from None
        return rows_to_frame(rows)
    except ScoringInputError:
        raise
    except Exception as exc:  # polars / pyarrow / json: say which file and why, not where in their code
        raise ScoringInputError([FeatureProblem(
            INPUT, f"{path.name} could not be read as {suffix[1:]}: {_first_line(exc)}",
            f"check that the file is valid {suffix[1:]} with a header / column names")]) from None


def _from_pandas(frame) -> pl.DataFrame:
    try:
        return pl.from_pandas(frame)
    except Exception:  # object columns mixing numbers and text: hand them over as text
        import pandas as pd

        mixed = {c: frame[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
                 for c in frame.columns if frame[c].dtype == object}
        return pl.from_pandas(pd.DataFrame({**{c: frame[c] for c in frame.columns}, **mixed}))


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if v is not None and math.isfinite(float(v)) else None) for k, v in values.items()}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
