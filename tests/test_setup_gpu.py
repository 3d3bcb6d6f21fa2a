"""`tasks.py setup` installs XGBoost's CUDA wheel on a machine with an NVIDIA GPU, and the small
CPU wheel elsewhere. CI has no GPU, so detection is tried against small `nvidia-smi` scripts that
answer as the real one does (a listed GPU, no GPU, a broken driver)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tasks


def _nvidia_smi(folder: Path, stdout: str, code: int = 0) -> dict:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{stdout}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{folder}{os.pathsep}/usr/bin:/bin"}


def test_a_listed_nvidia_gpu_chooses_the_cuda_wheel(tmp_path):
    env = _nvidia_smi(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-1234)\n")
    assert tasks.nvidia_gpu(env) == (True, "GPU 0: NVIDIA H200 (UUID: GPU-1234)")
    assert tasks.nvidia_gpu({**env, "FACTORY_GPU": "0"}) == (False, "FACTORY_GPU=0")


@pytest.mark.parametrize("stdout, code, why", [
    ("", 9, "nvidia-smi lists no GPU"),  # driver not loaded
    ("No devices were found\n", 6, "nvidia-smi lists no GPU"),
])
def test_no_gpu_keeps_the_cpu_wheel(tmp_path, stdout, code, why):
    assert tasks.nvidia_gpu(_nvidia_smi(tmp_path, stdout, code)) == (False, why)
    assert tasks.nvidia_gpu({"PATH": str(tmp_path / "empty")}) == (False, "no nvidia-smi")
    assert tasks.nvidia_gpu({"PATH": str(tmp_path / "empty"), "FACTORY_GPU": "1"}) == (True, "FACTORY_GPU=1")


def test_the_cuda_wheel_has_the_locked_version_and_a_machine_change_reinstalls():
    lock = (tasks.ROOT / "requirements.lock").read_text()
    version = next(line for line in lock.splitlines() if line.startswith("xgboost-cpu==")).split("==")[1]
    assert tasks.cuda_xgboost_requirement(lock) == f"xgboost=={version}"
    with pytest.raises(SystemExit, match="exactly once"):
        tasks.cuda_xgboost_requirement("numpy==2.0\n")
    assert tasks._requirements_hash(True) != tasks._requirements_hash(False)  # the stamp: GPU <-> CPU reinstalls
