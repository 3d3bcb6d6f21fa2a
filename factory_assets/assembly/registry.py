"""Content-addressed model registry on the local file system (framework-free).

Layout::

    root/<use_case>/<version>/model.<ubj|txt>    engine-native model bytes
    root/<use_case>/<version>/manifest.json      identity + lineage + metrics
    root/<use_case>/aliases.json                 {"champion": "<version>", "challenger": ...}
    root/<use_case>/promotions.jsonl             append-only log of alias changes

``version`` = first 16 hex of sha256(model bytes + canonical JSON of the identity fields
{use_case, engine, feature_names}). Registering identical content twice returns the existing
version untouched (the first registration's metadata is kept). A version directory appears
atomically (written under a temporary name, then renamed); aliases.json is replaced atomically.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from .training import MODEL_FILE_EXT, PRIMARY_METRIC, TrainedModel, improvement

ALIASES: tuple[str, ...] = ("champion", "challenger")
MANIFEST = "manifest.json"
ALIASES_FILE = "aliases.json"
PROMOTIONS_FILE = "promotions.jsonl"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class RegistryKeyError(KeyError):
    """KeyError whose str() is the plain message (KeyError would repr() it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownUseCaseError(RegistryKeyError):
    pass


class UnknownVersionError(RegistryKeyError):
    pass


class UnknownAliasError(RegistryKeyError):
    pass


class RegistryIntegrityError(RuntimeError):
    """Stored model bytes do not hash to their version id."""


# --------------------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------------------


class ModelLike(Protocol):
    engine: str
    task: str
    feature_names: list[str]
    params: dict[str, Any]
    best_iteration: int
    training_seconds: float

    def to_bytes(self) -> bytes: ...


@dataclass(frozen=True)
class ModelVersion:
    use_case: str
    version: str
    path: Path  # the version directory
    manifest: dict[str, Any]

    @property
    def engine(self) -> str:
        return self.manifest["engine"]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.manifest.get("metrics") or {})

    @property
    def baseline_metrics(self) -> dict[str, float]:
        return dict(self.manifest.get("baseline_metrics") or {})

    @property
    def created_at(self) -> str:
        return self.manifest["created_at"]

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest["model_file"]


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    beats_baseline: bool
    improvement: float | None = None  # vs champion (None when there is none / not computed)


# --------------------------------------------------------------------------------------
# Promotion gate (pure)
# --------------------------------------------------------------------------------------


def decide_promotion(
    metric: str,
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    baseline: Mapping[str, float],
    margin: float,
    *,
    holdout_id: str | None = None,
) -> GateDecision:
    """Decide whether ``challenger`` should become champion.

    1. It must beat the baseline on ``metric`` (strictly); otherwise never promoted.
    2. No champion: promoted ("first model").
    3. Else promoted iff relative improvement over the champion >= ``margin``.

    The caller must evaluate challenger, champion and baseline on the same holdout
    (``holdout_id`` is recorded in the reason).
    """
    direction = PRIMARY_METRIC.get(metric)
    if direction is None:
        raise KeyError(f"unknown metric {metric!r}; known: {sorted(PRIMARY_METRIC)}")
    where = f" on holdout {holdout_id}" if holdout_id else ""
    c = float(challenger[metric])
    b = float(baseline[metric])
    vs_base = improvement(metric, c, b)
    beats = bool(vs_base > 0)  # NaN -> False
    if not beats:
        return GateDecision(
            promote=False,
            reason=(
                f"not promoted: challenger {metric}={c:.6g} does not beat baseline {metric}={b:.6g}{where} "
                f"({direction} is better)"
            ),
            beats_baseline=False,
        )
    if champion is None:
        return GateDecision(
            promote=True,
            reason=(
                f"first model: no champion; challenger {metric}={c:.6g} beats baseline {metric}={b:.6g}"
                f"{where} (relative improvement {vs_base:+.4%})"
            ),
            beats_baseline=True,
        )
    ch = float(champion[metric])
    imp = improvement(metric, c, ch)
    promote = bool(imp >= margin)  # NaN -> False
    verdict = "promoted" if promote else "not promoted"
    cmp = ">=" if promote else "<"
    return GateDecision(
        promote=promote,
        reason=(
            f"{verdict}: challenger {metric}={c:.6g} vs champion {metric}={ch:.6g}{where}: relative improvement "
            f"{imp:+.4%} {cmp} margin {margin:.4%} ({direction} is better; baseline {metric}={b:.6g})"
        ),
        beats_baseline=True,
        improvement=imp,
    )


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode()


def version_id(use_case: str, engine: str, feature_names: list[str], model_bytes: bytes) -> str:
    identity = {"use_case": use_case, "engine": engine, "feature_names": list(feature_names)}
    h = hashlib.sha256()
    h.update(model_bytes)
    h.update(_canonical(identity))
    return h.hexdigest()[:16]


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, datetime):
        return o.isoformat()
    return str(o)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class ModelRegistry:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    # ---- paths / validation ---------------------------------------------------------

    @staticmethod
    def _check_name(kind: str, name: str) -> str:
        if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
            raise ValueError(f"invalid {kind} {name!r}: use letters, digits, '_', '-', '.'")
        return name

    def _uc_dir(self, use_case: str) -> Path:
        return self.root / self._check_name("use case", use_case)

    def _existing_uc_dir(self, use_case: str) -> Path:
        d = self._uc_dir(use_case)
        if not d.is_dir():
            raise UnknownUseCaseError(f"unknown use case {use_case!r}; registered use cases: {self.use_cases()}")
        return d

    @contextlib.contextmanager
    def _locked(self, use_case: str) -> Iterator[None]:
        d = self._uc_dir(use_case)
        d.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        with open(d / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ---- registration ---------------------------------------------------------------

    def register(
        self,
        use_case: str,
        model: ModelLike,
        *,
        metrics: Mapping[str, float] | None = None,
        baseline_metrics: Mapping[str, float] | None = None,
        feature_contracts: Mapping[str, str] | None = None,
        data_versions: Mapping[str, Any] | None = None,
        code_version: str | None = None,
        created_by: str | None = None,
        extra: Mapping[str, Any] | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> ModelVersion:
        """Store ``model`` (+ metadata) and return its version; idempotent on identical content.

        ``feature_contracts``: feature set name -> contract version the features came from.
        ``data_versions``: input name -> data version / snapshot id used for training.
        ``files``: further artifacts stored in the version directory (e.g. the drift reference
        sample), written atomically with the model; read them back with ``ModelVersion.path``.
        """
        uc_dir = self._uc_dir(use_case)
        blob = model.to_bytes()
        engine = model.engine
        if engine not in MODEL_FILE_EXT:
            raise ValueError(f"unknown engine {engine!r}; known: {sorted(MODEL_FILE_EXT)}")
        feature_names = [str(f) for f in model.feature_names]
        version = version_id(use_case, engine, feature_names, blob)
        final = uc_dir / version
        if (final / MANIFEST).is_file():
            return self._read_version(use_case, version)

        device = getattr(model, "device", None)
        model_file = f"model.{MODEL_FILE_EXT[engine]}"
        manifest: dict[str, Any] = {
            "use_case": use_case,
            "version": version,
            "engine": engine,
            "task": model.task,
            "model_file": model_file,
            "model_sha256": hashlib.sha256(blob).hexdigest(),
            "feature_names": feature_names,
            "feature_contracts": dict(feature_contracts or {}),
            "params": dict(getattr(model, "params", {}) or {}),
            "best_iteration": int(getattr(model, "best_iteration", 0) or 0),
            "metrics": dict(metrics or {}),
            "baseline_metrics": dict(baseline_metrics or {}),
            "data_versions": dict(data_versions or {}),
            "code_version": code_version,
            "device": device.to_dict() if hasattr(device, "to_dict") else device,
            "training_seconds": float(getattr(model, "training_seconds", 0.0) or 0.0),
            "created_at": _now(),
            "created_by": created_by or getpass.getuser(),
        }
        if extra:
            manifest["extra"] = dict(extra)
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, default=_json_default).encode()

        uc_dir.mkdir(parents=True, exist_ok=True)
        tmp_dir = uc_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
        tmp_dir.mkdir()
        try:
            _atomic_write(tmp_dir / model_file, blob)
            for name, data in (files or {}).items():
                if name in (model_file, MANIFEST):
                    raise ValueError(f"file name {name!r} is reserved")
                _atomic_write(tmp_dir / self._check_name("file", name), data)
            _atomic_write(tmp_dir / MANIFEST, manifest_bytes)
            try:
                os.rename(tmp_dir, final)  # atomic; fails if another writer got there first
            except OSError:
                if not (final / MANIFEST).is_file():
                    raise
        finally:
            if tmp_dir.exists():
                shutil.rmtree(tmp_dir, ignore_errors=True)
        return self._read_version(use_case, version)

    # ---- reading ----------------------------------------------------------------------

    def use_cases(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _read_version(self, use_case: str, version: str) -> ModelVersion:
        path = self._uc_dir(use_case) / version
        manifest = json.loads((path / MANIFEST).read_text())
        return ModelVersion(use_case=use_case, version=version, path=path, manifest=manifest)

    def list_versions(self, use_case: str) -> list[ModelVersion]:
        """All versions of ``use_case``, newest first (by created_at)."""
        d = self._existing_uc_dir(use_case)
        out = [
            self._read_version(use_case, p.name)
            for p in d.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
        ]
        out.sort(key=lambda mv: (mv.created_at, mv.version), reverse=True)
        return out

    def aliases(self, use_case: str) -> dict[str, str]:
        f = self._existing_uc_dir(use_case) / ALIASES_FILE
        return json.loads(f.read_text()) if f.is_file() else {}

    def get(self, use_case: str, version_or_alias: str) -> ModelVersion:
        """Resolve an alias (``champion``/``challenger``) or a version id."""
        d = self._existing_uc_dir(use_case)
        aliases = self.aliases(use_case)
        if version_or_alias in aliases:
            return self._read_version(use_case, aliases[version_or_alias])
        if version_or_alias in ALIASES:
            raise UnknownAliasError(
                f"alias {version_or_alias!r} is not set for use case {use_case!r}; set aliases: {aliases or 'none'}"
            )
        if (
            isinstance(version_or_alias, str)
            and _SAFE_NAME.match(version_or_alias)
            and (d / version_or_alias / MANIFEST).is_file()
        ):
            return self._read_version(use_case, version_or_alias)
        known = [mv.version for mv in self.list_versions(use_case)]
        shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
        raise UnknownVersionError(
            f"unknown version or alias {version_or_alias!r} for use case {use_case!r}; "
            f"versions (newest first): [{shown}]; aliases: {aliases or 'none'}"
        )

    def load_model(self, use_case: str, version_or_alias: str, *, verify: bool = True) -> TrainedModel:
        mv = self.get(use_case, version_or_alias)
        blob = mv.model_path.read_bytes()
        if verify and version_id(use_case, mv.engine, mv.feature_names, blob) != mv.version:
            raise RegistryIntegrityError(f"{mv.model_path} does not hash to version {mv.version}")
        return TrainedModel.from_bytes(
            mv.engine,
            mv.task,
            mv.feature_names,
            blob,
            params=mv.manifest.get("params") or {},
            training_seconds=float(mv.manifest.get("training_seconds") or 0.0),
        )

    # ---- aliases ----------------------------------------------------------------------

    def set_alias(
        self, use_case: str, alias: str, version: str, reason: str, *, actor: str | None = None
    ) -> dict[str, Any]:
        """Point ``alias`` at ``version`` (a version id, or another alias to copy) and log it.

        Returns the promotions.jsonl record that was appended.
        """
        if alias not in ALIASES:
            raise ValueError(f"alias must be one of {ALIASES}, got {alias!r}")
        target = self.get(use_case, version).version
        return self._change_alias(use_case, alias, target, reason, actor)

    def clear_alias(self, use_case: str, alias: str, reason: str, *, actor: str | None = None) -> dict[str, Any]:
        """Remove ``alias`` (logged with version null)."""
        if alias not in ALIASES:
            raise ValueError(f"alias must be one of {ALIASES}, got {alias!r}")
        self._existing_uc_dir(use_case)
        return self._change_alias(use_case, alias, None, reason, actor)

    def _change_alias(
        self, use_case: str, alias: str, version: str | None, reason: str, actor: str | None
    ) -> dict[str, Any]:
        d = self._existing_uc_dir(use_case)
        with self._locked(use_case):
            aliases = self.aliases(use_case)
            previous = aliases.get(alias)
            if version is None:
                aliases.pop(alias, None)
            else:
                aliases[alias] = version
            record = {
                "time": _now(),
                "use_case": use_case,
                "alias": alias,
                "version": version,
                "previous_version": previous,
                "reason": reason,
                "actor": actor or getpass.getuser(),
            }
            _atomic_write(d / ALIASES_FILE, json.dumps(aliases, indent=2, sort_keys=True).encode())
            with open(d / PROMOTIONS_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return record

    def history(self, use_case: str) -> list[dict[str, Any]]:
        """Alias changes, oldest first."""
        f = self._existing_uc_dir(use_case) / PROMOTIONS_FILE
        if not f.is_file():
            return []
        return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
