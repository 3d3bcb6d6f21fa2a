"""Approvals log: append-only, one vote per person, latest decision wins, bad input refused."""

from __future__ import annotations

import json

import pytest

from factory_assets.governance.approvals import MAX_NOTE_CHARS, ApprovalLog, ApprovalStatus

UC, V1, V2 = "purchase_propensity", "0123456789abcdef", "fedcba9876543210"


@pytest.fixture
def log(tmp_path) -> ApprovalLog:
    return ApprovalLog(tmp_path / "approvals")


def test_record_writes_one_json_line(log, tmp_path):
    record = log.record(UC, V1, "alice@example.com", "approve", note="checked segment report")
    path = tmp_path / "approvals" / UC / "approvals.jsonl"
    assert path.is_file()
    (line,) = path.read_text().splitlines()
    assert json.loads(line) == record
    assert set(record) == {"use_case", "version", "decision", "approver", "note", "at", "recorded_by"}
    assert record["at"].endswith("+00:00") and record["recorded_by"]


def test_log_is_append_only(log, tmp_path):
    path = tmp_path / "approvals" / UC / "approvals.jsonl"
    log.record(UC, V1, "alice", "approve")
    before = path.read_bytes()
    for approver, decision in [("bob", "approve"), ("alice", "reject"), ("carol", "approve")]:
        log.record(UC, V1, approver, decision)
        after = path.read_bytes()
        assert len(after) > len(before) and after.startswith(before)  # earlier lines byte-identical
        before = after
    assert [e["approver"] for e in log.entries(UC)] == ["alice", "bob", "alice", "carol"]


def test_latest_decision_per_person_wins(log):
    log.record(UC, V1, "alice", "approve")
    log.record(UC, V1, "bob", "approve")
    assert log.status(UC, V1) == ApprovalStatus(approvers=("alice", "bob"), rejected_by=())
    log.record(UC, V1, "alice", "reject", note="segment gap in the south")
    status = log.status(UC, V1)
    assert status.approvers == ("bob",) and status.rejected_by == ("alice",)
    assert status.approvals == 1 and status.rejected
    log.record(UC, V1, "alice", "approve", note="gap explained")
    status = log.status(UC, V1)
    assert status.approvers == ("alice", "bob") and not status.rejected and status.approvals == 2


def test_same_approver_counts_once(log):
    for _ in range(3):
        log.record(UC, V1, "alice", "approve")
    log.record(UC, V1, "Alice ", "approve")  # same person, other spelling
    assert log.status(UC, V1).approvals == 1
    log.record(UC, V1, "bob", "approve")
    assert log.status(UC, V1).approvals == 2


def test_decisions_are_per_version(log):
    log.record(UC, V1, "alice", "approve")
    log.record(UC, V2, "bob", "reject")
    assert log.status(UC, V1) == ApprovalStatus(approvers=("alice",), rejected_by=())
    assert log.status(UC, V2) == ApprovalStatus(approvers=(), rejected_by=("bob",))
    assert [e["approver"] for e in log.entries(UC, V2)] == ["bob"]
    assert len(log.entries(UC)) == 2


def test_nothing_recorded_yet(log):
    assert log.entries(UC) == []
    status = log.status(UC, V1)
    assert status.approvals == 0 and not status.rejected


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
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(log, tmp_path, kwargs, fragment):
    args = dict(use_case=UC, version=V1, approver="alice", decision="approve", note="")
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        log.record(**args)
    assert fragment in str(info.value)
    assert not list((tmp_path).rglob("approvals.jsonl"))


def test_note_at_the_limit_is_accepted(log):
    assert log.record(UC, V1, "alice", "approve", note="x" * MAX_NOTE_CHARS)["note"] == "x" * MAX_NOTE_CHARS


def test_corrupt_line_is_reported_with_its_place(log, tmp_path):
    log.record(UC, V1, "alice", "approve")
    path = tmp_path / "approvals" / UC / "approvals.jsonl"
    with open(path, "a") as fh:
        fh.write('{"use_case": "purchase_prop\n')
    with pytest.raises(ValueError, match=r"approvals.jsonl:2: not a JSON record"):
        log.entries(UC)
