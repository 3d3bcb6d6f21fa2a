"""Use-case declarations: one ``defs.yaml`` per use case, validated with pydantic.

Pure layer (no Dagster import). A use case is declared as an instance of the
``factory_assets.components.UseCase`` component in a location's defs folder
(``<package>/defs/use_cases/<name>/defs.yaml``); its ``attributes`` are a ``UseCaseSpec``.
``load_use_cases()`` finds every declaration of every location in ``workspace.yaml`` (the catalogue
governance, the CLI and the portfolio read); any mistake raises ``UseCaseSpecError`` naming the
file, the field and the fix.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from factory_assets.lib.yaml_files import read_yaml_file
from factory_assets.settings import PROJECT_ROOT

__all__ = [
    "USE_CASE_COMPONENT",
    "USE_CASES_DIR",
    "TrainingSetDecl",
    "UseCaseSpec",
    "UseCaseSpecError",
    "declaration_files",
    "load_use_case",
    "load_use_cases",
    "location_defs_folders",
    "use_case_paths",
]

#: The component type a use-case ``defs.yaml`` names.
USE_CASE_COMPONENT = "factory_assets.components.UseCase"
#: The core location's use cases.
USE_CASES_DIR = PROJECT_ROOT / "factory_assets" / "defs" / "use_cases"

Template = Literal["binary_classification", "regression", "forecasting", "text_classification"]
Metric = Literal["auc", "pr_auc", "log_loss", "mae", "rmse", "wape"]
RiskTier = Literal["low", "medium", "high"]
Engine = Literal["lightgbm", "xgboost", "both"]

_OWNER = re.compile(r"^(team:[a-z0-9][a-z0-9_-]*|[^@\s]+@[^@\s]+\.[^@\s]+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_BUILDER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_METRICS_BY_TEMPLATE = {
    "binary_classification": {"auc", "pr_auc", "log_loss"},
    "regression": {"mae", "rmse", "wape"},
    "forecasting": {"mae", "rmse", "wape"},
    "text_classification": {"auc", "pr_auc", "log_loss"},
}


class UseCaseSpecError(ValueError):
    """A use-case declaration is missing, unreadable or invalid (the message names file and field)."""


class TrainingSetDecl(BaseModel):
    """Where a use case's rows come from: declared SQL over data products, or a Python builder.

    Declared (any domain, no Python): ``spine`` is SQL (or one product's name) giving one row per
    prediction with the entity columns, the time column and any context columns; ``outcome`` is
    SQL giving the entity columns and the label (omit it when the spine carries the label).
    ``products`` names the data products the SQL reads, as ``{{ name }}``. Features are the declared
    feature sets, known at the end of ``time - feature_lag_days``.

    Builder (``builder: "package.module:NAME"``): a ``TrainingSetBuilder`` for shapes SQL cannot
    declare (the simulator's multi-horizon forecast, for one).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    builder: str | None = None
    products: tuple[str, ...] = ()
    spine: str | None = None
    outcome: str | None = None
    feature_lag_days: int = Field(default=1, ge=0)

    @field_validator("builder")
    @classmethod
    def _builder(cls, v: str | None) -> str | None:
        if v is not None and not _BUILDER.match(v):
            raise ValueError("must be 'package.module:NAME', the import path of a TrainingSetBuilder")
        return v

    @field_validator("products", mode="before")
    @classmethod
    def _products(cls, v):
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_kind(self) -> "TrainingSetDecl":
        if (self.builder is None) == (self.spine is None):
            raise ValueError("give either 'spine' (with 'products', optionally 'outcome') or 'builder', not both")
        if self.builder is not None and (self.products or self.outcome):
            raise ValueError("'products' and 'outcome' belong to a declared spine, not to a builder")
        if self.spine is not None and not self.products:
            raise ValueError("'products': name the data products the spine reads (as {{ name }} in the SQL)")
        return self

    @property
    def declared(self) -> bool:
        return self.spine is not None


class UseCaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = Field(min_length=1)
    template: Template
    #: Where the rows come from (``TrainingSetDecl``); a string is a builder's import path.
    training_set: TrainingSetDecl
    #: The label column.
    target: str = Field(min_length=1)
    #: Days after a row's time at the end of which its outcome is known.
    label_delay_days: int = Field(ge=0)
    feature_sets: tuple[str, ...] = ()
    entity: tuple[str, ...] = Field(min_length=1)
    #: Other key columns of the rows (a feature set's join key such as a patient id): never features.
    identifiers: tuple[str, ...] = ()
    #: Free-text columns of the rows (template text_classification): hashed words for the model,
    #: personal data for the policy, descriptors (never the text) in monitoring.
    text_columns: tuple[str, ...] = ()
    time_column: str = Field(min_length=1)
    horizon_days: int = Field(default=0, ge=0)
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
    #: The training set keeps its newest whole days up to this many rows (null: no limit): older rows
    #: add little to a model of recent behaviour, and the limit bounds training memory and time.
    max_training_rows: int | None = Field(default=2_000_000, ge=1_000)
    value: dict[str, float] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be snake_case (a-z, 0-9, _)")
        return v

    @field_validator("training_set", mode="before")
    @classmethod
    def _training_set(cls, v):
        return {"builder": v} if isinstance(v, str) else v

    @field_validator("entity", "identifiers", "drift_exclude", "text_columns", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return (v,) if isinstance(v, str) else v

    @field_validator("feature_sets")
    @classmethod
    def _feature_sets(cls, v: tuple[str, ...]) -> tuple[str, ...]:
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
    def _consistent(self) -> "UseCaseSpec":
        allowed = _METRICS_BY_TEMPLATE[self.template]
        if self.metric not in allowed:
            raise ValueError(f"field 'metric': {self.metric!r} does not fit template {self.template!r}; "
                             f"allowed: {sorted(allowed)}")
        if (self.template == "text_classification") != bool(self.text_columns):
            raise ValueError("field 'text_columns': the text_classification template needs at least one text column; "
                             "other templates take none")
        keys = {*self.entity, *self.identifiers, self.time_column, self.target}
        if keys & set(self.text_columns):
            raise ValueError(f"field 'text_columns': {sorted(keys & set(self.text_columns))} is a key, the time or the "
                             "target; a text column holds free text")
        if self.target in self.entity or self.target == self.time_column:
            raise ValueError(f"field 'target': {self.target!r} is also the entity or the time column; the label "
                             "must be a column of its own")
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


def validation_problems(exc: ValidationError) -> str:
    """A pydantic error as 'field X: what is wrong (allowed values)', one per problem."""
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<spec>"
        top = str(err["loc"][0]) if err["loc"] else ""
        msg = err["msg"] if err["type"] != "extra_forbidden" else "unknown field"
        msg = msg.removeprefix("Value error, ")
        hint = _allowed(top) if err["type"] in ("literal_error", "extra_forbidden") else ""
        problems.append(f"field '{field}': {msg}" + (f" ({hint})" if hint else ""))
    return "; ".join(problems)


def spec_from_attributes(raw, path: Path) -> UseCaseSpec:
    """Validate one declaration's attributes; the name must equal its folder's (or file's) name."""
    if not isinstance(raw, dict):
        raise UseCaseSpecError(f"{path}: expected a mapping of fields, got {type(raw).__name__}")
    try:
        spec = UseCaseSpec.model_validate(raw)
    except ValidationError as exc:
        raise UseCaseSpecError(f"{path}: invalid use case: {validation_problems(exc)}") from exc
    expected = path.parent.name if path.name in ("defs.yaml", "defs.yml") else path.stem
    if spec.name != expected:
        raise UseCaseSpecError(f"{path}: field 'name': {spec.name!r} must equal the folder name {expected!r} "
                               "(rename one of them)")
    return spec


def _read(path: Path):
    return read_yaml_file(path, UseCaseSpecError)


def load_use_case(path: str | Path) -> UseCaseSpec:
    """Load and validate one use-case declaration: a component ``defs.yaml`` (``type`` +
    ``attributes``) or a bare mapping of fields."""
    path = Path(path)
    raw = _read(path)
    if isinstance(raw, dict) and "type" in raw:
        if raw["type"] != USE_CASE_COMPONENT:
            raise UseCaseSpecError(f"{path}: field 'type': {raw['type']!r} is not {USE_CASE_COMPONENT!r}")
        raw = raw.get("attributes")
    return spec_from_attributes(raw, path)


def declaration_files(folder: Path, component: str = USE_CASE_COMPONENT) -> list[Path]:
    """Every ``defs.yaml`` under ``folder`` that instantiates ``component``, sorted."""
    found = []
    for path in sorted(Path(folder).rglob("defs.y*ml")):
        doc = _read(path)
        if isinstance(doc, dict) and doc.get("type") == component:
            found.append(path)
    return found


def location_defs_folders(workspace: Path | None = None) -> list[Path]:
    """The defs folder of every code location in ``workspace.yaml`` that has one, core first."""
    from factory_assets.lib.locations import workspace_locations

    return [loc.defs_folder for loc in workspace_locations(workspace) if loc.defs_folder.is_dir()]


def load_use_cases(folders: str | Path | Iterable[str | Path] | None = None) -> dict[str, UseCaseSpec]:
    """Every use case declared under ``folders`` (default: every location of ``workspace.yaml``), by
    name. The same name declared twice, in one location or across two, names both files."""
    return _declared(folders)[0]


def use_case_paths(folders: str | Path | Iterable[str | Path] | None = None) -> dict[str, Path]:
    """The declaration file of each use case under ``folders`` (as ``load_use_cases``), by name."""
    return _declared(folders)[1]


def _declared(folders) -> tuple[dict[str, UseCaseSpec], dict[str, Path]]:
    if folders is None:
        folders = location_defs_folders()
    elif isinstance(folders, (str, Path)):
        folders = [folders]
    specs: dict[str, UseCaseSpec] = {}
    where: dict[str, Path] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise UseCaseSpecError(f"{folder}: use-case folder not found")
        for path in declaration_files(folder):
            spec = load_use_case(path)
            if spec.name in specs:
                raise UseCaseSpecError(f"{path}: field 'name': duplicate use case {spec.name!r}, also declared in "
                                       f"{where[spec.name]}; use case names are unique across all locations")
            specs[spec.name], where[spec.name] = spec, path
    return dict(sorted(specs.items())), where


def use_case_file(name: str, folders: Iterable[Path] | None = None) -> Path | None:
    """The declaration file of use case ``name`` (None when no location declares it)."""
    for folder in folders or location_defs_folders():
        for path in declaration_files(folder):
            if path.parent.name == name:
                return path
    return None
