"""Engine layer: signal recovery, baselines, early stopping, CPU fallback, round trip, splits."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from factory_assets.assembly import training as T
from factory_assets.assembly.training import (
    TrainedModel,
    choose_device,
    classification_metrics,
    improvement,
    mean_baseline,
    prior_rate_baseline,
    regression_metrics,
    seasonal_naive,
    time_split,
    train_model,
)

FEATURES = [f"f{i}" for i in range(5)]
ENGINES = ["xgboost", "lightgbm"]


def _binary_data(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    logit = 1.5 * X[:, 0] - 1.0 * X[:, 1] + 0.8 * X[:, 2] * X[:, 3] - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    X[rng.random((n, 5)) < 0.02] = np.nan  # missing values are allowed
    return X, y


def _regression_data(n=8_000, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = 10 + 3 * X[:, 0] + 2 * np.sin(X[:, 1] * 2) + X[:, 2] ** 2 + rng.normal(scale=0.5, size=n)
    return X, y


def _split(X, y):
    n = len(y)
    a, b = int(n * 0.7), int(n * 0.85)
    return (X[:a], y[:a]), (X[a:b], y[a:b]), (X[b:], y[b:])


@pytest.fixture(scope="module")
def binary_data():
    return _split(*_binary_data())


@pytest.fixture(scope="module")
def binary_models(binary_data):
    (Xtr, ytr), (Xva, yva), _ = binary_data
    return {
        e: train_model("binary", e, Xtr, ytr, Xva, yva, feature_names=FEATURES, device="cpu", num_boost_round=300)
        for e in ENGINES
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_binary_signal_recovery_beats_prior_rate(binary_data, binary_models, engine):
    (Xtr, ytr), _, (Xte, yte) = binary_data
    model = binary_models[engine]
    p = model.predict(Xte)
    assert p.shape == (len(yte),) and np.all((p >= 0) & (p <= 1))
    m = classification_metrics(yte, p)
    base = classification_metrics(yte, prior_rate_baseline(ytr, len(yte)))
    assert m["auc"] > 0.8
    assert math.isclose(base["auc"], 0.5)
    assert m["log_loss"] < base["log_loss"]
    assert m["pr_auc"] > base["pr_auc"]
    assert improvement("log_loss", m, base) > 0.1
    assert 1 <= model.best_iteration <= 300
    assert model.device.device == "cpu" and model.training_seconds > 0
    imp = model.feature_importance()
    assert list(imp) == FEATURES
    assert math.isclose(sum(imp.values()), 1.0, rel_tol=1e-9)
    assert imp["f0"] > imp["f4"]  # f4 is pure noise


@pytest.mark.parametrize("engine", ENGINES)
def test_round_trip_bytes_identical_predictions(binary_data, binary_models, engine):
    _, _, (Xte, _) = binary_data
    model = binary_models[engine]
    blob = model.to_bytes()
    loaded = TrainedModel.from_bytes(engine, "binary", FEATURES, blob)
    assert np.array_equal(loaded.predict(Xte), model.predict(Xte))
    assert loaded.best_iteration == model.best_iteration
    assert loaded.to_bytes() == blob


@pytest.mark.parametrize("engine", ENGINES)
def test_regression_beats_mean_and_seasonal_baseline(engine):
    X, y = _regression_data()
    (Xtr, ytr), (Xva, yva), (Xte, yte) = _split(X, y)
    model = train_model("regression", engine, Xtr, ytr, Xva, yva, feature_names=FEATURES, device="cpu")
    m = regression_metrics(yte, model.predict(Xte))
    base = regression_metrics(yte, mean_baseline(ytr, len(yte)))
    assert m["mae"] < 0.6 * base["mae"]
    assert m["rmse"] < base["rmse"] and m["wape"] < base["wape"]
    assert improvement("wape", m["wape"], base["wape"]) > 0.3


@pytest.mark.parametrize("engine", ENGINES)
def test_early_stopping_on_small_problem(engine):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 5)).astype(np.float32)
    y = (X[:, 0] + rng.normal(scale=1.0, size=600) > 0).astype(float)
    model = train_model(
        "binary", engine, X[:400], y[:400], X[400:], y[400:], feature_names=FEATURES,
        params={"learning_rate": 0.3}, device="cpu", num_boost_round=500, early_stopping_rounds=10,
    )
    assert model.best_iteration < 500
    assert model.to_bytes()  # truncated model still serialises


@pytest.mark.parametrize("engine", ENGINES)
def test_gpu_request_falls_back_to_cpu_with_same_predictions(engine, caplog):
    choice = choose_device(engine, "cpu")
    assert choice.device == "cpu"
    gpu_choice = choose_device(engine, "gpu")
    if gpu_choice.device != "cpu":
        pytest.skip(f"a GPU is usable here ({gpu_choice.reason}); fallback not testable")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2_000, 5)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + rng.normal(size=2_000) > 0).astype(float)
    with caplog.at_level(logging.WARNING, logger=T.__name__):
        choice = choose_device(engine, "gpu")
        assert choice.device == "cpu" and choice.engine == engine
        assert choice.reason
        assert any("falling back to CPU" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
        kw = dict(feature_names=FEATURES, num_boost_round=50, seed=7)
        on_gpu = train_model("binary", engine, X[:1500], y[:1500], X[1500:], y[1500:], device="gpu", **kw)
    on_cpu = train_model("binary", engine, X[:1500], y[:1500], X[1500:], y[1500:], device="cpu", **kw)
    assert on_gpu.device.device == "cpu"
    assert np.array_equal(on_gpu.predict(X), on_cpu.predict(X))


def test_xgboost_reason_mentions_cuda():
    choice = choose_device("xgboost", "auto")
    if choice.device == "cpu":
        assert "CUDA" in choice.reason


def test_params_override_and_validation():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = rng.normal(size=300)
    m = train_model("regression", "lightgbm", X[:200], y[:200], X[200:], y[200:], feature_names=FEATURES,
                    params={"num_leaves": 7}, device="cpu", num_boost_round=20)
    assert m.params["num_leaves"] == 7 and m.params["learning_rate"] == 0.05
    with pytest.raises(ValueError):
        train_model("binary", "xgboost", X[:200], y[:200], X[200:], y[200:], feature_names=FEATURES)  # not 0/1
    with pytest.raises(ValueError):
        train_model("regression", "catboost", X, y, X, y, feature_names=FEATURES)
    with pytest.raises(ValueError):
        train_model("regression", "xgboost", X, y, X, y, feature_names=FEATURES[:4])


def test_metrics_and_baselines():
    y = np.array([0, 0, 1, 1])
    m = classification_metrics(y, np.array([0.1, 0.4, 0.35, 0.8]))
    assert math.isclose(m["auc"], 0.75) and m["log_loss"] > 0
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 1.0]))
    assert math.isclose(r["mae"], 1.0) and math.isclose(r["rmse"], math.sqrt(5 / 3)) and math.isclose(r["wape"], 0.5)
    assert np.all(prior_rate_baseline(np.array([0, 1, 1, 1]), 3) == 0.75)
    assert np.all(mean_baseline(np.array([2.0, 4.0]), 2) == 3.0)
    assert np.array_equal(seasonal_naive(np.array([1.0, np.nan, 3.0])), [1.0, 0.0, 3.0])


def test_improvement_direction():
    assert improvement("auc", 0.88, 0.80) == pytest.approx(0.1)
    assert improvement("auc", 0.72, 0.80) == pytest.approx(-0.1)
    assert improvement("mae", 9.0, 10.0) == pytest.approx(0.1)
    assert improvement("wape", {"wape": 0.22}, {"wape": 0.2}) == pytest.approx(-0.1)
    assert improvement("mae", 0.0, 0.0) == 0.0
    assert math.isnan(improvement("auc", math.nan, 0.5))
    with pytest.raises(KeyError):
        improvement("accuracy", 1, 1)
    assert set(T.PRIMARY_METRIC) == {"auc", "pr_auc", "log_loss", "mae", "rmse", "wape"}


def test_time_split_ordered_without_overlap():
    rng = np.random.default_rng(6)
    days = np.arange("2024-01-01", "2024-04-10", dtype="datetime64[D]")
    times = rng.choice(days, size=5_000)
    tr, va, te = time_split(times)
    assert len(tr) + len(va) + len(te) == len(times)
    assert not (set(tr) & set(va) or set(va) & set(te) or set(tr) & set(te))
    assert times[tr].max() < times[va].min() and times[va].max() < times[te].min()
    assert not (set(times[tr]) & set(times[va]) or set(times[va]) & set(times[te]))
    n_days = len(np.unique(times))
    assert len(np.unique(times[te])) == round(n_days * 0.15)
    # integer times, tiny input
    tr, va, te = time_split(np.array([3, 1, 2, 3, 1]))
    assert list(tr) == [1, 4] and list(va) == [2] and list(te) == [0, 3]
    with pytest.raises(ValueError):
        time_split(np.array([1, 2]))


def test_module_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, factory_assets.assembly.training, factory_assets.assembly.registry;"
        "bad=[m for m in ('lightgbm','xgboost','sklearn','dagster') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
