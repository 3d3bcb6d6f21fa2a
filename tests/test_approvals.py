"""Approvals log: signed, append-only, hash-chained; one vote per key, latest signed decision wins, bad input refused.

Keys are generated here, in memory; the approvers file lives in tmp_path (no private key is committed)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from factory_assets.governance.approvals import (
    GENESIS,
    MAX_NOTE_CHARS,
    ApprovalLog,
    ApprovalStatus,
    generate_key_pair,
    load_approvers,
    public_key_line,
    sign_approval,
)

UC, V1, V2 = "purchase_propensity", "0123456789abcdef", "fedcba9876543210"
CONTENT = {V1: "1" * 64, V2: "2" * 64}
PEOPLE = ("alice", "bob", "carol")


@pytest.fixture
def keys():
    return {name: load_pem_private_key(generate_key_pair()[0], None) for name in PEOPLE}


@pytest.fixture
def approvers(tmp_path, keys):
    path = tmp_path / "approvers.yaml"
    path.write_text("approvers:\n" + "".join(
        f"  - {{name: {name}, role: reviewer, tiers: [high], public_key: '{public_key_line(k.public_key(), name)}'}}\n"
        for name, k in keys.items()))
    return load_approvers(path)


@pytest.fixture
def log(tmp_path) -> ApprovalLog:
    return ApprovalLog(tmp_path / "approvals")


_clock = [datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)]


def signed(keys, approver, decision="approve", version=V1, **extra):
    """Keyword arguments of a correctly signed ``record`` call (each a second later than the last)."""
    _clock[0] += timedelta(seconds=1)
    at = _clock[0].isoformat(timespec="microseconds")
    name = approver.strip().lower()
    signature = sign_approval(keys[name], UC, version, CONTENT[version], decision, at, approver.strip())
    return dict(use_case=UC, version=version, approver=approver, decision=decision,
                content_sha256=CONTENT[version], at=at, signature=signature, **extra)


def status(log, approvers, version=V1) -> ApprovalStatus:
    return log.status(UC, version, content_sha256=CONTENT[version], approvers=approvers, tier="high", trained_by="tom")


def test_record_writes_one_signed_chained_json_line(log, tmp_path, keys, approvers):
    record = log.record(note="checked segment report", approvers=approvers, tier="high", **signed(keys, "alice"))
    path = tmp_path / "approvals" / UC / "approvals.jsonl"
    (line,) = path.read_text().splitlines()
    assert json.loads(line) == record
    assert set(record) == {"use_case", "version", "content_sha256", "decision", "approver", "note", "at", "signature",
                           "key", "recorded_by", "recorded_at", "prev"}
    assert record["prev"] == GENESIS and record["key"].startswith("SHA256:") and record["recorded_by"]
    assert json.loads((tmp_path / "approvals" / UC / "approvals.head.json").read_text())["lines"] == 1


def test_log_is_append_only(log, tmp_path, keys):
    path = tmp_path / "approvals" / UC / "approvals.jsonl"
    log.record(**signed(keys, "alice"))
    before = path.read_bytes()
    for approver, decision in [("bob", "approve"), ("alice", "reject"), ("carol", "approve")]:
        log.record(**signed(keys, approver, decision))
        after = path.read_bytes()
        assert len(after) > len(before) and after.startswith(before)  # earlier lines byte-identical
        before = after
    assert [e["approver"] for e in log.entries(UC)] == ["alice", "bob", "alice", "carol"]
    assert log.check_chain(UC) is None


def test_latest_signed_decision_per_key_wins(log, keys, approvers):
    log.record(**signed(keys, "alice"))
    log.record(**signed(keys, "bob"))
    assert status(log, approvers) == ApprovalStatus(approvers=("alice", "bob"), rejected_by=())
    log.record(note="segment gap in the south", **signed(keys, "alice", "reject"))
    s = status(log, approvers)
    assert s.approvers == ("bob",) and s.rejected_by == ("alice",)
    assert s.approvals == 1 and s.rejected
    log.record(note="gap explained", **signed(keys, "alice"))
    s = status(log, approvers)
    assert s.approvers == ("alice", "bob") and not s.rejected and s.approvals == 2


def test_same_approver_counts_once(log, keys, approvers):
    for _ in range(3):
        log.record(**signed(keys, "alice"))
    log.record(**signed(keys, "Alice "))  # same person, other spelling
    assert status(log, approvers).approvals == 1
    log.record(**signed(keys, "bob"))
    assert status(log, approvers).approvals == 2


def test_decisions_are_per_version(log, keys, approvers):
    log.record(**signed(keys, "alice"))
    log.record(**signed(keys, "bob", "reject", version=V2))
    assert status(log, approvers) == ApprovalStatus(approvers=("alice",), rejected_by=())
    assert status(log, approvers, V2) == ApprovalStatus(approvers=(), rejected_by=("bob",))
    assert [e["approver"] for e in log.entries(UC, V2)] == ["bob"]
    assert len(log.entries(UC)) == 2


def test_nothing_recorded_yet(log, approvers):
    assert log.entries(UC) == [] and log.check_chain(UC) is None
    s = status(log, approvers)
    assert s.approvals == 0 and not s.rejected and s.tampered is None


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (dict(approver=""), "approver must be a non-empty name"),
        (dict(approver="   "), "approver must be a non-empty name"),
        (dict(approver=None), "approver must be a non-empty name"),
        (dict(decision="maybe"), "decision must be one of ['approve', 'reject']"),
        (dict(decision="APPROVE"), "decision must be one of"),
        (dict(note="x" * (MAX_NOTE_CHARS + 1)), f"at most {MAX_NOTE_CHARS}"),
        (dict(use_case="../etc"), "invalid use case '../etc'"),
        (dict(use_case=""), "invalid use case"),
        (dict(version="a/b"), "invalid version 'a/b'"),
        (dict(version=".."), "invalid version"),
        (dict(signature=""), "an approval must be signed"),
        (dict(content_sha256="abc"), "64-hex content hash"),
        (dict(at="2026-03-01T09:00:00"), "UTC offset"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(log, tmp_path, keys, kwargs, fragment):
    args = {**signed(keys, "alice"), "note": ""}
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        log.record(**args)
    assert fragment in str(info.value)
    assert not list((tmp_path).rglob("approvals.jsonl"))


def test_a_signature_that_does_not_verify_is_refused_when_recorded(log, tmp_path, keys, approvers):
    wrong = signed(keys, "alice")
    wrong["signature"] = signed(keys, "bob")["signature"]
    with pytest.raises(ValueError, match="signature does not verify with alice's declared key"):
        log.record(approvers=approvers, tier="high", **wrong)
    with pytest.raises(ValueError, match="dave is not a declared approver"):
        log.record(approvers=approvers, tier="high", **{**signed(keys, "alice"), "approver": "dave"})
    with pytest.raises(ValueError, match=r"may approve tiers \['high'\], not low"):
        log.record(approvers=approvers, tier="low", **signed(keys, "alice"))
    assert not list((tmp_path).rglob("approvals.jsonl"))


def test_note_at_the_limit_is_accepted(log, keys):
    assert log.record(note="x" * MAX_NOTE_CHARS, **signed(keys, "alice"))["note"] == "x" * MAX_NOTE_CHARS


def test_corrupt_line_is_reported_with_its_place(log, tmp_path, keys):
    log.record(**signed(keys, "alice"))
    path = tmp_path / "approvals" / UC / "approvals.jsonl"
    with open(path, "a") as fh:
        fh.write('{"use_case": "purchase_prop\n')
    with pytest.raises(ValueError, match=r"approvals.jsonl:2: not a JSON record"):
        log.entries(UC)
    assert "approvals.jsonl:2: not a JSON record" in log.check_chain(UC)
