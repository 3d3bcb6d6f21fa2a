"""Append-only log of human approvals and rejections of model versions (framework-free).

Layout: ``root/<use_case>/approvals.jsonl``, one JSON object per line::

    {"use_case", "version", "decision": "approve"|"reject", "approver", "note", "at", "recorded_by"}

Lines are only ever appended (under an exclusive ``fcntl`` lock on the file, flushed and fsynced),
never rewritten: the file is the audit trail. ``status`` reads it back with two rules: each person
counts once, and a person's latest decision on a version wins (approve, then reject = rejected).
Approver names are compared case-insensitively, so "Alice" and "alice" are one person.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from factory_assets.assembly.registry import _SAFE_NAME  # one naming rule for registry and approvals

__all__ = ["APPROVALS_FILE", "DECISIONS", "MAX_NOTE_CHARS", "ApprovalLog", "ApprovalStatus"]

APPROVALS_FILE = "approvals.jsonl"
DECISIONS: tuple[str, ...] = ("approve", "reject")
MAX_NOTE_CHARS = 2000
MAX_APPROVER_CHARS = 200


@dataclass(frozen=True)
class ApprovalStatus:
    """Where one version stands: who approves it now, who rejects it now."""

    approvers: tuple[str, ...]  # distinct people whose latest decision is approve (sorted)
    rejected_by: tuple[str, ...]  # distinct people whose latest decision is reject (sorted)
    approvals: int = field(init=False)  # len(approvers)
    rejected: bool = field(init=False)  # a standing rejection

    def __post_init__(self) -> None:
        object.__setattr__(self, "approvals", len(self.approvers))
        object.__setattr__(self, "rejected", bool(self.rejected_by))


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
        raise ValueError(
            f"invalid {kind} {name!r}: use letters, digits, '_', '-', '.' (at most 128, starting with a letter or digit)"
        )
    return name


@contextlib.contextmanager
def _locked_append(path: Path) -> Iterator[IO[str]]:
    """Open ``path`` for appending while holding an exclusive lock (writers in other processes wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield fh
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class ApprovalLog:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path(self, use_case: str) -> Path:
        return self.root / _check_name("use case", use_case) / APPROVALS_FILE

    def record(self, use_case: str, version: str, approver: str, decision: str, note: str = "") -> dict[str, Any]:
        """Append one decision and return the record written. Invalid input raises ValueError; nothing is written."""
        path = self.path(use_case)
        _check_name("version", version)
        if not isinstance(approver, str) or not approver.strip():
            raise ValueError(f"approver must be a non-empty name, got {approver!r}")
        approver = approver.strip()
        if len(approver) > MAX_APPROVER_CHARS:
            raise ValueError(f"approver name has {len(approver)} characters; at most {MAX_APPROVER_CHARS}")
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {list(DECISIONS)}, got {decision!r}")
        if not isinstance(note, str):
            raise ValueError(f"note must be text, got {type(note).__name__}")
        if len(note) > MAX_NOTE_CHARS:
            raise ValueError(f"note has {len(note)} characters; at most {MAX_NOTE_CHARS}")
        record = {
            "use_case": use_case,
            "version": version,
            "decision": decision,
            "approver": approver,
            "note": note,
            "at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "recorded_by": getpass.getuser(),
        }
        line = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
        with _locked_append(path) as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        return record

    def entries(self, use_case: str, version: str | None = None) -> list[dict[str, Any]]:
        """Decisions for ``use_case`` (only ``version``'s when given), oldest first."""
        path = self.path(use_case)
        if not path.is_file():
            return []
        out = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON record ({exc}); the log must be repaired by hand") from exc
            if version is None or entry.get("version") == version:
                out.append(entry)
        return out

    def status(self, use_case: str, version: str) -> ApprovalStatus:
        """Latest decision per person (case-insensitive name) on ``version``."""
        _check_name("version", version)
        latest: dict[str, tuple[str, str]] = {}  # person key -> (name as last written, decision)
        for entry in self.entries(use_case, version):
            latest[entry["approver"].casefold()] = (entry["approver"], entry["decision"])
        approvers = sorted(name for name, decision in latest.values() if decision == "approve")
        rejected_by = sorted(name for name, decision in latest.values() if decision == "reject")
        return ApprovalStatus(approvers=tuple(approvers), rejected_by=tuple(rejected_by))
