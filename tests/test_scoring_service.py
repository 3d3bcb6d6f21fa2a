"""The scoring services: a real LightGBM model in a temporary registry, scored through the Python API,
the HTTP endpoint and the CLI, with good input, bad input and input that only earns warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from factory_assets.assembly.registry import ModelRegistry
from factory_assets.assembly.templates import encode_features, fit_template
from factory_assets.assembly.training import classification_metrics
from factory_assets.assembly.feature_schema import ScoringInputError, infer_feature_schema
from factory_assets.distribution.http_api import make_server
from factory_assets.distribution.service import ModelNotFoundError, ScoringService
from factory_assets.settings import PROJECT_ROOT

USE_CASE = "churn_demo"
FEATURES = ["spend", "is_member", "channel", "visits"]
CHANNELS = ["phone", "store", "web"]


def synthetic(n: int, seed: int) -> pl.DataFrame:
    """Customers whose churn depends on spend, membership and channel (plus noise)."""
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 50.0, n)
    spend[rng.random(n) < 0.05] = np.nan  # training sees missing spend: the column is nullable
    member = rng.random(n) < 0.4
    channel = rng.choice(CHANNELS, n)
    visits = rng.integers(0, 20, n)
    logit = -0.02 * np.nan_to_num(spend, nan=100.0) + 1.5 * member + np.where(channel == "web", 1.2, -0.5) + 1.0
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pl.DataFrame({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "split_time": [date(2026, 1, 1) + timedelta(days=i % 40) for i in range(n)],
        "spend": pl.Series(spend).fill_nan(None),
        "is_member": member,
        "channel": channel,
        "visits": visits,
        "churned": churn.astype(np.int8),
    })


def train_champion(registry_root: Path) -> None:
    """Register a LightGBM churn model trained on real signal as the champion of USE_CASE."""
    frame = synthetic(4000, seed=1)
    # One thread: on a busy 2-core machine LightGBM's default OpenMP threads can take a minute for this.
    result = fit_template("binary_classification", frame, target="churned", feature_columns=FEATURES,
                          time_column="split_time", engine="lightgbm", metric="auc", device="cpu",
                          params={"num_threads": 1})
    registry = ModelRegistry(registry_root)
    version = registry.register(USE_CASE, result.model, metrics=result.metrics, baseline_metrics=result.baseline_metrics,
                                extra={"categories": result.categories, "template": "binary_classification",
                                       "feature_schema": infer_feature_schema(frame, FEATURES, result.categories)})
    registry.set_alias(USE_CASE, "champion", version.version, reason="test")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A FACTORY_HOME whose registry holds one champion model trained on real signal."""
    home = tmp_path_factory.mktemp("factory")
    train_champion(home / "artifacts" / "models")
    return home


@pytest.fixture(scope="module")
def service(home):
    return ScoringService(home / "artifacts" / "models")


@pytest.fixture(scope="module")
def fresh():
    return synthetic(600, seed=2)


def expected(service, frame: pl.DataFrame) -> np.ndarray:
    mv = service.registry.get(USE_CASE, "champion")
    model = service.registry.load_model(USE_CASE, "champion")
    X, _ = encode_features(frame, FEATURES, mv.manifest["extra"]["categories"])
    return model.predict(X)


# ---- Python API ---------------------------------------------------------------------------


def test_good_input_gets_the_models_predictions_and_recovers_the_signal(service, fresh, tmp_path):
    rows = fresh.drop("churned")
    result = service.score(USE_CASE, rows)
    assert result.model_version == service.registry.get(USE_CASE, "champion").version
    assert result.frame.columns == [*rows.columns, "prediction", "model_version"]
    assert result.frame["model_version"].unique().to_list() == [result.model_version]
    np.testing.assert_allclose(result.predictions, expected(service, fresh), rtol=0, atol=1e-12)
    assert classification_metrics(fresh["churned"].to_numpy(), np.array(result.predictions))["auc"] > 0.75
    assert result.warnings == []  # spend has nulls, but training saw nulls too

    # The same rows as pandas, as JSON-like dicts and as files score the same.
    fresh.write_csv(tmp_path / "in.csv")
    fresh.write_parquet(tmp_path / "in.parquet")
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r, default=str) for r in fresh.to_dicts()))
    for data in (rows.to_pandas(), rows.to_dicts(), tmp_path / "in.csv", str(tmp_path / "in.parquet"), tmp_path / "in.jsonl"):
        np.testing.assert_allclose(service.score(USE_CASE, data).predictions, result.predictions, atol=1e-9)

    # Types a department may send: numbers as text, booleans as 0/1, the version id instead of the alias.
    loose = rows.head(20).with_columns(pl.col("spend").cast(pl.String), pl.col("is_member").cast(pl.Int64))
    again = service.score(USE_CASE, loose, version=result.model_version)
    np.testing.assert_allclose(again.predictions, result.predictions[:20], atol=1e-12)


def test_missing_column_and_unreadable_values_are_errors_naming_column_and_rows(service, fresh):
    with pytest.raises(ScoringInputError) as missing:
        service.score(USE_CASE, fresh.drop("channel"))
    assert [p.column for p in missing.value.problems] == ["channel"]
    assert "channel" in str(missing.value) and "missing" in str(missing.value)

    bad = fresh.head(10).with_columns(pl.col("spend").cast(pl.String), pl.col("is_member").cast(pl.String))
    bad = bad.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("abc")).otherwise(pl.col("spend")).alias("spend"),
        pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("maybe")).otherwise(pl.col("is_member")).alias("is_member"),
    )
    with pytest.raises(ScoringInputError) as unreadable:
        service.score(USE_CASE, bad)
    problems = {p.column: p for p in unreadable.value.problems}
    assert set(problems) == {"spend", "is_member"}
    assert problems["spend"].rows == [3] and problems["spend"].count == 1 and "'abc'" in problems["spend"].problem
    assert problems["is_member"].rows == [7] and "'maybe'" in problems["is_member"].problem
    text = str(unreadable.value)
    assert len(text.splitlines()) == 3  # a heading and one line per column
    assert "spend" in text and "row 3" in text and "Fix:" in text


def test_empty_input_and_unknown_models_are_clear_errors(service, fresh):
    with pytest.raises(ScoringInputError, match="no rows"):
        service.score(USE_CASE, fresh.head(0))
    with pytest.raises(ScoringInputError, match="no rows"):
        service.score(USE_CASE, [])
    with pytest.raises(ModelNotFoundError, match=f"unknown use case 'nope'.*{USE_CASE}"):
        service.score("nope", fresh)
    with pytest.raises(ModelNotFoundError, match="challenger.*champion"):
        service.score(USE_CASE, fresh, alias="challenger")
    with pytest.raises(ModelNotFoundError, match="unknown version"):
        service.score(USE_CASE, fresh, version="0123456789abcdef")
    with pytest.raises(ModelNotFoundError):
        service.score("../etc", fresh)


def test_unknown_category_out_of_range_and_unexpected_nulls_are_warnings(service, fresh):
    rows = fresh.head(10).with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("fax")).otherwise(pl.col("channel")).alias("channel"),
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit(1e7)).otherwise(pl.col("spend")).alias("spend"),
        pl.when(pl.int_range(pl.len()) == 4).then(None).otherwise(pl.col("visits")).alias("visits"),
    )
    result = service.score(USE_CASE, rows)
    warned = {p.column: p for p in result.warnings}
    assert set(warned) == {"channel", "spend", "visits"}
    assert warned["channel"].rows == [2] and "'fax'" in warned["channel"].problem and "'web'" in warned["channel"].fix
    assert warned["spend"].rows == [5] and "training range" in warned["spend"].problem
    assert warned["visits"].rows == [4] and "empty" in warned["visits"].problem
    assert result.frame.height == 10 and result.frame["prediction"].is_not_null().all()


def test_describe_and_list_models_tell_a_caller_what_to_send(service):
    models = service.list_models()
    version = service.registry.get(USE_CASE, "champion").version
    assert models == {USE_CASE: {"aliases": {"champion": version}, "versions": [version]}}
    info = service.describe(USE_CASE, "champion")
    assert info["version"] == version and info["engine"] == "lightgbm" and info["task"] == "binary"
    assert info["aliases"] == ["champion"] and info["metrics"]["auc"] > 0.7
    schema = {f["name"]: f for f in info["feature_schema"]}
    assert [f["name"] for f in info["feature_schema"]] == FEATURES
    assert schema["channel"]["kind"] == "categorical" and schema["channel"]["categories"] == CHANNELS
    assert schema["is_member"]["kind"] == "boolean" and schema["spend"]["nullable"] is True
    assert schema["visits"]["kind"] == "numeric" and schema["visits"]["min"] == 0 and schema["visits"]["max"] == 19


def test_a_model_without_a_recorded_schema_still_scores_with_names_and_categories(home, fresh, tmp_path):
    registry = ModelRegistry(home / "artifacts" / "models")
    mv = registry.get(USE_CASE, "champion")
    old = ModelRegistry(tmp_path / "models")
    v = old.register(USE_CASE, registry.load_model(USE_CASE, "champion"),
                     extra={"categories": mv.manifest["extra"]["categories"]})
    old.set_alias(USE_CASE, "champion", v.version, reason="test")
    scored = ScoringService(tmp_path / "models").score(USE_CASE, fresh.drop("churned"))
    np.testing.assert_allclose(scored.predictions, expected(ScoringService(home / "artifacts" / "models"), fresh), atol=1e-12)


# ---- HTTP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(home):
    server = make_server(home / "artifacts" / "models", port=0, max_body_bytes=200_000)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def call(server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, str]:
    request = urllib.request.Request(server.url + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, json.loads(text), text
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        return exc.code, json.loads(text), text


def rows_json(frame: pl.DataFrame) -> bytes:
    return json.dumps({"rows": frame.drop("split_time", "churned").to_dicts()}).encode()


def test_http_scores_good_rows_like_the_python_api(server, service, fresh):
    assert call(server, "GET", "/health")[:2] == (200, {"status": "ok"})
    assert USE_CASE in call(server, "GET", "/models")[1]["models"]
    status, info, _ = call(server, "GET", f"/models/{USE_CASE}/champion")
    assert status == 200 and [f["name"] for f in info["feature_schema"]] == FEATURES

    rows = fresh.head(200)
    status, payload, _ = call(server, "POST", f"/models/{USE_CASE}/champion/score", rows_json(rows))
    assert status == 200
    assert payload["model_version"] == service.registry.get(USE_CASE, "champion").version
    np.testing.assert_allclose(payload["predictions"], expected(service, rows), atol=1e-12)
    assert payload["warnings"] == []


def test_http_bad_requests_get_per_column_errors_without_a_traceback(server, fresh):
    rows = fresh.head(5).drop("split_time", "churned").to_dicts()
    rows[1]["spend"] = "lots"
    del rows[0]["visits"]  # missing in one row only: null there, a warning, not an error
    for row in rows:
        row.pop("channel")
    status, payload, text = call(server, "POST", f"/models/{USE_CASE}/champion/score", json.dumps({"rows": rows}).encode())
    assert status == 400 and "Traceback" not in text
    errors = {e["column"]: e for e in payload["errors"]}
    assert set(errors) == {"spend", "channel"}
    assert errors["spend"]["rows"] == [1] and "'lots'" in errors["spend"]["problem"] and errors["spend"]["fix"]
    assert "missing" in errors["channel"]["problem"]

    status, payload, text = call(server, "POST", f"/models/{USE_CASE}/champion/score", b"{not json")
    assert status == 400 and "not valid JSON" in payload["errors"][0]["problem"] and "Traceback" not in text
    status, payload, _ = call(server, "POST", f"/models/{USE_CASE}/champion/score", b'{"data": []}')
    assert status == 400 and '"rows"' in payload["errors"][0]["problem"]
    status, payload, _ = call(server, "POST", f"/models/{USE_CASE}/champion/score", b'{"rows": []}')
    assert status == 400 and "no rows" in payload["errors"][0]["problem"]


def test_http_unknown_models_paths_and_big_bodies(server, fresh):
    status, payload, _ = call(server, "POST", "/models/nope/champion/score", rows_json(fresh.head(3)))
    assert status == 404 and USE_CASE in payload["error"]
    assert call(server, "GET", f"/models/{USE_CASE}/challenger")[0] == 404
    assert call(server, "GET", "/nowhere")[0] == 404
    status, payload, _ = call(server, "POST", f"/models/{USE_CASE}/champion/score", rows_json(pl.concat([fresh] * 5)))
    assert status == 413 and "limit" in payload["error"]


# ---- CLI ----------------------------------------------------------------------------------

CLI = ("import sys, argparse\n"
       "from factory_assets.distribution.service_cli import register_commands\n"
       "parser = argparse.ArgumentParser(prog='factory')\n"
       "register_commands(parser.add_subparsers(dest='command', required=True))\n"
       "args = parser.parse_args(sys.argv[1:])\n"
       "sys.exit(args.func(args))\n")


def factory(home, *args):
    env = {**os.environ, "FACTORY_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=PROJECT_ROOT, timeout=120)


def test_cli_scores_a_file_into_a_file_and_rejects_bad_input_with_exit_2(home, service, fresh, tmp_path):
    good = tmp_path / "customers.csv"
    fresh.drop("churned").write_csv(good)
    out = tmp_path / "scored" / "predictions.parquet"
    done = factory(home, "score", USE_CASE, good, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "Scored 600 rows" in done.stdout and "Wrote" in done.stdout
    scored = pl.read_parquet(out)
    assert scored.height == 600 and {"customer_id", "prediction", "model_version"} <= set(scored.columns)
    np.testing.assert_allclose(scored["prediction"].to_numpy(), expected(service, fresh), atol=1e-12)

    as_json = factory(home, "score", USE_CASE, good, "--json", "--alias", "champion")
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["rows"] == 600 and len(payload["predictions"]) == 600

    bad = tmp_path / "bad.csv"
    fresh.drop("churned", "channel").with_columns(pl.col("visits").cast(pl.String)).with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("twelve")).otherwise(pl.col("visits")).alias("visits")
    ).write_csv(bad)
    failed = factory(home, "score", USE_CASE, bad, "--out", tmp_path / "never.csv")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "channel: column is missing" in failed.stderr
    assert "visits:" in failed.stderr and "row 4 = 'twelve'" in failed.stderr
    assert not (tmp_path / "never.csv").exists()

    unknown = factory(home, "score", "nope", good)
    assert unknown.returncode == 2 and "unknown use case" in unknown.stderr and "Traceback" not in unknown.stderr


def test_http_unexpected_failures_are_a_generic_500_logged_on_the_server(server, fresh, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(server.service, "score", broken)
    with caplog.at_level("ERROR", logger="factory_assets.distribution.http_api"):
        status, payload, text = call(server, "POST", f"/models/{USE_CASE}/champion/score", rows_json(fresh.head(3)))
    assert status == 500 and "secret" not in text and "Traceback" not in text and "logged" in payload["error"]
    assert "secret internal detail" in caplog.text


# ---- a model whose manifest or files changed after registration never scores ---------------


def _tamper(home, how: str) -> str:
    """Change the champion as the issue's reproduction did; returns the file that was changed."""
    mv = ModelRegistry(home / "artifacts" / "models").get(USE_CASE, "champion")
    if how == "model file deleted":
        mv.model_path.unlink()
        return str(mv.model_path)
    manifest = json.loads((mv.path / "manifest.json").read_text())
    manifest["extra"]["categories"]["channel"] = list(reversed(CHANNELS))  # changes every score of the column
    manifest["metrics"]["auc"] = 0.999
    (mv.path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return str(mv.path / "manifest.json")


@pytest.mark.parametrize("how", ["manifest edited", "model file deleted"])
def test_a_tampered_champion_is_refused_by_the_service_http_cli_and_the_prediction_asset(home, fresh, tmp_path, how):
    import shutil

    import dagster as dg

    from factory_assets.assembly.specs import UseCaseSpec
    from factory_assets.distribution.assets import prediction_asset
    from factory_assets.distribution.service import ModelRefusedError
    from factory_assets.resources import FactoryStore, GovernancePolicy

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    version = ModelRegistry(copy / "artifacts" / "models").get(USE_CASE, "champion").version
    server = make_server(copy / "artifacts" / "models", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert call(server, "POST", f"/models/{USE_CASE}/champion/score", rows_json(fresh.head(3)))[0] == 200
        changed = _tamper(copy, how)  # while the server holds the model in memory
        status, payload, text = call(server, "POST", f"/models/{USE_CASE}/champion/score", rows_json(fresh.head(3)))
    finally:
        server.shutdown()
        server.server_close()
    assert status == 404 and "Traceback" not in text
    message = payload["error"]
    assert version in message and changed in message and "will not score" in message and "Restore" in message

    with pytest.raises(ModelRefusedError, match=version):
        ScoringService(copy / "artifacts" / "models").score(USE_CASE, fresh.drop("churned"))

    rows = tmp_path / "rows.csv"
    fresh.drop("churned").write_csv(rows)
    done = factory(copy, "score", USE_CASE, rows)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert version in done.stderr and changed in done.stderr and "retrain" in done.stderr

    spec = UseCaseSpec(name=USE_CASE, description="churn", template="binary_classification",
                       training_set="factory_assets.assembly.training_sets:ORDER_LINES", target="churned",
                       label_delay_days=0, entity=("customer_id",), time_column="split_time", metric="auc",
                       risk_tier="low", business_unit="marketing", owner="team:marketing", engine="lightgbm",
                       uses=("replenishment",))
    result = dg.materialize([prediction_asset(spec, builder=None)], partition_key="2026-02-10", raise_on_error=False,
                            resources={"store": FactoryStore(home=str(copy)), "policy": GovernancePolicy()})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message + str(failure.message)
    assert version in message and changed in message and "will not score" in message
