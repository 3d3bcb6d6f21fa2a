"""Model registry: content addressing, idempotence, aliases, promotion log, gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from factory_assets.assembly import registry as registry_module
from factory_assets.assembly.registry import (
    GateDecision,
    ModelRegistry,
    RegistryIntegrityError,
    UnknownAliasError,
    UnknownUseCaseError,
    UnknownVersionError,
    content_sha256,
    decide_promotion,
)
from factory_assets.assembly.training import classification_metrics, train_model

FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3_000, 3)).astype(np.float32)
    y = (X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=3_000) > 0).astype(float)
    return X, y


@pytest.fixture(scope="module", params=["xgboost", "lightgbm"])
def model(request, data):
    X, y = data
    return train_model("binary", request.param, X[:2000], y[:2000], X[2000:2500], y[2000:2500],
                       feature_names=FEATURES, num_boost_round=60, device="cpu")


def _register(reg, model, data, **kw):
    X, y = data
    return reg.register(
        "churn", model,
        metrics=classification_metrics(y[2500:], model.predict(X[2500:])),
        baseline_metrics={"auc": 0.5, "pr_auc": float(y.mean()), "log_loss": 0.69},
        feature_contracts={"customer_features": "1.2.0"},
        data_versions={"customer_features": "snap-42"},
        code_version="abc123",
        created_by="tester",
        **kw,
    )


def test_round_trip_via_champion_alias(tmp_path, model, data):
    X, _ = data
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data)
    assert len(mv.version) == 16
    ext = "ubj" if model.engine == "xgboost" else "txt"
    assert (tmp_path / "churn" / mv.version / f"model.{ext}").is_file()
    manifest = json.loads((tmp_path / "churn" / mv.version / "manifest.json").read_text())
    for key in ("use_case", "version", "engine", "task", "feature_names", "feature_contracts", "params", "metrics",
                "baseline_metrics", "data_versions", "code_version", "device", "training_seconds", "created_at",
                "created_by"):
        assert key in manifest, key
    assert manifest["feature_contracts"] == {"customer_features": "1.2.0"}
    assert manifest["created_by"] == "tester" and manifest["device"]["device"] == "cpu"
    assert manifest["created_at"].endswith("+00:00")

    reg.set_alias("churn", "champion", mv.version, "first model")
    loaded = reg.load_model("churn", "champion")
    assert loaded.engine == model.engine and loaded.feature_names == FEATURES
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert reg.get("churn", "champion").version == mv.version


def test_register_is_idempotent(tmp_path, model, data):
    reg = ModelRegistry(tmp_path)
    first = _register(reg, model, data)
    mtime = (first.path / "manifest.json").stat().st_mtime_ns
    again = _register(reg, model, data)
    assert again.version == first.version and again.created_at == first.created_at
    assert (first.path / "manifest.json").stat().st_mtime_ns == mtime
    assert len(reg.list_versions("churn")) == 1
    assert not [p for p in (tmp_path / "churn").iterdir() if p.name.startswith(".tmp")]


def test_list_newest_first_and_promotion_log(tmp_path, data):
    X, y = data
    reg = ModelRegistry(tmp_path)
    versions = []
    for seed in range(3):
        m = train_model("binary", "xgboost", X[:2000], y[:2000], X[2000:2500], y[2000:2500],
                        feature_names=FEATURES, num_boost_round=20, seed=seed, device="cpu")
        versions.append(_register(reg, m, data).version)
    assert len(set(versions)) == 3
    assert [mv.version for mv in reg.list_versions("churn")] == versions[::-1]

    reg.set_alias("churn", "champion", versions[0], "first model", actor="ci")
    reg.set_alias("churn", "challenger", versions[1], "candidate")
    reg.set_alias("churn", "champion", "challenger", "beats champion by 2%")  # alias copy
    hist = reg.history("churn")
    assert [(h["alias"], h["version"], h["previous_version"]) for h in hist] == [
        ("champion", versions[0], None),
        ("challenger", versions[1], None),
        ("champion", versions[1], versions[0]),
    ]
    assert hist[0]["actor"] == "ci" and hist[2]["reason"] == "beats champion by 2%"
    assert all(h["time"].endswith("+00:00") for h in hist)
    log = (tmp_path / "churn" / "promotions.jsonl").read_text().splitlines()
    assert len(log) == 3
    reg.clear_alias("churn", "challenger", "promoted")
    assert (tmp_path / "churn" / "promotions.jsonl").read_text().splitlines()[:3] == log  # append-only
    assert reg.aliases("churn") == {"champion": versions[1]}


def test_unknown_names_raise_key_errors(tmp_path, model, data):
    reg = ModelRegistry(tmp_path)
    with pytest.raises(UnknownUseCaseError, match="registered use cases"):
        reg.list_versions("nope")
    mv = _register(reg, model, data)
    with pytest.raises(KeyError) as exc:
        reg.get("churn", "deadbeefdeadbeef")
    assert isinstance(exc.value, UnknownVersionError) and mv.version in str(exc.value)
    with pytest.raises(UnknownAliasError, match="not set"):
        reg.load_model("churn", "champion")
    with pytest.raises(UnknownVersionError):
        reg.set_alias("churn", "champion", "0000", "typo")
    with pytest.raises(ValueError):
        reg.set_alias("churn", "production", mv.version, "unknown alias name")
    with pytest.raises(ValueError):
        reg.register("../evil", model)


def test_tampered_model_is_detected(tmp_path, model, data):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data)
    mv.model_path.write_bytes(mv.model_path.read_bytes() + b" ")
    with pytest.raises(RuntimeError):
        reg.load_model("churn", mv.version)


# ---- integrity: what was registered is what scores ---------------------------------------


def _edit_manifest(mv, change) -> None:
    manifest = json.loads((mv.path / "manifest.json").read_text())
    change(manifest)
    (mv.path / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.mark.parametrize("edit", [
    lambda m: m["metrics"].update(auc=0.999),
    lambda m: m.setdefault("extra", {}).update(categories={"a": ["x", "y"]}),
    lambda m: m["baseline_metrics"].update(auc=0.1),
    lambda m: m.update(created_by="someone.else"),
    lambda m: m["files"].update({"model.txt": "0" * 64, "model.ubj": "0" * 64}),
])
def test_an_edited_manifest_is_refused_naming_the_version_the_file_and_the_fix(tmp_path, model, data, edit):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data, extra={"categories": {}, "test_window": ["2025-01-01", "2025-01-31"]})
    assert mv.content_sha256 == content_sha256(mv.manifest) and reg.verify("churn", mv.version).version == mv.version
    reg.set_alias("churn", "champion", mv.version, "first model")
    _edit_manifest(mv, edit)
    for call in (lambda: reg.verify("churn", "champion"), lambda: reg.load_model("churn", "champion")):
        with pytest.raises(RegistryIntegrityError) as info:
            call()
        message = str(info.value)
        assert mv.version in message and str(mv.path / "manifest.json") in message
        assert "edited after registration" in message and "will not score or be promoted" in message
        assert "Restore" in message and "retrain" in message


def test_every_file_of_a_version_is_covered(tmp_path, model, data):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data, files={"reference.parquet": b"PAR1 reference rows"})
    assert set(mv.manifest["files"]) == {mv.manifest["model_file"], "reference.parquet"}
    (mv.path / "reference.parquet").write_bytes(b"PAR1 other rows")
    with pytest.raises(RegistryIntegrityError, match="reference.parquet was changed after registration"):
        reg.load_model("churn", mv.version)
    reg.verify("churn", mv.version, deep=False)  # the cheap check reads no file bytes


def test_a_deleted_model_file_is_a_clear_error_not_a_bare_file_not_found(tmp_path, model, data):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data)
    mv.model_path.unlink()
    for verify in (True, False):
        with pytest.raises(RegistryIntegrityError) as info:
            reg.load_model("churn", mv.version, verify=verify)
        assert not isinstance(info.value, FileNotFoundError)
        assert str(mv.model_path) in str(info.value) and "missing" in str(info.value) and mv.version in str(info.value)
    (mv.path / "manifest.json").unlink()  # an alias pointing at a version without manifest says what is missing
    (tmp_path / "churn" / "promotions.jsonl").write_text(json.dumps({"alias": "champion", "version": mv.version}) + "\n")
    with pytest.raises(RegistryIntegrityError, match="manifest.json is missing"):
        reg.get("churn", "champion")


def test_versions_registered_before_content_hashes_are_sealed_once_then_a_stripped_hash_is_refused(tmp_path, model, data):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data)
    for name in (".sealed",):  # as a registry written by the previous code: no content hash, no marker
        (tmp_path / "churn" / name).unlink()
    _edit_manifest(mv, lambda m: [m.pop("content_sha256"), m.pop("files")])
    sealed = reg.verify("churn", mv.version)  # trust on first use: sealed as found
    assert sealed.content_sha256 == content_sha256(sealed.manifest)
    assert json.loads((tmp_path / "churn" / ".sealed").read_text())["legacy_versions_sealed"] == [mv.version]
    _edit_manifest(mv, lambda m: [m.pop("content_sha256"), m["metrics"].update(auc=0.999)])
    with pytest.raises(RegistryIntegrityError, match="has no content hash"):
        reg.load_model("churn", mv.version)


@pytest.mark.parametrize("crash", ["in the history append", "in the aliases snapshot"])
def test_an_alias_change_and_its_history_line_are_one_atomic_step(tmp_path, model, data, monkeypatch, crash):
    """A kill between the two writes never leaves alias and history telling different stories."""
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data)
    reg.set_alias("churn", "challenger", mv.version, "trained")
    real_open, real_write = open, registry_module._atomic_write

    def killed_open(path, mode="r", *args, **kwargs):
        if str(path).endswith("promotions.jsonl") and "a" in mode:
            raise RuntimeError("killed")
        return real_open(path, mode, *args, **kwargs)

    def killed_write(path, data):
        if path.name == "aliases.json":
            raise RuntimeError("killed")
        return real_write(path, data)

    if crash == "in the history append":
        monkeypatch.setattr(registry_module, "open", killed_open, raising=False)
    else:
        monkeypatch.setattr(registry_module, "_atomic_write", killed_write)
    with pytest.raises(RuntimeError, match="killed"):
        reg.set_alias("churn", "champion", mv.version, "promoted")
    monkeypatch.undo()
    fresh = ModelRegistry(tmp_path)
    promoted_in_history = any(h["alias"] == "champion" and h["version"] == mv.version for h in fresh.history("churn"))
    assert ("champion" in fresh.aliases("churn")) == promoted_in_history
    assert promoted_in_history == (crash == "in the aliases snapshot")
    fresh.set_alias("churn", "champion", mv.version, "promoted again")  # the next change also refreshes the snapshot
    assert json.loads((tmp_path / "churn" / "aliases.json").read_text()) == fresh.aliases("churn")


def test_a_torn_history_line_from_a_kill_mid_append_is_ignored_and_cut_off(tmp_path, model, data):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data)
    reg.set_alias("churn", "challenger", mv.version, "trained")
    history = tmp_path / "churn" / "promotions.jsonl"
    with open(history, "a") as fh:
        fh.write('{"alias": "champion", "version": "' + mv.version[:5])  # killed mid-write: no newline
    assert reg.aliases("churn") == {"challenger": mv.version} and len(reg.history("churn")) == 1
    reg.set_alias("churn", "champion", mv.version, "promoted")
    assert [h["alias"] for h in reg.history("churn")] == ["challenger", "champion"]
    assert all(json.loads(line) for line in history.read_text().splitlines())


def test_orphan_temporary_folders_of_a_crashed_register_are_removed_by_the_next(tmp_path, model, data):
    reg = ModelRegistry(tmp_path)
    mv = _register(reg, model, data)
    # what a registration and an alias change killed mid-write (SIGKILL: no cleanup ran) leave behind
    orphan = tmp_path / "churn" / ".tmp-0123456789abcdef-deadbeef"
    orphan.mkdir()
    (orphan / "model.txt").write_bytes(b"half written")
    (tmp_path / "churn" / ".aliases.json.x1.tmp").write_text("{}")
    assert [v.version for v in reg.list_versions("churn")] == [mv.version]
    assert _register(reg, model, data).version == mv.version  # even a no-op registration cleans up
    assert [p.name for p in (tmp_path / "churn").iterdir() if p.name.startswith((".tmp-", ".aliases"))] == []
    assert [v.version for v in reg.list_versions("churn")] == [mv.version]


# ---- promotion gate ----------------------------------------------------------------

BASE_AUC = {"auc": 0.60}
BASE_MAE = {"mae": 10.0}


def test_gate_refuses_worse_than_champion():
    d = decide_promotion("auc", {"auc": 0.78}, {"auc": 0.80}, BASE_AUC, 0.01, holdout_id="2024-W10")
    assert isinstance(d, GateDecision)
    assert not d.promote and d.beats_baseline
    assert "0.78" in d.reason and "0.8" in d.reason and "2024-W10" in d.reason and "margin" in d.reason


def test_gate_refuses_within_margin_and_accepts_beyond():
    assert not decide_promotion("auc", {"auc": 0.805}, {"auc": 0.80}, BASE_AUC, 0.01).promote
    d = decide_promotion("auc", {"auc": 0.82}, {"auc": 0.80}, BASE_AUC, 0.01)
    assert d.promote and d.improvement == pytest.approx(0.025)


def test_gate_never_promotes_below_baseline():
    d = decide_promotion("auc", {"auc": 0.55}, None, BASE_AUC, 0.0)
    assert not d.promote and not d.beats_baseline and "baseline" in d.reason
    d = decide_promotion("auc", {"auc": 0.59}, {"auc": 0.50}, BASE_AUC, 0.0)  # beats champion, not baseline
    assert not d.promote and not d.beats_baseline
    assert not decide_promotion("auc", {"auc": 0.60}, None, BASE_AUC, 0.0).promote  # tie is not a win


def test_gate_first_model():
    d = decide_promotion("auc", {"auc": 0.70}, None, BASE_AUC, 0.05)
    assert d.promote and d.beats_baseline and "first model" in d.reason


def test_gate_lower_is_better():
    assert decide_promotion("mae", {"mae": 8.0}, None, BASE_MAE, 0.02).promote  # first model
    assert not decide_promotion("mae", {"mae": 11.0}, None, BASE_MAE, 0.0).promote  # worse than baseline
    assert not decide_promotion("mae", {"mae": 8.5}, {"mae": 8.0}, BASE_MAE, 0.02).promote  # worse than champion
    assert not decide_promotion("mae", {"mae": 7.9}, {"mae": 8.0}, BASE_MAE, 0.02).promote  # 1.25% < 2%
    assert decide_promotion("mae", {"mae": 7.5}, {"mae": 8.0}, BASE_MAE, 0.02).promote  # 6.25% >= 2%
    assert not decide_promotion("wape", {"wape": 0.3}, {"wape": 0.2}, {"wape": 0.25}, 0.0).promote
    assert not decide_promotion("log_loss", {"log_loss": float("nan")}, None, {"log_loss": 0.6}, 0.0).promote
