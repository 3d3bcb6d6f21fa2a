"""Use-case specs: one YAML file per use case in ``use_cases/<name>.yaml``, validated with pydantic.

Pure layer (no Dagster import). ``load_use_cases()`` returns ``{name: UseCaseSpec}``; any mistake
raises ``UseCaseSpecError`` naming the file, the field and (where it applies) the allowed values.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from factory_assets.assembly.features import FEATURE_SETS
from factory_assets.lib.yaml_files import load_yaml

__all__ = ["USE_CASES_DIR", "UseCaseSpec", "UseCaseSpecError", "load_use_case", "load_use_cases"]

USE_CASES_DIR = Path(__file__).parent / "use_cases"

Template = Literal["binary_classification", "regression", "forecasting"]
Metric = Literal["auc", "pr_auc", "log_loss", "mae", "rmse", "wape"]
RiskTier = Literal["low", "medium", "high"]
Engine = Literal["lightgbm", "xgboost", "both"]

_OWNER = re.compile(r"^(team:[a-z0-9][a-z0-9_-]*|[^@\s]+@[^@\s]+\.[^@\s]+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_METRICS_BY_TEMPLATE = {
    "binary_classification": {"auc", "pr_auc", "log_loss"},
    "regression": {"mae", "rmse", "wape"},
    "forecasting": {"mae", "rmse", "wape"},
}


class UseCaseSpecError(ValueError):
    """A use-case file is missing, unreadable or invalid (the message names file and field)."""


class UseCaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = Field(min_length=1)
    template: Template
    #: The point-in-time builder the rows come from: a core one (``training_sets.CORE_TRAINING_SETS``:
    #: order_lines, product_warehouse_days, customer_cutoffs) or one a business unit passes to
    #: ``use_case_assets``; the name is checked there, when the definitions are built.
    training_set: str
    target: str = Field(min_length=1)
    feature_sets: tuple[str, ...] = Field(min_length=1)
    entity: tuple[str, ...] = Field(min_length=1)
    time_column: str = Field(min_length=1)
    horizon_days: int = Field(ge=0)
    metric: Metric
    risk_tier: RiskTier
    business_unit: str = Field(min_length=1)
    owner: str
    engine: Engine
    #: What the predictions are used for (governance/policy.yaml says which uses each tier may serve).
    uses: tuple[str, ...] = ()
    #: Features left out of drift monitoring, e.g. the batch's own position in the calendar (day of
    #: week, weekend days ahead): they differ from a two-week reference by construction.
    drift_exclude: tuple[str, ...] = ()
    #: The training set keeps its newest whole days up to this many rows (null: no limit). Older rows
    #: add little to a model of recent behaviour; the limit bounds training memory and time however
    #: long the history grows (2M rows x 40 features is about 0.3 GB as float32).
    max_training_rows: int | None = Field(default=2_000_000, ge=1_000)
    value: dict[str, float] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be snake_case (a-z, 0-9, _)")
        return v

    @field_validator("training_set")
    @classmethod
    def _training_set(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be the snake_case name of a training-set builder (a-z, 0-9, _)")
        return v

    @field_validator("entity", mode="before")
    @classmethod
    def _entity(cls, v):
        return (v,) if isinstance(v, str) else v

    @field_validator("feature_sets")
    @classmethod
    def _feature_sets(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in v if n not in FEATURE_SETS]
        if unknown:
            raise ValueError(f"unknown feature set(s) {unknown}; allowed: {sorted(FEATURE_SETS)}")
        if len(set(v)) != len(v):
            raise ValueError("duplicate feature set names")
        return v

    @field_validator("uses", mode="before")
    @classmethod
    def _uses(cls, v):
        v = (v,) if isinstance(v, str) else tuple(v or ())
        bad = [u for u in v if not isinstance(u, str) or not _NAME.match(u)]
        if bad:
            raise ValueError(f"uses must be snake_case names, got {bad}")
        return v

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        if not _OWNER.match(v):
            raise ValueError("must be an email address or 'team:<name>'")
        return v

    @model_validator(mode="after")
    def _metric_fits_template(self) -> "UseCaseSpec":
        allowed = _METRICS_BY_TEMPLATE[self.template]
        if self.metric not in allowed:
            raise ValueError(f"field 'metric': {self.metric!r} does not fit template {self.template!r}; allowed: {sorted(allowed)}")
        return self

    @property
    def engines(self) -> tuple[str, ...]:
        return ("lightgbm", "xgboost") if self.engine == "both" else (self.engine,)


def _allowed(field: str) -> str:
    info = UseCaseSpec.model_fields.get(field)
    if info is None:
        return f"allowed fields: {sorted(UseCaseSpec.model_fields)}"
    args = typing.get_args(info.annotation)
    if typing.get_origin(info.annotation) is Literal:
        return f"allowed values: {list(args)}"
    return ""


def load_use_case(path: str | Path) -> UseCaseSpec:
    """Load and validate one use-case YAML file; the name must equal the file stem."""
    path = Path(path)
    try:
        raw = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UseCaseSpecError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise UseCaseSpecError(f"{path}: expected a mapping of fields, got {type(raw).__name__}")
    try:
        spec = UseCaseSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "<spec>"
            top = str(err["loc"][0]) if err["loc"] else ""
            msg = err["msg"] if err["type"] != "extra_forbidden" else "unknown field"
            hint = _allowed(top) if err["type"] in ("literal_error", "extra_forbidden") else ""
            problems.append(f"field '{field}': {msg}" + (f" ({hint})" if hint else ""))
        raise UseCaseSpecError(f"{path}: invalid use case: " + "; ".join(problems)) from exc
    if spec.name != path.stem:
        raise UseCaseSpecError(f"{path}: field 'name': {spec.name!r} must equal the file name {path.stem!r}")
    return spec


def load_use_cases(folder: str | Path = USE_CASES_DIR) -> dict[str, UseCaseSpec]:
    """All ``*.yaml`` / ``*.yml`` use cases in ``folder``, by name (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UseCaseSpecError(f"{folder}: use-case folder not found")
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    specs: dict[str, UseCaseSpec] = {}
    for path in files:
        spec = load_use_case(path)
        if spec.name in specs:
            raise UseCaseSpecError(f"{path}: field 'name': duplicate use case {spec.name!r}")
        specs[spec.name] = spec
    return specs
