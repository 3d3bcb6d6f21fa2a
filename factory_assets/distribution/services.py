"""The catalogue of reusable AI services: declared, owned, versioned things any department calls
with its own rows, the same way from Python, the CLI (``factory services``) and HTTP
(``distribution/asgi.py``).

Each service has an input and an output contract (columns, types, whether null is allowed), an
owner and a risk tier. Two kinds:

- ``model``: every use case with a champion; its input contract is the feature contract the
  champion was trained with, its owner and tier the use case's.
- ``function``: declared in code here, e.g. ``sentiment``, the lexicon scorer whose terms are the
  dbt project's (``sentiment_positive_terms`` / ``sentiment_negative_terms``), so a department gets
  the score the nightly tickets product computes, with nothing to download.

Every call is recorded by ``UsageLog`` (caller, service, version, rows, latency, outcome; never the
rows' values) and the usage lands as the raw source ``service_usage``: the feedback layer sees who
uses what. The policy decides who may call a service of each tier (``services`` in
governance/policy.yaml). Pure: polars, the registry and the policy, no Dagster.
"""

from __future__ import annotations

import fcntl
import functools
import json
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from factory_assets.assembly.feature_schema import INPUT, FeatureProblem, ScoringInputError
from factory_assets.distribution.service import (
    ModelNotFoundError,
    ModelRefusedError,
    ScoringService,
    feature_schema,
    to_frame,
)
from factory_assets.settings import DBT_PROJECT_DIR

#: The raw source the usage lands as (data_contracts/raw/service_usage.odcs.yaml).
USAGE_SOURCE = "service_usage"
#: Who a caller is when it does not say (HTTP without an X-Caller header).
ANONYMOUS = "anonymous"


class ServiceNotFoundError(ModelNotFoundError):
    """No such service; the message lists the catalogue."""


class CallerNotAllowedError(PermissionError):
    """The policy does not let this caller call a service of this tier."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # "number" | "integer" | "string" | "boolean"
    nullable: bool = True
    description: str = ""
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def json_schema(self) -> dict:
        """The column as a JSON Schema property (the OpenAPI document's)."""
        schema: dict[str, Any] = {"type": [self.type, "null"] if self.nullable else self.type}
        if self.description:
            schema["description"] = self.description
        if self.categories is not None:
            schema["enum"] = [*self.categories, *([None] if self.nullable else [])]
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


@dataclass(frozen=True)
class ServiceSpec:
    """What the catalogue says about one service."""

    name: str
    kind: str  # "model" | "function"
    version: str
    owner: str
    risk_tier: str
    description: str
    inputs: tuple[Column, ...]
    outputs: tuple[Column, ...]

    def summary(self) -> dict:
        return {"name": self.name, "kind": self.kind, "version": self.version, "owner": self.owner,
                "risk_tier": self.risk_tier, "description": self.description}

    def describe(self) -> dict:
        return {**self.summary(), "input_contract": [asdict(c) for c in self.inputs],
                "output_contract": [asdict(c) for c in self.outputs]}


@dataclass
class ServiceResult:
    """One call's outputs, one row per input row, in input order."""

    service: str
    version: str
    outputs: pl.DataFrame
    warnings: list[FeatureProblem] = field(default_factory=list)


# ---- the sentiment scorer ---------------------------------------------------------------------


@functools.cache
def sentiment_lexicon(project_dir: Path = DBT_PROJECT_DIR) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(positive, negative) terms: the dbt project's vars, the one place they are declared."""
    found = (yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}).get("vars", {})
    return tuple(found["sentiment_positive_terms"]), tuple(found["sentiment_negative_terms"])


def _matcher(terms: tuple[str, ...]) -> re.Pattern:
    return re.compile(r"\b(" + "|".join(terms) + r")\b")


def sentiment_scores(texts: list[str | None], lexicon: tuple[tuple[str, ...], tuple[str, ...]] | None = None) -> pl.DataFrame:
    """Per text: (positive - negative matches) / (positive + negative), 0 when none; the dbt macro
    ``sentiment_score`` on the same lower-cased text."""
    positive, negative = lexicon or sentiment_lexicon()
    good, bad = _matcher(positive), _matcher(negative)
    pos = [len(good.findall((t or "").lower())) for t in texts]
    neg = [len(bad.findall((t or "").lower())) for t in texts]
    score = [0.0 if p + n == 0 else (p - n) / (p + n) for p, n in zip(pos, neg, strict=True)]
    return pl.DataFrame({"sentiment": score, "positive_terms": pos, "negative_terms": neg},
                        schema={"sentiment": pl.Float64, "positive_terms": pl.Int64, "negative_terms": pl.Int64})


SENTIMENT = ServiceSpec(
    name="sentiment", kind="function", version="lexicon-1", owner="customer-analytics@factory.example",
    risk_tier="low",
    description="Sentiment of free text in [-1, 1] from the dbt project's lexicon: the score the nightly "
                "tickets product gives. The text is scored, never stored or returned.",
    inputs=(Column("text", "string", description="the text to score (null scores 0)"),),
    outputs=(Column("sentiment", "number", False, "(positive - negative) / (positive + negative) matches; 0 when none",
                    minimum=-1.0, maximum=1.0),
             Column("positive_terms", "integer", False, "matches of the positive terms", minimum=0),
             Column("negative_terms", "integer", False, "matches of the negative terms", minimum=0)),
)


def _call_sentiment(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[FeatureProblem]]:
    if "text" not in frame.columns:
        raise ScoringInputError([FeatureProblem("text", "column is missing", 'send {"text": "..."} in every row')],
                                context="the input does not fit service sentiment")
    if frame.schema["text"] not in (pl.String, pl.Null):
        raise ScoringInputError([FeatureProblem("text", f"must be text, got {frame.schema['text']}",
                                                "send the text as a JSON string")],
                                context="the input does not fit service sentiment")
    return sentiment_scores(frame["text"].cast(pl.String).to_list(), sentiment_lexicon()), []


#: Function services: their spec and the function of a frame that computes their outputs.
FUNCTIONS: dict[str, tuple[ServiceSpec, Callable[[pl.DataFrame], tuple[pl.DataFrame, list[FeatureProblem]]]]] = {
    SENTIMENT.name: (SENTIMENT, _call_sentiment),
}


# ---- usage -----------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class UsageLog:
    """Who called what: one JSON line per call in ``<folder>/<day>.jsonl`` (UTC day of the call);
    a finished day is delivered to the landing zone as ``service_usage_<day>.jsonl``, where the
    nightly run ingests it like any raw source. Appends and deliveries take a file lock, so several
    server processes share one folder and no line is written to a day already delivered."""

    def __init__(self, folder: Path, landing: Path):
        self.folder, self.landing = Path(folder), Path(landing)

    @contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record(self, *, caller: str, service: str, version: str | None, channel: str, rows: int,
               latency_ms: float, status: str, error: str | None = None) -> None:
        with self._locked():
            now = _utcnow()
            line = {"called_at": now.isoformat(timespec="microseconds"), "caller": caller, "service": service,
                    "service_version": version, "channel": channel, "rows": rows,
                    "latency_ms": round(latency_ms, 3), "status": status, "error": error}
            with open(self.folder / f"{now.date().isoformat()}.jsonl", "a") as out:
                out.write(json.dumps(line) + "\n")
            self._deliver_before(now.date())

    def deliver(self, today: date | None = None) -> list[Path]:
        """Move every finished day's log into landing; returns the landing files written."""
        with self._locked():
            return self._deliver_before(today or _utcnow().date())

    def _deliver_before(self, today: date) -> list[Path]:
        delivered = []
        for log in sorted(self.folder.glob("*.jsonl")):
            try:
                day = date.fromisoformat(log.stem)
            except ValueError:
                continue
            if day >= today:
                continue
            target = self.landing / USAGE_SOURCE / f"{USAGE_SOURCE}_{day.isoformat()}.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            log.replace(target)
            delivered.append(target)
        return delivered

    def records(self, day: date | None = None) -> list[dict]:
        """The calls logged for ``day`` (default today) and not delivered yet."""
        log = self.folder / f"{(day or _utcnow().date()).isoformat()}.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# ---- the catalogue ---------------------------------------------------------------------------


def usage_log(paths) -> UsageLog:
    """The usage log of a factory home (``FactoryPaths``): calls under ``services/usage``, delivered to landing."""
    return UsageLog(paths.home / "services" / "usage", paths.landing)


def home_catalogue(paths) -> ServiceCatalogue:
    """The catalogue of a factory home as the CLI and ``factory serve`` use it: the workspace's use
    cases (owner, tier), the policy in force, and usage recorded under the home."""
    from factory_assets.assembly.specs import load_use_cases
    from factory_assets.governance.facts import current_policy

    return ServiceCatalogue(paths.artifacts / "models", use_cases=load_use_cases(), policy=current_policy(),
                            usage=usage_log(paths))


def _column_of_feature(feature: dict) -> Column:
    """A model's recorded feature (feature_schema.py: numeric, boolean, categorical or text) as a contract column."""
    categorical = feature.get("kind") == "categorical"
    kind = {"categorical": "string", "text": "string", "boolean": "boolean"}.get(feature.get("kind"), "number")
    return Column(feature["name"], kind, bool(feature.get("nullable", True)),
                  categories=tuple(feature["categories"]) if categorical and feature.get("categories") else None,
                  minimum=feature.get("min"), maximum=feature.get("max"))


class ServiceCatalogue:
    """The services of one factory home: its champions and the function services.

    ``use_cases``: name -> spec (owner, risk tier, description); ``policy``: the policy in force,
    or None to allow every caller; ``usage``: where calls are recorded, or None not to record."""

    def __init__(self, registry_root: Path | str, use_cases: dict | None = None, policy=None,
                 usage: UsageLog | None = None):
        self.scoring = ScoringService(registry_root)
        self.use_cases = use_cases or {}
        self.policy = policy
        self.usage = usage

    def specs(self) -> list[ServiceSpec]:
        models = []
        for use_case in self.scoring.registry.use_cases():
            if "champion" in self.scoring.registry.aliases(use_case):
                try:
                    models.append(self.spec(use_case))
                except ModelNotFoundError:  # a champion whose files changed: it serves nothing
                    continue
        return [*models, *(spec for spec, _ in FUNCTIONS.values())]

    def spec(self, name: str, alias: str = "champion") -> ServiceSpec:
        """The service ``name``; for a model service, the version behind ``alias`` (or a version id)."""
        if name in FUNCTIONS:
            return FUNCTIONS[name][0]
        try:
            mv = self.scoring.verified(name, alias)
        except ModelRefusedError:
            raise
        except ModelNotFoundError:
            if name in self.scoring.registry.use_cases():
                raise  # the use case exists: the message says which aliases and versions it has
            raise self._not_found(name) from None
        use_case = self.use_cases.get(name)
        output = Column("prediction", "number", False, f"the champion's {mv.task} prediction")
        return ServiceSpec(
            name=name, kind="model", version=mv.version,
            owner=use_case.owner if use_case else "unknown",
            risk_tier=use_case.risk_tier if use_case else "high",  # undeclared: the strictest tier
            description=(use_case.description.strip() if use_case else f"the champion of {name}"),
            inputs=tuple(_column_of_feature(f) for f in feature_schema(mv)),
            outputs=(output, Column("model_version", "string", False, "the version that scored the row")),
        )

    def _owner_and_tier(self, name: str) -> tuple[str, str]:
        """A service's owner and tier from its declaration (a registered model nobody declared: the
        strictest tier); ServiceNotFoundError for a name that is no service."""
        if name in FUNCTIONS:
            return FUNCTIONS[name][0].owner, FUNCTIONS[name][0].risk_tier
        if name in self.use_cases:
            return self.use_cases[name].owner, self.use_cases[name].risk_tier
        if name in self.scoring.registry.use_cases():
            return "unknown", "high"
        raise self._not_found(name)

    def _not_found(self, name: str) -> ServiceNotFoundError:
        known = [u for u in self.scoring.registry.use_cases() if "champion" in self.scoring.registry.aliases(u)]
        return ServiceNotFoundError(f"no service {name!r}; the catalogue has {sorted([*known, *FUNCTIONS])} "
                                    "(`factory services` lists them)")

    def call(self, name: str, data: Any, *, caller: str = ANONYMOUS, channel: str = "python",
             alias: str = "champion") -> ServiceResult:
        """Call service ``name`` on ``data`` (rows, a frame or a file path) as ``caller``; recorded as usage.
        ``alias``: for a model service, another alias or a version id than its champion.

        Raises ServiceNotFoundError, CallerNotAllowedError, or ScoringInputError for input that does
        not fit the service's input contract."""
        started, rows, version = time.perf_counter(), 0, None
        status, error = "error", None
        try:
            frame = to_frame(data)
            rows = frame.height
            owner, tier = self._owner_and_tier(name)  # no model is loaded or hashed before the policy says yes
            if self.policy is not None and not self.policy.may_call(tier, caller):
                status = "refused"
                raise CallerNotAllowedError(
                    f"caller {caller!r} may not call {name} (risk tier {tier}): the policy lets "
                    f"{', '.join(self.policy.callers(tier))} call {tier}-tier services. Ask the "
                    f"service's owner ({owner}) or the risk team to add the caller to `services` in the policy.")
            if frame.height == 0:
                raise ScoringInputError([FeatureProblem(INPUT, "there are no rows", "send at least one row")])
            if name in FUNCTIONS:
                if alias != "champion":
                    raise ServiceNotFoundError(f"{name} is a function service: it has no alias or version {alias!r}")
                spec, compute = FUNCTIONS[name]
                version = spec.version
                outputs, warnings = compute(frame)
            else:
                scored = self.scoring.score(name, frame, alias=alias)  # verifies the model's files, as nightly scoring
                version = scored.model_version
                outputs, warnings = scored.frame.select("prediction", "model_version"), scored.warnings
            status = "ok"
            return ServiceResult(name, version, outputs, warnings)
        except ScoringInputError:
            status, error = "bad_input", "input does not fit the contract"
            raise
        except ModelNotFoundError as exc:
            status, error = "not_found", type(exc).__name__
            raise
        except CallerNotAllowedError:
            error = "caller not allowed by the policy"
            raise
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            if self.usage is not None:
                self.usage.record(caller=caller, service=name, version=version, channel=channel, rows=rows,
                                  latency_ms=1000 * (time.perf_counter() - started), status=status, error=error)
