"""Engine layer of the model templates: device choice, training, metrics, baselines, splits.

Framework-free (no Dagster): the assets call these functions. LightGBM, XGBoost and
scikit-learn are imported inside the functions that need them so importing this module
only costs numpy.

Conventions
-----------
* Features are 2-D numpy arrays (converted to float32); NaN means "missing" for both engines.
* ``task`` is ``"binary"`` (predict returns P(y=1)) or ``"regression"``.
* ``best_iteration`` is the *number* of boosting rounds kept (1-based count). After training
  the booster is truncated to those rounds, so ``predict``/``to_bytes`` use exactly the best
  model and a round trip through bytes gives identical predictions.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from factory_assets.lib.jsonable import jsonable

log = logging.getLogger(__name__)

Engine = Literal["lightgbm", "xgboost"]
Task = Literal["binary", "regression"]
DeviceRequest = Literal["auto", "cpu", "gpu"]

ENGINES: tuple[str, ...] = ("lightgbm", "xgboost")
TASKS: tuple[str, ...] = ("binary", "regression")
DEVICE_REQUESTS: tuple[str, ...] = ("auto", "cpu", "gpu")

#: File extension of each engine's native serialisation (used by the registry).
MODEL_FILE_EXT: dict[str, str] = {"xgboost": "ubj", "lightgbm": "txt"}


# --------------------------------------------------------------------------------------
# Device choice
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceChoice:
    engine: str
    device: str  # "cpu" | "cuda" (xgboost) | "gpu" (lightgbm OpenCL)
    reason: str

    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"

    def to_dict(self) -> dict[str, str]:
        return {"engine": self.engine, "device": self.device, "reason": self.reason}


_probe_lock = threading.Lock()
_cuda_visible_cache: tuple[bool, str] | None = None
_lightgbm_gpu_cache: tuple[bool, str] | None = None


def _cuda_device_visible() -> tuple[bool, str]:
    """(visible, detail). Cached for the life of the process."""
    global _cuda_visible_cache
    with _probe_lock:
        if _cuda_visible_cache is not None:
            return _cuda_visible_cache
        cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
        if cvd is not None and cvd.strip() in ("", "-1"):
            result = (False, f"CUDA_VISIBLE_DEVICES={cvd!r} hides all devices")
        elif shutil.which("nvidia-smi") is None:
            result = (False, "nvidia-smi not found")
        else:
            try:
                proc = subprocess.run(
                    ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
                )
                ok = proc.returncode == 0 and "GPU" in proc.stdout
                detail = proc.stdout.strip().splitlines()[0] if ok else (proc.stderr.strip() or "nvidia-smi -L failed")
                result = (ok, detail)
            except (OSError, subprocess.SubprocessError) as exc:
                result = (False, f"nvidia-smi failed: {exc}")
        _cuda_visible_cache = result
        return result


def _xgboost_has_cuda() -> bool:
    import xgboost

    try:
        return bool(xgboost.build_info().get("USE_CUDA"))
    except Exception:  # pragma: no cover - very old builds
        return False


def _lightgbm_gpu_available() -> tuple[bool, str]:
    """Tiny trial fit with device_type="gpu" (OpenCL). Cached for the life of the process."""
    global _lightgbm_gpu_cache
    with _probe_lock:
        if _lightgbm_gpu_cache is not None:
            return _lightgbm_gpu_cache
        try:
            import lightgbm

            rng = np.random.default_rng(0)
            X = rng.random((200, 2), dtype=np.float32)
            y = (X[:, 0] > 0.5).astype(np.float64)
            lightgbm.train(
                {
                    "objective": "binary",
                    "device_type": "gpu",
                    "verbosity": -1,
                    "num_leaves": 4,
                    "min_data_in_leaf": 1,
                },
                lightgbm.Dataset(X, y),
                num_boost_round=1,
            )
            result = (True, "LightGBM OpenCL device available")
        except Exception as exc:  # LightGBMError, OSError, ...
            result = (False, f"LightGBM OpenCL device not available: {exc}")
        _lightgbm_gpu_cache = result
        return result


def choose_device(engine: str, requested: str = "auto") -> DeviceChoice:
    """Pick the device for ``engine``. Never raises for a missing GPU: falls back to CPU.

    A fallback when ``requested == "gpu"`` is logged as a warning (info for ``"auto"``).
    """
    _check_engine(engine)
    if requested not in DEVICE_REQUESTS:
        raise ValueError(f"requested device must be one of {DEVICE_REQUESTS}, got {requested!r}")
    if requested == "cpu":
        return DeviceChoice(engine, "cpu", "cpu requested")

    if engine == "xgboost":
        visible, detail = _cuda_device_visible()
        if not visible:
            reason = f"no CUDA device visible ({detail})"
        elif not _xgboost_has_cuda():
            reason = "xgboost build without CUDA"
        else:
            return DeviceChoice(engine, "cuda", f"CUDA device visible: {detail}")
    else:
        ok, detail = _lightgbm_gpu_available()
        if ok:
            return DeviceChoice(engine, "gpu", detail)
        reason = detail

    if requested == "gpu":
        log.warning("%s: GPU requested but falling back to CPU: %s", engine, reason)
    else:
        log.info("%s: using CPU: %s", engine, reason)
    return DeviceChoice(engine, "cpu", reason)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

DEFAULT_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "xgboost": {
        "binary": {"objective": "binary:logistic", "eval_metric": "logloss"},
        "regression": {"objective": "reg:squarederror", "eval_metric": "rmse"},
        "_common": {
            "learning_rate": 0.05,
            "max_depth": 6,
            "min_child_weight": 1.0,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
            "max_bin": 256,
        },
    },
    "lightgbm": {
        "binary": {"objective": "binary", "metric": "binary_logloss"},
        "regression": {"objective": "regression", "metric": "l2"},
        "_common": {
            "learning_rate": 0.05,
            "num_leaves": 63,
            "min_data_in_leaf": 20,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
        },
    },
}


def default_params(engine: str, task: str) -> dict[str, Any]:
    _check_engine(engine)
    _check_task(task)
    return {**DEFAULT_PARAMS[engine]["_common"], **DEFAULT_PARAMS[engine][task]}


@dataclass
class TrainedModel:
    engine: str
    task: str
    feature_names: list[str]
    booster: Any = field(repr=False)
    params: dict[str, Any] = field(default_factory=dict)
    device: DeviceChoice | None = None
    best_iteration: int = 0
    training_seconds: float = 0.0

    @functools.cached_property
    def matrix_names(self) -> list[str]:
        """The booster's own columns: ``feature_names`` unless a text column became hashed columns."""
        names = self.booster.feature_names if self.engine == "xgboost" else self.booster.feature_name()
        return list(names) if names else list(self.feature_names)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of class 1 for ``binary``, values for ``regression`` (float64, 1-D)."""
        X = _as_features(X, self.matrix_names, "X")
        if self.engine == "xgboost":
            import xgboost

            out = self.booster.predict(xgboost.DMatrix(X, missing=np.nan, feature_names=self.matrix_names))
        else:
            out = self.booster.predict(X)
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def feature_importance(self) -> dict[str, float]:
        """Total gain per feature, normalised to sum 1 (all zeros if the model has no splits); a text
        column's is the sum over its hashed columns."""
        from factory_assets.assembly.text import input_column

        names = self.matrix_names
        if self.engine == "xgboost":
            raw = self.booster.get_score(importance_type="total_gain")
            gains = np.array([float(raw.get(f, 0.0)) for f in names])
        else:
            gains = np.asarray(self.booster.feature_importance(importance_type="gain"), dtype=np.float64)
        total = float(gains.sum())
        if total > 0:
            gains = gains / total
        out = dict.fromkeys(self.feature_names, 0.0)
        for name, gain in zip(names, gains):
            out[input_column(name) if name not in out else name] += float(gain)
        return out

    def to_bytes(self) -> bytes:
        """Engine-native serialisation: XGBoost UBJSON, LightGBM text model."""
        if self.engine == "xgboost":
            return bytes(self.booster.save_raw("ubj"))
        return self.booster.model_to_string().encode("utf-8")

    @classmethod
    def from_bytes(
        cls,
        engine: str,
        task: str,
        feature_names: list[str],
        blob: bytes,
        *,
        params: dict[str, Any] | None = None,
        device: DeviceChoice | None = None,
        training_seconds: float = 0.0,
    ) -> TrainedModel:
        _check_engine(engine)
        _check_task(task)
        if engine == "xgboost":
            import xgboost

            booster = xgboost.Booster(model_file=bytearray(blob))
            booster.set_param({"device": "cpu"})
            best = int(booster.num_boosted_rounds())
        else:
            import lightgbm

            booster = lightgbm.Booster(model_str=bytes(blob).decode("utf-8"))
            best = int(booster.num_trees() // max(1, booster.num_model_per_iteration()))
        return cls(
            engine=engine,
            task=task,
            feature_names=list(feature_names),
            booster=booster,
            params=dict(params or {}),
            device=device or DeviceChoice(engine, "cpu", "loaded from bytes (inference on CPU)"),
            best_iteration=best,
            training_seconds=float(training_seconds),
        )


def train_model(
    task: str,
    engine: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    *,
    feature_names: list[str],
    params: dict[str, Any] | None = None,
    device: str = "auto",
    num_boost_round: int = 500,
    early_stopping_rounds: int = 30,
    seed: int = 0,
) -> TrainedModel:
    """Train a gradient-boosted model with early stopping on the validation set."""
    _check_engine(engine)
    _check_task(task)
    feature_names = [str(f) for f in feature_names]
    if len(set(feature_names)) != len(feature_names):
        raise ValueError("feature_names must be unique")
    X_train = _as_features(X_train, feature_names, "X_train")
    X_valid = _as_features(X_valid, feature_names, "X_valid")
    y_train = _as_target(y_train, X_train.shape[0], "y_train", task)
    y_valid = _as_target(y_valid, X_valid.shape[0], "y_valid", task)
    if X_train.shape[0] == 0 or X_valid.shape[0] == 0:
        raise ValueError("training and validation sets must not be empty")
    if num_boost_round < 1:
        raise ValueError("num_boost_round must be >= 1")

    choice = choose_device(engine, device)
    merged = {**default_params(engine, task), **(params or {})}
    started = time.perf_counter()
    if engine == "xgboost":
        booster, best, used = _train_xgboost(
            merged, choice, X_train, y_train, X_valid, y_valid, feature_names, num_boost_round, early_stopping_rounds, seed
        )
    else:
        booster, best, used = _train_lightgbm(
            merged, choice, X_train, y_train, X_valid, y_valid, feature_names, num_boost_round, early_stopping_rounds, seed
        )
    elapsed = time.perf_counter() - started
    log.info(
        "%s %s trained on %s in %.2fs: best_iteration=%d/%d", engine, task, choice.device, elapsed, best, num_boost_round
    )
    return TrainedModel(
        engine=engine,
        task=task,
        feature_names=feature_names,
        booster=booster,
        params=jsonable(used),
        device=choice,
        best_iteration=best,
        training_seconds=elapsed,
    )


def _train_xgboost(params, choice, X_train, y_train, X_valid, y_valid, feature_names, rounds, es_rounds, seed):
    import xgboost

    used = dict(params)
    used.update({"tree_method": "hist", "device": "cuda" if choice.device == "cuda" else "cpu", "seed": seed})
    used.setdefault("verbosity", 0)
    max_bin = int(used.get("max_bin", 256))
    dtrain = xgboost.QuantileDMatrix(
        X_train, label=y_train, feature_names=feature_names, missing=np.nan, max_bin=max_bin
    )
    stopping = bool(es_rounds and es_rounds > 0)
    # the validation rows only serve early stopping: without it they are not even built
    evals = [(xgboost.QuantileDMatrix(X_valid, label=y_valid, feature_names=feature_names, missing=np.nan, ref=dtrain,
                                      max_bin=max_bin), "valid")] if stopping else []
    booster = xgboost.train(
        used,
        dtrain,
        num_boost_round=rounds,
        evals=evals,
        early_stopping_rounds=es_rounds if stopping else None,
        verbose_eval=False,
    )
    best_attr = getattr(booster, "best_iteration", None)
    best = int(best_attr) + 1 if best_attr is not None else int(booster.num_boosted_rounds())
    if best < booster.num_boosted_rounds():
        booster = booster[0:best]
    # Serve from CPU memory: numpy inputs, no device-mismatch warnings, same predictions.
    booster.set_param({"device": "cpu"})
    return booster, best, used


def _train_lightgbm(params, choice, X_train, y_train, X_valid, y_valid, feature_names, rounds, es_rounds, seed):
    import lightgbm

    used = dict(params)
    used.update({"device_type": "gpu" if choice.device == "gpu" else "cpu", "seed": seed, "verbosity": -1})
    used.pop("device", None)  # alias of device_type; ours wins
    dtrain = lightgbm.Dataset(X_train, label=y_train, feature_name=feature_names, free_raw_data=True)
    valid_sets, callbacks = [], []
    if es_rounds and es_rounds > 0:  # the validation rows only serve early stopping
        valid_sets = [lightgbm.Dataset(X_valid, label=y_valid, feature_name=feature_names, reference=dtrain,
                                       free_raw_data=True)]
        callbacks.append(lightgbm.early_stopping(es_rounds, verbose=False))
    booster = lightgbm.train(
        used, dtrain, num_boost_round=rounds, valid_sets=valid_sets, valid_names=["valid"] if valid_sets else None,
        callbacks=callbacks,
    )
    best = int(booster.best_iteration or 0)
    if best <= 0:
        best = int(booster.current_iteration())
    # Keep exactly the best rounds; re-load from the native text so the in-memory model is
    # byte-for-byte what to_bytes()/from_bytes() round-trips.
    booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))
    return booster, best, used


def _as_features(X: Any, feature_names: list[str], name: str) -> np.ndarray:
    import scipy.sparse

    if scipy.sparse.issparse(X):  # hashed text: kept sparse, both engines take CSR
        X = scipy.sparse.csr_matrix(X, dtype=np.float32)
        if X.shape[1] != len(feature_names):
            raise ValueError(f"{name} has {X.shape[1]} columns but {len(feature_names)} feature names")
        return X
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {X.shape}")
    if X.shape[1] != len(feature_names):
        raise ValueError(f"{name} has {X.shape[1]} columns but {len(feature_names)} feature names")
    return np.ascontiguousarray(X)


def _as_target(y: Any, n: int, name: str, task: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} rows, features have {n}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN/inf")
    if task == "binary" and not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{name} must be 0/1 for a binary task")
    return y


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


# --------------------------------------------------------------------------------------
# Metrics and baselines
# --------------------------------------------------------------------------------------


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, PR-AUC (average precision) and log loss. AUC/PR-AUC are NaN with one class only."""
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.clip(np.asarray(p, dtype=np.float64).reshape(-1), 1e-15, 1 - 1e-15)
    if len(y) != len(p):
        raise ValueError(f"y has {len(y)} rows, p has {len(p)}")
    if len(y) == 0:
        return {"auc": math.nan, "pr_auc": math.nan, "log_loss": math.nan}
    one_class = len(np.unique(y)) < 2
    return {
        "auc": math.nan if one_class else float(roc_auc_score(y, p)),
        "pr_auc": math.nan if one_class else float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


def regression_metrics(y: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and WAPE = sum|y - yhat| / sum|y| (NaN when sum|y| == 0)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    yhat = np.asarray(yhat, dtype=np.float64).reshape(-1)
    if len(y) != len(yhat):
        raise ValueError(f"y has {len(y)} rows, yhat has {len(yhat)}")
    if len(y) == 0:
        return {"mae": math.nan, "rmse": math.nan, "wape": math.nan}
    err = np.abs(y - yhat)
    denom = float(np.abs(y).sum())
    return {
        "mae": float(err.mean()),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "wape": float(err.sum() / denom) if denom > 0 else math.nan,
    }


def prior_rate_baseline(y_train: np.ndarray, n: int) -> np.ndarray:
    """Constant prediction: the positive rate of the training labels."""
    return np.full(int(n), float(np.mean(np.asarray(y_train, dtype=np.float64))), dtype=np.float64)


def mean_baseline(y_train: np.ndarray, n: int) -> np.ndarray:
    """Constant prediction: the mean of the training target."""
    return np.full(int(n), float(np.mean(np.asarray(y_train, dtype=np.float64))), dtype=np.float64)


def seasonal_naive(values_lag_season: np.ndarray) -> np.ndarray:
    """The value one season (7 days) earlier, supplied by the caller as a column; NaN -> 0."""
    return np.nan_to_num(np.asarray(values_lag_season, dtype=np.float64).reshape(-1), nan=0.0)


# --------------------------------------------------------------------------------------
# Time split
# --------------------------------------------------------------------------------------


#: Distinct time values a training set needs: one each for training, validation and test.
MIN_SPLIT_TIMES = 3


def time_split(
    times: np.ndarray, valid_fraction: float = 0.15, test_fraction: float = 0.15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split row indices by time: train < valid < test, no time value shared between parts.

    Fractions apply to the sorted *distinct* time values (each part gets at least one).
    Returns sorted int64 index arrays into ``times``.
    """
    times = np.asarray(times).reshape(-1)
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError("valid_fraction and test_fraction must be in (0, 1) with a sum below 1")
    if times.dtype.kind in "fcmM" and np.any(np.isnan(times)):
        raise ValueError("times contain NaN/NaT")
    uniq, inverse = np.unique(times, return_inverse=True)
    inverse = inverse.reshape(-1)
    n = len(uniq)
    n_test = max(1, int(round(n * test_fraction)))
    n_valid = max(1, int(round(n * valid_fraction)))
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise ValueError(f"need at least {MIN_SPLIT_TIMES} distinct times for a train/valid/test split, got {n}")
    train = np.flatnonzero(inverse < n_train)
    valid = np.flatnonzero((inverse >= n_train) & (inverse < n_train + n_valid))
    test = np.flatnonzero(inverse >= n_train + n_valid)
    return train, valid, test


# --------------------------------------------------------------------------------------
# Metric direction and comparisons
# --------------------------------------------------------------------------------------

#: Direction of each metric: "higher" or "lower" is better.
PRIMARY_METRIC: dict[str, str] = {
    "auc": "higher",
    "pr_auc": "higher",
    "log_loss": "lower",
    "mae": "lower",
    "rmse": "lower",
    "wape": "lower",
}


def higher_is_better(metric: str) -> bool:
    try:
        return PRIMARY_METRIC[metric] == "higher"
    except KeyError:
        raise KeyError(f"unknown metric {metric!r}; known: {sorted(PRIMARY_METRIC)}") from None


def _metric_value(metric: str, value: float | Mapping[str, float]) -> float:
    if isinstance(value, Mapping):
        if metric not in value:
            raise KeyError(f"metric {metric!r} missing from {sorted(value)}")
        value = value[metric]
    return float(value)


def improvement(metric: str, candidate: float | Mapping[str, float], reference: float | Mapping[str, float]) -> float:
    """Relative improvement of ``candidate`` over ``reference`` (positive = candidate better).

    higher-is-better: (c - r) / |r|; lower-is-better: (r - c) / |r|. Accepts floats or metric
    dicts. With r == 0: 0.0 if equal, else +/-inf. NaN in -> NaN out.
    """
    up = higher_is_better(metric)
    c = _metric_value(metric, candidate)
    r = _metric_value(metric, reference)
    if math.isnan(c) or math.isnan(r):
        return math.nan
    diff = (c - r) if up else (r - c)
    if r == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / abs(r)
