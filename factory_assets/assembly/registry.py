"""Content-addressed model registry on the local file system (framework-free).

Layout::

    root/<use_case>/<version>/model.<ubj|txt>    engine-native model bytes
    root/<use_case>/<version>/manifest.json      identity + lineage + metrics + file hashes + content hash
    root/<use_case>/promotions.jsonl             append-only log of alias changes: the aliases' source of truth
    root/<use_case>/aliases.json                 snapshot of the aliases, rewritten after each change
    root/<use_case>/.sealed                      since when every manifest of the use case carries a content hash

``version`` = first 16 hex of sha256(model bytes + canonical JSON of the identity fields
{use_case, engine, feature_names}). Registering identical content twice returns the existing
version untouched (the first registration's metadata is kept). A version directory appears
atomically (written under a temporary name, then renamed, under the use case's lock; orphaned
temporary folders of a crashed registration are removed by the next one).

Integrity: ``manifest["files"]`` holds the sha256 of every file of the version and
``manifest["content_sha256"]`` the sha256 of the canonical JSON of the rest of the manifest, so an
edit of anything that changes a score or a decision (model, categories, feature schema, metrics,
test window, reference, trainer) is detected by ``verify``; ``load_model`` verifies first. Versions
registered before content hashes existed are sealed once, as found, when their use case is first
opened by this code (trust on first use); afterwards a manifest without a content hash is refused.

An alias change is one appended line of promotions.jsonl (the commit); ``aliases`` replays it, so a
crash before or after that line never leaves alias and history disagreeing (a torn last line is
ignored and cut off by the next change).
"""

from __future__ import annotations

from factory_assets.lib.files import atomic_write as _atomic_write, sha256_file as _sha256_file
import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
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
SEALED_FILE = ".sealed"
TMP_PREFIX = ".tmp-"
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
    """A version's files no longer match what was registered (edited, replaced or deleted)."""


def _integrity_error(use_case: str, version: str, what: str) -> RegistryIntegrityError:
    return RegistryIntegrityError(
        f"model {use_case} {version} is refused: {what}. It will not score or be promoted. Restore the version's "
        f"folder from a backup (a challenger can also be retrained: `factory run --layer assembly`).")


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

    @property
    def content_sha256(self) -> str | None:
        """The content hash recorded at registration (None: registered before content hashes)."""
        return self.manifest.get("content_sha256")

    @property
    def trained_by(self) -> str:
        """Who trained (registered) the version: FACTORY_TRAINER or the OS user at training."""
        return str(self.manifest.get("created_by") or "")


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


def content_sha256(manifest: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``manifest`` without its own ``content_sha256`` field."""
    return hashlib.sha256(_canonical({k: v for k, v in manifest.items() if k != "content_sha256"})).hexdigest()


def _sealed(manifest: dict[str, Any]) -> bytes:
    """Manifest bytes with ``content_sha256`` computed over exactly what a reader will parse back."""
    parsed = json.loads(json.dumps(manifest, sort_keys=True, default=_json_default))
    parsed["content_sha256"] = content_sha256(parsed)
    return json.dumps(parsed, indent=2, sort_keys=True).encode()




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




def _append_line(path: Path, line: str) -> None:
    """Append one whole line and fsync it; a torn last line (a crash mid-append) is cut off first."""
    with open(path, "a+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                fh.seek(0)
                fh.truncate(fh.read().rfind(b"\n") + 1)
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _replay(records: list[dict[str, Any]]) -> dict[str, str]:
    """The aliases that a history of alias changes leaves set."""
    aliases: dict[str, str] = {}
    for record in records:
        alias, version = record.get("alias"), record.get("version")
        if alias not in ALIASES:
            continue
        if version is None:
            aliases.pop(alias, None)
        else:
            aliases[alias] = version
    return aliases


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
        """The use case's exclusive lock (not re-entrant: never nest it)."""
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

    @staticmethod
    def _clean_orphans(uc_dir: Path) -> list[str]:
        """Remove what a crashed registration or alias change left (caller holds the lock: nothing is in flight)."""
        removed = []
        for p in uc_dir.iterdir():
            if p.name.startswith(TMP_PREFIX) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(f".{ALIASES_FILE}.") and p.name.endswith(".tmp") and p.is_file():
                p.unlink(missing_ok=True)
            else:
                continue
            removed.append(p.name)
        return removed

    def _seal_legacy(self, use_case: str) -> None:
        """Seal, once per use case, the versions registered before content hashes (caller holds the lock).

        A version whose model file no longer matches its version id is left unsealed: it stays refused."""
        d = self._uc_dir(use_case)
        marker = d / SEALED_FILE
        if marker.is_file() or not d.is_dir():
            return
        sealed, refused = [], []
        for p in sorted(d.iterdir()):
            if not p.is_dir() or p.name.startswith(".") or not (p / MANIFEST).is_file():
                continue
            try:
                manifest = json.loads((p / MANIFEST).read_text())
                if "content_sha256" in manifest:
                    continue
                blob = (p / manifest["model_file"]).read_bytes()
                intact = version_id(use_case, manifest["engine"], manifest["feature_names"], blob) == p.name
            except (OSError, ValueError, KeyError, TypeError):
                intact = False
            if not intact:
                refused.append(p.name)
                continue
            manifest["files"] = {f.name: _sha256_file(f) for f in sorted(p.iterdir())
                                 if f.is_file() and f.name != MANIFEST and not f.name.startswith(".")}
            _atomic_write(p / MANIFEST, _sealed(manifest))
            sealed.append(p.name)
        _atomic_write(marker, json.dumps({"sealed_at": _now(), "by": getpass.getuser(), "legacy_versions_sealed": sealed,
                                          "left_unsealed": refused}, indent=2, sort_keys=True).encode())

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
        ``created_by``: who trained it (default FACTORY_TRAINER, else the OS user); they may not approve it.
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
        model_file = f"model.{MODEL_FILE_EXT[engine]}"
        for name in files or {}:
            if name in (model_file, MANIFEST):
                raise ValueError(f"file name {name!r} is reserved")
            self._check_name("file", name)

        device = getattr(model, "device", None)
        manifest: dict[str, Any] = {
            "use_case": use_case,
            "version": version,
            "engine": engine,
            "task": model.task,
            "model_file": model_file,
            "model_sha256": hashlib.sha256(blob).hexdigest(),
            "files": {model_file: hashlib.sha256(blob).hexdigest(),
                      **{name: hashlib.sha256(data).hexdigest() for name, data in (files or {}).items()}},
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
            "created_by": created_by or os.environ.get("FACTORY_TRAINER") or getpass.getuser(),
        }
        if extra:
            manifest["extra"] = dict(extra)
        manifest_bytes = _sealed(manifest)

        with self._locked(use_case):
            self._clean_orphans(uc_dir)
            self._seal_legacy(use_case)
            if (final / MANIFEST).is_file():
                return self._read_version(use_case, version)
            tmp_dir = uc_dir / f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
            tmp_dir.mkdir()
            try:
                _atomic_write(tmp_dir / model_file, blob)
                for name, data in (files or {}).items():
                    _atomic_write(tmp_dir / name, data)
                _atomic_write(tmp_dir / MANIFEST, manifest_bytes)
                os.rename(tmp_dir, final)  # atomic
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
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise _integrity_error(use_case, version, f"{path / MANIFEST} is missing (deleted?)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _integrity_error(use_case, version, f"{path / MANIFEST} is not valid JSON ({exc})") from None
        if not isinstance(manifest, dict):
            raise _integrity_error(use_case, version, f"{path / MANIFEST} is not a JSON object")
        return ModelVersion(use_case=use_case, version=version, path=path, manifest=manifest)

    def pinned_lake_snapshots(self) -> set[int]:
        """The lake snapshots the training sets of every registered version were read at: kept by
        lake maintenance, so each version's training set can be rebuilt by time travel."""
        return {int(snapshot) for use_case in self.use_cases() for version in self.list_versions(use_case)
                if (snapshot := (version.manifest.get("data_versions") or {}).get("lake_snapshot")) is not None}

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
        """Where the aliases point: the replay of promotions.jsonl (aliases.json is only its snapshot)."""
        return _replay(self._records(self._existing_uc_dir(use_case)))

    def get(self, use_case: str, version_or_alias: str) -> ModelVersion:
        """Resolve an alias (``champion``/``challenger``) or a version id (no integrity check: see ``verify``)."""
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

    def verify(self, use_case: str, version_or_alias: str, *, deep: bool = True) -> ModelVersion:
        """The version, checked against what was registered; ``RegistryIntegrityError`` names the file and the fix.

        Always: the manifest's content hash, its identity, every listed file present. ``deep``: every
        file's bytes hashed too (a few MB per version)."""
        mv = self.get(use_case, version_or_alias)
        manifest_file = mv.path / MANIFEST
        if mv.content_sha256 is None:
            marker = self._uc_dir(use_case) / SEALED_FILE
            if not marker.is_file():  # registered before content hashes: seal as found, once
                with self._locked(use_case):
                    self._seal_legacy(use_case)
                mv = self._read_version(use_case, mv.version)
            if mv.content_sha256 is None:
                raise _integrity_error(use_case, mv.version, (
                    f"{manifest_file} has no content hash although every manifest of {use_case} carries one since "
                    f"{marker} was written: the field was removed, or its model file did not match its version id"))
        found = content_sha256(mv.manifest)
        if found != mv.content_sha256:
            raise _integrity_error(use_case, mv.version, (
                f"{manifest_file} was edited after registration (content hash {found[:16]} != recorded "
                f"{str(mv.content_sha256)[:16]}): its metrics, categories, feature schema or lineage cannot be trusted"))
        if mv.manifest.get("version") != mv.version or mv.manifest.get("use_case") != use_case:
            raise _integrity_error(use_case, mv.version, (
                f"{manifest_file} describes {mv.manifest.get('use_case')} {mv.manifest.get('version')}: "
                "the folder was copied or renamed"))
        listed = mv.manifest.get("files") or {}
        if mv.manifest.get("model_file") not in listed:
            raise _integrity_error(use_case, mv.version, f"{manifest_file} records no hash for its model file")
        for name, digest in sorted(listed.items()):
            path = mv.path / name
            if not path.is_file():
                raise _integrity_error(use_case, mv.version, f"its file {path} is missing (deleted?)")
            if deep and _sha256_file(path) != digest:
                raise _integrity_error(use_case, mv.version, f"its file {path} was changed after registration "
                                       f"(sha256 differs from the one in {MANIFEST})")
        return mv

    def load_model(self, use_case: str, version_or_alias: str, *, verify: bool = True) -> TrainedModel:
        """The model of a version; ``verify`` (default) refuses a version whose files changed."""
        mv = self.verify(use_case, version_or_alias) if verify else self.get(use_case, version_or_alias)
        try:
            blob = mv.model_path.read_bytes()
        except FileNotFoundError:
            raise _integrity_error(use_case, mv.version, f"its model file {mv.model_path} is missing (deleted?)") from None
        if verify and version_id(use_case, mv.engine, mv.feature_names, blob) != mv.version:
            raise _integrity_error(use_case, mv.version, f"{mv.model_path} does not hash to version {mv.version}")
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
            aliases = _replay(self._records(d))
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
                "content_sha256": None if version is None else self._read_version(use_case, version).content_sha256,
                "reason": reason,
                "actor": actor or getpass.getuser(),
            }
            # The commit: one appended line. A crash before it changes nothing, after it changes both.
            _append_line(d / PROMOTIONS_FILE, json.dumps(record, sort_keys=True, default=_json_default) + "\n")
            with contextlib.suppress(OSError):  # a stale snapshot is rewritten by the next change
                _atomic_write(d / ALIASES_FILE, json.dumps(aliases, indent=2, sort_keys=True).encode())
        return record

    def _records(self, d: Path) -> list[dict[str, Any]]:
        """Committed lines of promotions.jsonl (a torn last line, without its newline, never committed)."""
        f = d / PROMOTIONS_FILE
        if not f.is_file():
            return []
        *lines, _torn = f.read_bytes().decode("utf-8", errors="replace").split("\n")
        out = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RegistryIntegrityError(
                    f"{f}:{number}: not a JSON record ({exc.msg}): the promotion history was edited; restore it "
                    "from a backup (the aliases are read from it)") from None
        return out

    def history(self, use_case: str) -> list[dict[str, Any]]:
        """Alias changes, oldest first."""
        return self._records(self._existing_uc_dir(use_case))
