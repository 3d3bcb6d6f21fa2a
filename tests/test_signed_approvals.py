"""Approvals tied to real people: declared approvers, Ed25519 signatures over the version's content hash,
one count per key, never the trainer, a hash-chained log whose tampering blocks promotion; `factory keygen`,
`factory approve --key` and the record_approval job.

Every key is generated in the test (tmp_path); the approvers file is a temporary FACTORY_APPROVERS_FILE."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from factory_assets.assembly.registry import ModelRegistry, content_sha256
from factory_assets.assembly.specs import USE_CASES_DIR, load_use_case
from factory_assets.assembly.training import train_model
from factory_assets.governance.approvals import (
    generate_key_pair,
    load_approvers,
    now_iso,
    parse_public_key,
    public_key_line,
    sign_approval,
)
from factory_assets.governance.facts import (
    approval_status,
    approvals_log,
    model_facts,
    signed_content,
)
from factory_assets.governance.policy import (
    evaluate_promotion,
    load_policy,
    scoring_allowed,
)
from factory_assets.settings import FactoryPaths

UC = "purchase_propensity"  # high tier: two approvals
SPEC = load_use_case(USE_CASES_DIR / UC / "defs.yaml")
TRAINER = "trainer.tom"


@pytest.fixture(scope="module")
def tiny_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(float)
    return train_model("binary", "xgboost", X[:300], y[:300], X[300:], y[300:], feature_names=["a", "b", "c"],
                       num_boost_round=5, device="cpu")


@pytest.fixture
def world(tmp_path, monkeypatch, tiny_model):
    """A FACTORY_HOME whose registry holds one purchase_propensity challenger trained by trainer.tom, and
    an approvers file: alice and bob (high), carol (low only), tom (the trainer, by identity), alice's key
    also declared as alice.alt, tom's key also declared as tom.alt."""
    home = tmp_path / "home"
    paths = FactoryPaths(home).create()
    registry = ModelRegistry(paths.artifacts / "models")
    version = registry.register(UC, tiny_model, metrics={"auc": 0.9}, baseline_metrics={"auc": 0.5},
                                created_by=TRAINER)
    registry.set_alias(UC, "challenger", version.version, "trained")
    keys = {n: load_pem_private_key(generate_key_pair()[0], None) for n in ("alice", "bob", "carol", "tom", "mallory")}
    people = [("alice", "alice", ["medium", "high"], []), ("alice.alt", "alice", ["high"], []),
              ("bob", "bob", ["high"], []), ("carol", "carol", ["low"], []), ("tom", "tom", ["high"], [TRAINER]),
              ("tom.alt", "tom", ["high"], [])]
    declared = tmp_path / "approvers.yaml"
    declared.write_text(yaml.safe_dump({"approvers": [
        {"name": n, "role": "reviewer", "tiers": t, "public_key": public_key_line(keys[k].public_key(), n),
         "identities": i} for n, k, t, i in people]}))
    monkeypatch.setenv("FACTORY_HOME", str(home))
    monkeypatch.setenv("FACTORY_APPROVERS_FILE", str(declared))
    from cryptography.hazmat.primitives import serialization

    for name, key in keys.items():  # each person's private key file, as `factory approve --key` reads it
        (tmp_path / f"{name}.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return type("World", (), dict(home=home, paths=paths, registry=registry, version=version, keys=keys,
                                  declared=declared, tmp=tmp_path, log=approvals_log(paths.artifacts)))


def sign(world, name, decision="approve", *, key=None, content=None, version=None, signed_decision=None):
    """Append ``name``'s decision as the log would take it, signed with ``key`` (default: their own)."""
    mv = world.registry.get(UC, version or world.version.version)
    content = content or signed_content(mv)
    at = now_iso()
    signature = sign_approval(world.keys[key or name.split(".")[0]], UC, mv.version, content,
                              signed_decision or decision, at, name)
    return world.log.record(UC, mv.version, name, decision, content_sha256=content, at=at, signature=signature)


def approvals_rule(world, version=None):
    mv = world.registry.get(UC, version or world.version.version)
    report = evaluate_promotion(load_policy(), model_facts(SPEC, mv, world.log))
    return next(r for r in report.rules if r.rule == "approvals")


def test_a_valid_two_person_approval_passes_the_high_tier_and_lets_the_model_score(world):
    assert not approvals_rule(world).passed
    sign(world, "alice")
    rule = approvals_rule(world)
    assert not rule.passed and "1 distinct approval(s) < required 2" in rule.detail
    sign(world, "bob")
    rule = approvals_rule(world)
    assert rule.passed and "2 distinct approval(s) >= required 2" in rule.detail
    mv = world.registry.get(UC, "challenger")
    assert scoring_allowed(load_policy(), model_facts(SPEC, mv, world.log)).passed


def test_one_key_under_two_names_counts_once(world):
    sign(world, "alice")
    sign(world, "alice.alt")  # the same key, declared under a second name
    status = approval_status(SPEC, world.version, world.log)
    assert status.approvals == 1 and any("counted once" in note for note in status.discounted)
    rule = approvals_rule(world)
    assert not rule.passed and "1 distinct approval(s) < required 2" in rule.detail and "counted once" in rule.detail
    sign(world, "bob")
    assert approvals_rule(world).passed


@pytest.mark.parametrize("who", ["tom", "tom.alt", "Trainer.Tom"])
def test_the_trainers_own_approval_does_not_count(world, who):
    """By declared identity (tom trains as trainer.tom), by key (tom.alt holds tom's key), by name."""
    if who == "Trainer.Tom":  # an approver declared under the trainer's own name
        data = yaml.safe_load(world.declared.read_text())
        data["approvers"].append({"name": "trainer.tom", "role": "x", "tiers": ["high"],
                                  "public_key": public_key_line(world.keys["tom"].public_key())})
        world.declared.write_text(yaml.safe_dump(data))
    sign(world, "alice")
    sign(world, who, key="tom")
    status = approval_status(SPEC, world.version, world.log)
    assert status.approvals == 1 and any("trained this version" in n for n in status.discounted)
    assert not approvals_rule(world).passed


@pytest.mark.parametrize("case, expected", [
    ("unsigned", "unsigned"),
    ("someone else's key", "signature does not verify with bob's declared key"),
    ("signed another decision", "signature does not verify"),
    ("undeclared person", "mallory is not a declared approver"),
    ("tier not allowed", "may approve tiers ['low'], not high"),
    ("signed other content", "signed for other content"),
])
def test_an_unsigned_or_wrongly_signed_decision_does_not_count(world, case, expected):
    sign(world, "alice")
    mv = world.version
    if case == "unsigned":  # what the old `factory approve --approver bob` wrote, chained like any line
        world.log.append(UC, {"use_case": UC, "version": mv.version, "decision": "approve", "approver": "bob",
                              "note": "", "at": now_iso()})
    elif case == "someone else's key":
        sign(world, "bob", key="mallory")
    elif case == "signed another decision":
        sign(world, "bob", "approve", signed_decision="reject")
    elif case == "undeclared person":
        sign(world, "mallory")
    elif case == "tier not allowed":
        sign(world, "carol")
    else:
        sign(world, "bob", content="f" * 64)
    status = approval_status(SPEC, mv, world.log)
    assert status.approvals == 1 and any(expected in note for note in status.discounted), status.discounted
    rule = approvals_rule(world)
    assert not rule.passed and "not counted" in rule.detail and expected in rule.detail


def test_an_edited_and_rehashed_manifest_withdraws_the_approvals_signed_before(world):
    sign(world, "alice")
    sign(world, "bob")
    assert approvals_rule(world).passed
    path = world.version.path / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"]["auc"] = 0.999
    manifest["content_sha256"] = content_sha256(manifest)  # a careful forger re-hashes: the registry accepts it...
    path.write_text(json.dumps(manifest))
    world.registry.verify(UC, world.version.version)
    status = approval_status(SPEC, world.registry.get(UC, "challenger"), world.log)  # ...the signatures do not
    assert status.approvals == 0 and all("signed for other content" in n for n in status.discounted)


def _lines(world):
    return world.log.path(UC).read_text().splitlines(keepends=True)


@pytest.mark.parametrize("tamper, where", [
    ("edit a line", "approvals.jsonl:2: its 'prev' hash does not match line 1"),
    ("edit the last line", "approvals.jsonl:3: differs from the hash in approvals.head.json"),
    ("reorder two lines", "approvals.jsonl:1: its 'prev' hash does not match the start of the log"),
    ("delete a line", "approvals.jsonl:1: its 'prev' hash does not match the start of the log"),
    ("delete the last line", "has 2 line(s) but approvals.head.json records 3"),
    ("insert an unchained line", "an unchained line after chained ones"),
    ("delete the log", "the log was deleted"),
])
def test_a_tampered_log_blocks_promotion_and_refuses_new_lines(world, tamper, where):
    sign(world, "alice", "reject")
    sign(world, "alice")
    sign(world, "bob")
    assert approvals_rule(world).passed
    lines, path = _lines(world), world.log.path(UC)
    if tamper == "edit a line":
        lines[0] = lines[0].replace('"decision": "reject"', '"decision": "approve"')
    elif tamper == "edit the last line":
        lines[2] = lines[2].replace('"note": ""', '"note": "fine"')
    elif tamper == "reorder two lines":
        lines[0], lines[1] = lines[1], lines[0]
    elif tamper == "delete a line":
        del lines[0]
    elif tamper == "delete the last line":
        del lines[2]
    elif tamper == "insert an unchained line":
        lines.append(json.dumps({"use_case": UC, "version": world.version.version, "approver": "bob",
                                 "decision": "reject"}) + "\n")
    if tamper == "delete the log":
        path.unlink()
    else:
        path.write_text("".join(lines))
    status = approval_status(SPEC, world.version, world.log)
    assert status.approvals == 0 and where in status.tampered and "restore approvals.jsonl from a backup" in status.tampered
    rule = approvals_rule(world)
    assert not rule.passed and rule.detail.startswith("approvals cannot be trusted") and where in rule.detail
    with pytest.raises(ValueError, match="blocked until it is repaired"):
        sign(world, "bob")


def test_a_replayed_old_approval_does_not_undo_a_later_rejection(world):
    old = sign(world, "alice")
    sign(world, "alice", "reject")
    sign(world, "bob")
    replay = {k: v for k, v in old.items() if k not in ("prev", "recorded_by", "recorded_at")}
    world.log.append(UC, replay)  # a copy of alice's first, validly signed, line
    status = approval_status(SPEC, world.version, world.log)
    assert status.rejected and status.rejected_by == ("alice",) and status.approvers == ("bob",)


# ---- the command line and the UI job ------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_prints_the_entry_to_declare(tmp_path, capsys):
    from factory_assets.cli import main

    out = tmp_path / "keys"
    assert main(["keygen", "--approver", "a.lee", "--out", str(out), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    private = out / "a.lee.ed25519.pem"
    assert made["private_key"] == str(private) and stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert made["public_key"].startswith("ssh-ed25519 ") and made["public_key"].endswith(" a.lee")
    key = load_pem_private_key(private.read_bytes(), None)
    assert public_key_line(key.public_key()) == public_key_line(parse_public_key(made["public_key"]))
    assert (out / "a.lee.ed25519.pub").read_text().strip() == made["public_key"]
    assert main(["keygen", "--approver", "a.lee", "--out", str(out)]) == 2  # never overwrites a key
    assert "already exist" in capsys.readouterr().err
    assert main(["keygen", "--approver", "../x", "--out", str(out)]) == 2


def test_factory_approve_signs_with_the_key_and_refuses_what_would_not_count(world, capsys):
    from factory_assets.cli import main

    def approve(name, key, *extra):
        return main(["approve", UC, "challenger", "--approver", name, "--key", str(world.tmp / f"{key}.pem"),
                     "--decision", "approve", *extra])

    assert approve("alice", "bob") == 2
    assert "is not alice's declared key" in capsys.readouterr().err
    assert approve("tom", "tom") == 2
    assert "the four-eyes rule needs someone else" in capsys.readouterr().err
    assert approve("mallory", "mallory") == 2
    err = capsys.readouterr().err
    assert "mallory is not a declared approver" in err and "factory keygen --approver mallory" in err
    assert approve("carol", "carol") == 2
    assert "tier high" in capsys.readouterr().err
    assert world.log.entries(UC) == []  # nothing refused was written
    assert approve("alice", "alice", "--json") == 0
    assert json.loads(capsys.readouterr().out)["approvals"] == 1
    assert approve("bob", "bob") == 0
    assert "2 signed approval(s)" in capsys.readouterr().out
    assert approvals_rule(world).passed


def test_the_record_approval_job_takes_a_signature_made_with_sign_only(world, capsys):
    import dagster as dg

    from factory_assets.cli import main
    from factory_assets.governance.assets import build_governance_defs
    from factory_assets.resources import FactoryStore, GovernancePolicy

    assert main(["approve", UC, "challenger", "--approver", "alice", "--key", str(world.tmp / "alice.pem"),
                 "--decision", "approve", "--note", "reviewed", "--sign-only"]) == 0
    run_config = yaml.safe_load(capsys.readouterr().out)
    assert world.log.entries(UC) == []  # --sign-only records nothing
    defs = dg.Definitions.merge(build_governance_defs(), dg.Definitions(
        resources={"store": FactoryStore(home=str(world.home)), "policy": GovernancePolicy()}))
    job = defs.resolve_job_def("record_approval")
    forged = json.loads(json.dumps(run_config))
    forged["ops"]["record_approval_op"]["config"]["decision"] = "reject"  # the signature covers the decision
    failed = job.execute_in_process(run_config=forged, raise_on_error=False)
    assert not failed.success and world.log.entries(UC) == []
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    assert "signature does not verify" in failure.event_specific_data.error.message
    assert job.execute_in_process(run_config=run_config).success
    (entry,) = world.log.entries(UC)
    assert entry["approver"] == "alice" and entry["note"] == "reviewed"
    assert approval_status(SPEC, world.version, world.log).approvals == 1


def test_an_invalid_approvers_file_names_the_file_and_the_field(tmp_path):
    from factory_assets.governance.approvals import ApproversError

    bad = tmp_path / "approvers.yaml"
    bad.write_text("approvers:\n  - {name: a, role: r, tiers: [urgent], public_key: 'ssh-rsa AAAA'}\n")
    with pytest.raises(ApproversError) as info:
        load_approvers(bad)
    assert str(bad) in str(info.value) and "approvers.0.tiers.0" in str(info.value) and "approvers.0.public_key" in str(info.value)
    assert load_approvers(USE_CASES_DIR.parents[2] / "governance" / "approvers.yaml").people == ()


def test_a_log_written_before_signatures_keeps_its_lines_which_no_longer_count(world):
    """An existing home: its unsigned, unchained lines stay as the log's first lines; signed ones chain on."""
    path = world.log.path(UC)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = [{"use_case": UC, "version": world.version.version, "decision": "approve", "approver": name, "note": "",
            "at": "2026-01-01T00:00:00+00:00", "recorded_by": "someone"} for name in ("alice", "bob")]
    path.write_text("".join(json.dumps(entry) + "\n" for entry in old))
    assert world.log.check_chain(UC) is None
    status = approval_status(SPEC, world.version, world.log)
    assert status.approvals == 0 and [n.split(": ")[-1] for n in status.discounted] == ["unsigned", "unsigned"]
    sign(world, "alice")
    sign(world, "bob")
    assert world.log.check_chain(UC) is None and approvals_rule(world).passed
