"""Signed, hash-chained approvals of model versions by declared people (framework-free).

Approvers are declared in ``governance/approvers.yaml`` (``FACTORY_APPROVERS_FILE`` overrides):
name, role, the risk tiers they may approve, an Ed25519 public key (OpenSSH ``ssh-ed25519 AAAA...``
or the raw 32 bytes in base64) and optionally the other names they use (``identities``: OS user,
FACTORY_TRAINER). A decision is signed with the approver's private key over a canonical payload
(``approval_payload``: use case, version id, the version's content hash, decision, time, approver).

Layout: ``root/<use_case>/approvals.jsonl``, one JSON object per line, each carrying ``prev``, the
sha256 of the line before it (``GENESIS`` for the first), and ``root/<use_case>/approvals.head.json``
with the number of lines and the hash of the last one. An edited, reordered, inserted or deleted
line (the last one included) breaks the chain: ``check_chain`` names the line, nothing more is
appended, and ``status`` counts no approval until the log is repaired.

``status`` counts, per public key, the latest (by signed time) decision that verifies: signed by a
declared approver allowed for the tier, over the version's current content hash, and not by whoever
trained the version (by name, identity or key). One key under two names counts once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import getpass
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

from factory_assets.lib.files import atomic_write as _atomic_write
from factory_assets.assembly.registry import (
    _SAFE_NAME,  # one naming rule for registry and approvals
)

__all__ = [
    "APPROVALS_FILE",
    "APPROVERS_FILE",
    "DECISIONS",
    "GENESIS",
    "HEAD_FILE",
    "MAX_NOTE_CHARS",
    "ApprovalLog",
    "ApprovalStatus",
    "Approver",
    "Approvers",
    "ApproversError",
    "approval_payload",
    "fingerprint",
    "generate_key_pair",
    "load_approvers",
    "load_private_key",
    "now_iso",
    "parse_public_key",
    "public_key_line",
    "sign_approval",
]

APPROVALS_FILE = "approvals.jsonl"
HEAD_FILE = "approvals.head.json"
APPROVERS_FILE = Path(__file__).resolve().parents[2] / "governance" / "approvers.yaml"
DECISIONS: tuple[str, ...] = ("approve", "reject")
MAX_NOTE_CHARS = 2000
MAX_APPROVER_CHARS = 200
GENESIS = "0" * 64
PAYLOAD_PURPOSE = "ai-factory/approval/v1"
PASSPHRASE_ENV = "FACTORY_KEY_PASSPHRASE"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _signed_time(at: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(at))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
        raise ValueError(
            f"invalid {kind} {name!r}: use letters, digits, '_', '-', '.' (at most 128, starting with a letter or digit)"
        )
    return name


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------
# Keys and signatures (Ed25519 through the `cryptography` package)
# --------------------------------------------------------------------------------------


class ApproversError(ValueError):
    """The approvers file, a key file or a signature is unusable (the message says which and why)."""


def parse_public_key(text: str):
    """An Ed25519 public key from ``ssh-ed25519 AAAA... [comment]`` or base64 of its raw 32 bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    text = (text or "").strip()
    if text.startswith("ssh-"):
        parts = text.split()
        try:
            key = serialization.load_ssh_public_key(" ".join(parts[:2]).encode())
        except (ValueError, IndexError) as exc:
            raise ApproversError(f"not an OpenSSH public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ApproversError(f"an OpenSSH {parts[0]} key; approvals need ssh-ed25519 (ssh-keygen -t ed25519)")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApproversError("neither 'ssh-ed25519 AAAA...' nor base64 of a raw 32-byte Ed25519 key") from None
    if len(raw) != 32:
        raise ApproversError(f"a raw Ed25519 public key has 32 bytes, this one {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _raw(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_line(public_key, comment: str = "") -> str:
    """The OpenSSH one-line form (what ``ssh-keygen`` writes to ``.pub``)."""
    from cryptography.hazmat.primitives import serialization

    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def fingerprint(public_key) -> str:
    """``SHA256:...`` as ``ssh-keygen -lf`` prints it."""
    blob = base64.b64decode(public_key_line(public_key).split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def generate_key_pair(passphrase: bytes | None = None) -> tuple[bytes, Any]:
    """(private key as PKCS#8 PEM, encrypted when a passphrase is given; the public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return pem, key.public_key()


def load_private_key(path: Path | str, passphrase: bytes | None = None):
    """An Ed25519 private key file: PKCS#8 PEM (``factory keygen``) or OpenSSH (``ssh-keygen -t ed25519``).

    An encrypted key takes its passphrase from ``passphrase``, FACTORY_KEY_PASSPHRASE, or a prompt."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ApproversError(f"cannot read the private key {path}: {exc.strerror or exc}") from None
    load = (serialization.load_ssh_private_key if b"OPENSSH PRIVATE KEY" in data
            else serialization.load_pem_private_key)
    if passphrase is None and os.environ.get(PASSPHRASE_ENV):
        passphrase = os.environ[PASSPHRASE_ENV].encode()
    try:
        try:
            key = load(data, passphrase)
        except TypeError:  # encrypted and no passphrase given (or one given for a plain key)
            if passphrase is not None or not sys.stdin.isatty():
                raise ApproversError(f"{path} is encrypted: set {PASSPHRASE_ENV} or run in a terminal") from None
            key = load(data, getpass.getpass(f"passphrase for {path}: ").encode())
    except UnsupportedAlgorithm as exc:
        raise ApproversError(f"{path}: {exc} (an encrypted OpenSSH key needs the bcrypt package; use `factory "
                             "keygen` or a key without passphrase)") from None
    except ValueError as exc:
        raise ApproversError(f"{path} is not a readable private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ApproversError(f"{path} is a {type(key).__name__}; approvals need an Ed25519 key "
                             "(`factory keygen` or `ssh-keygen -t ed25519`)")
    return key


def approval_payload(use_case: str, version: str, content_sha256: str, decision: str, at: str, approver: str) -> bytes:
    """The canonical bytes an approver signs."""
    return json.dumps({"purpose": PAYLOAD_PURPOSE, "use_case": use_case, "version": version,
                       "content_sha256": content_sha256, "decision": decision, "at": at, "approver": approver},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_approval(private_key, use_case: str, version: str, content_sha256: str, decision: str, at: str,
                  approver: str) -> str:
    """Base64 Ed25519 signature of ``approval_payload``."""
    payload = approval_payload(use_case, version, content_sha256, decision, at, approver)
    return base64.b64encode(private_key.sign(payload)).decode()


def _verifies(public_key, payload: bytes, signature: Any) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(base64.b64decode(str(signature), validate=True), payload)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------
# Declared approvers
# --------------------------------------------------------------------------------------


class Approver(BaseModel):
    """One person who may approve: the tiers they may approve and their public key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    role: str
    tiers: tuple[Literal["low", "medium", "high"], ...]
    public_key: str
    identities: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name("approver name", v)

    @field_validator("public_key")
    @classmethod
    def _key(cls, v: str) -> str:
        parse_public_key(v)
        return v


class _ApproversFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers: tuple[Approver, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> _ApproversFile:
        names = [a.name.casefold() for a in self.approvers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"approver name(s) declared twice: {twice}")
        return self


@dataclass(frozen=True)
class Approvers:
    """The declared approvers (from ``path``), with their parsed keys."""

    path: Path
    people: tuple[Approver, ...]
    _keys: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def get(self, name: str) -> Approver | None:
        wanted = str(name).strip().casefold()
        return next((a for a in self.people if a.name.casefold() == wanted), None)

    def key(self, approver: Approver):
        if approver.name not in self._keys:
            self._keys[approver.name] = parse_public_key(approver.public_key)
        return self._keys[approver.name]

    def key_id(self, approver: Approver) -> str:
        return fingerprint(self.key(approver))

    def is_trainer(self, approver: Approver, trained_by: str | None) -> bool:
        """Is ``approver`` whoever trained the version: by name, by a declared identity, or by key?"""
        trainer = str(trained_by or "").strip().casefold()
        if not trainer:
            return False

        def names(a: Approver) -> set[str]:
            return {a.name.casefold(), *(i.strip().casefold() for i in a.identities)}

        if trainer in names(approver):
            return True
        trainer_keys = {_raw(self.key(a)) for a in self.people if trainer in names(a)}
        return _raw(self.key(approver)) in trainer_keys


def load_approvers(path: Path | str = APPROVERS_FILE) -> Approvers:
    """Load and validate the approvers file; a mistake raises ``ApproversError`` naming the file and field."""
    from factory_assets.lib.yaml_files import read_yaml_file

    path = Path(path)
    raw = read_yaml_file(path, ApproversError, "declare approvers there (see governance/approvers.yaml) or point "
                                               "FACTORY_APPROVERS_FILE at it")
    try:
        parsed = _ApproversFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        problems = [f"field '{'.'.join(map(str, e['loc']))}': {e['msg'].removeprefix('Value error, ')}" if e["loc"]
                    else e["msg"].removeprefix("Value error, ") for e in exc.errors()]
        raise ApproversError(f"{path}: invalid approvers file: " + "; ".join(problems)) from None
    return Approvers(path=path, people=parsed.approvers)


# --------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalStatus:
    """Where one version stands: whose signed decision counts, and why others do not."""

    approvers: tuple[str, ...]  # one name per key whose latest valid decision is approve (sorted)
    rejected_by: tuple[str, ...]  # one name per key whose latest valid decision is reject (sorted)
    discounted: tuple[str, ...] = ()  # decisions that do not count, each with the reason
    tampered: str | None = None  # the log's chain is broken: nothing counts
    approvals: int = field(init=False)
    rejected: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "approvals", len(self.approvers))
        object.__setattr__(self, "rejected", bool(self.rejected_by))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[bytes]]:
    """An exclusive lock on the file ``path`` (other writers wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
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




def _committed(data: bytes) -> list[bytes]:
    """The whole lines of the log (a torn last line, without its newline, was never committed)."""
    return data.split(b"\n")[:-1]


class ApprovalLog:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path(self, use_case: str) -> Path:
        return self.root / _check_name("use case", use_case) / APPROVALS_FILE

    def head_path(self, use_case: str) -> Path:
        return self.root / _check_name("use case", use_case) / HEAD_FILE

    # ---- writing ----------------------------------------------------------------------

    def record(self, use_case: str, version: str, approver: str, decision: str, note: str = "", *,
               content_sha256: str, at: str, signature: str, approvers: Approvers | None = None,
               tier: str | None = None) -> dict[str, Any]:
        """Append one signed decision and return the record written. Invalid input raises ValueError; nothing
        is written. With ``approvers`` (and ``tier``) the signature is checked first, as the gate will."""
        self.path(use_case)
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
        if not isinstance(content_sha256, str) or len(content_sha256) != 64:
            raise ValueError(f"content_sha256 must be the version's 64-hex content hash, got {content_sha256!r}")
        if _signed_time(at) is None:
            raise ValueError(f"at must be an ISO 8601 time with its UTC offset (the signed time), got {at!r}")
        if not isinstance(signature, str) or not signature.strip():
            raise ValueError("an approval must be signed (signature missing): `factory approve ... --key PRIVATE_KEY`")
        record = {"use_case": use_case, "version": version, "content_sha256": content_sha256, "decision": decision,
                  "approver": approver, "note": note, "at": at, "signature": signature.strip()}
        if approvers is not None:
            declared = approvers.get(approver)
            why = self._why_not(record, content_sha256, approvers, tier, None)
            if why:
                raise ValueError(f"{approver}'s {decision} of {use_case} {version} is refused: {why}")
            record["key"] = approvers.key_id(declared)
        return self.append(use_case, record)

    def append(self, use_case: str, record: dict[str, Any]) -> dict[str, Any]:
        """Chain ``record`` to the log (``prev``, ``recorded_by``, ``recorded_at``) and append it atomically.

        Refused (ValueError) while the chain is broken: appending would hide the damage."""
        path = self.path(use_case)
        with _locked(path.parent / ".approvals.lock"):
            problem = self.check_chain(use_case)
            if problem:
                raise ValueError(problem)
            with open(path, "a+b") as fh:
                fh.seek(0)
                data = fh.read()
                lines = _committed(data)
                if len(data) != sum(len(line) + 1 for line in lines):  # a torn last line: cut it off
                    fh.truncate(sum(len(line) + 1 for line in lines))
                entry = {**record, "recorded_by": getpass.getuser(), "recorded_at": now_iso(),
                         "prev": _sha(lines[-1]) if lines else GENESIS}
                line = json.dumps(entry, sort_keys=True, ensure_ascii=False).encode()
                fh.write(line + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            _atomic_write(self.head_path(use_case),
                          json.dumps({"lines": len(lines) + 1, "sha256": _sha(line)}, sort_keys=True).encode())
        return entry

    # ---- reading ----------------------------------------------------------------------

    def _head(self, use_case: str) -> dict[str, Any]:
        path = self.head_path(use_case)
        if not path.is_file():
            return {"lines": 0, "sha256": None}
        try:
            head = json.loads(path.read_text())
            return {"lines": int(head["lines"]), "sha256": str(head["sha256"])}
        except (ValueError, KeyError, TypeError):
            return {"lines": -1, "sha256": None}

    def check_chain(self, use_case: str) -> str | None:
        """None when the log is intact, else what is wrong (which line) and how to repair it."""
        path, head_path = self.path(use_case), self.head_path(use_case)
        fix = (f"; approvals of {use_case} are blocked until it is repaired: restore {path.name} from a backup, or "
               "move it and its head file aside and have the approvers sign again")
        head = self._head(use_case)
        if head["lines"] < 0:
            return f"{head_path} is not readable: it was edited" + fix
        if not path.is_file():
            return None if head["lines"] == 0 else (
                f"{path} is missing but {head_path.name} records {head['lines']} line(s): the log was deleted" + fix)
        lines = _committed(path.read_bytes())
        prev, chained = GENESIS, False
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError
            except ValueError:
                return f"{path}:{number}: not a JSON record: the log was edited" + fix
            if "prev" in entry:
                if entry["prev"] != prev:
                    before = "the start of the log" if number == 1 else f"line {number - 1}"
                    return (f"{path}:{number}: its 'prev' hash does not match {before}: a line at or before line "
                            f"{number} was edited, removed, inserted or moved" + fix)
                chained = True
            elif chained:
                return f"{path}:{number}: an unchained line after chained ones: it was inserted or edited" + fix
            prev = _sha(line)
        if len(lines) < head["lines"]:
            return (f"{path} has {len(lines)} line(s) but {head_path.name} records {head['lines']}: line(s) were "
                    "removed from its end" + fix)
        if head["lines"] and _sha(lines[head["lines"] - 1]) != head["sha256"]:
            return f"{path}:{head['lines']}: differs from the hash in {head_path.name}: the line was edited" + fix
        return None

    def entries(self, use_case: str, version: str | None = None) -> list[dict[str, Any]]:
        """Decisions for ``use_case`` (only ``version``'s when given), oldest first, as written."""
        path = self.path(use_case)
        if not path.is_file():
            return []
        out = []
        for number, line in enumerate(_committed(path.read_bytes()), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON record ({exc}); the log must be repaired by hand") from exc
            if version is None or entry.get("version") == version:
                out.append(entry)
        return out

    # ---- judging ----------------------------------------------------------------------

    @staticmethod
    def _why_not(entry: dict[str, Any], content_sha256: str | None, approvers: Approvers, tier: str | None,
                 trained_by: str | None) -> str | None:
        """Why ``entry`` does not count (None: it counts)."""
        name = str(entry.get("approver", ""))
        if not entry.get("signature"):
            return "unsigned"
        if not content_sha256:
            return "the version has no content hash (not sealed): nothing can be signed for it"
        if entry.get("content_sha256") != content_sha256:
            return "signed for other content: the version's manifest or files changed after the signature"
        declared = approvers.get(name)
        if declared is None:
            return f"{name} is not a declared approver in {approvers.path}"
        if tier is not None and tier not in declared.tiers:
            return f"{declared.name} may approve tiers {list(declared.tiers)}, not {tier}"
        payload = approval_payload(str(entry.get("use_case")), str(entry.get("version")), content_sha256,
                                   str(entry.get("decision")), str(entry.get("at")), name)
        if not _verifies(approvers.key(declared), payload, entry["signature"]):
            return f"the signature does not verify with {declared.name}'s declared key ({approvers.key_id(declared)})"
        if approvers.is_trainer(declared, trained_by):
            return f"{declared.name} trained this version (trained by {trained_by}): the four-eyes rule needs someone else"
        if entry.get("decision") not in DECISIONS:
            return f"unknown decision {entry.get('decision')!r}"
        return None

    def judge(self, use_case: str, version: str, *, content_sha256: str | None,
              approvers: Approvers | Callable[[], Approvers], tier: str | None,
              trained_by: str | None) -> list[dict[str, Any]]:
        """Each decision on ``version`` with ``counted`` and ``why_not`` (for the gate and the audit bundle)."""
        entries = self.entries(use_case, version)
        if not entries:
            return []
        declared = approvers() if callable(approvers) else approvers
        out = []
        for entry in entries:
            why = self._why_not(entry, content_sha256, declared, tier, trained_by)
            key = None if why else declared.key_id(declared.get(entry["approver"]))
            out.append({**entry, "counted": why is None, "why_not": why, "key": key or entry.get("key")})
        return out

    def status(self, use_case: str, version: str, *, content_sha256: str | None,
               approvers: Approvers | Callable[[], Approvers], tier: str | None,
               trained_by: str | None) -> ApprovalStatus:
        """Latest valid decision per key on ``version``; nothing counts while the log's chain is broken."""
        _check_name("version", version)
        problem = self.check_chain(use_case)
        if problem:
            return ApprovalStatus(approvers=(), rejected_by=(), tampered=problem)
        judged = self.judge(use_case, version, content_sha256=content_sha256, approvers=approvers, tier=tier,
                            trained_by=trained_by)
        latest: dict[str, tuple[str, int, dict]] = {}  # key -> (signed time, position, entry)
        names: dict[str, set[str]] = {}
        discounted = [f"{e['approver']} {e['decision']} at {e['at']}: {e['why_not']}" for e in judged if not e["counted"]]
        for position, entry in enumerate(judged):
            if entry["counted"]:
                names.setdefault(entry["key"], set()).add(entry["approver"].casefold())
                mark = (_signed_time(entry["at"]) or datetime.min.replace(tzinfo=UTC), position, entry)
                if entry["key"] not in latest or mark[:2] > latest[entry["key"]][:2]:
                    latest[entry["key"]] = mark
        discounted += [f"key {key} signs as {sorted(both)}: counted once" for key, both in names.items() if len(both) > 1]
        approved = sorted(e["approver"] for _, _, e in latest.values() if e["decision"] == "approve")
        rejected = sorted(e["approver"] for _, _, e in latest.values() if e["decision"] == "reject")
        return ApprovalStatus(approvers=tuple(approved), rejected_by=tuple(rejected), discounted=tuple(discounted))
