#!/usr/bin/env python3
"""Set up and run the AI Factory with nothing but python3.

    python3 tasks.py run      # set up, then run the main job on embedded defaults
    python3 tasks.py test     # set up (Chromium, PostgreSQL too), then ruff, the layer contracts, the whole suite (CI)
    python3 tasks.py test --fast  # set up, then ruff, the layer contracts and the unit tier (pure tests, under a minute)
    python3 tasks.py setup    # only set up: .venv, pinned dependencies, dbt manifest, .venv-datacontract
    python3 tasks.py ui       # set up, then open the Dagster UI (dagster dev)
    python3 tasks.py bench    # set up, then run the benchmarks and write BENCHMARKS.md (--smoke: tiny)

Set-up is idempotent and quick when nothing changed: the virtual environment is rebuilt only
when requirements.lock or pyproject.toml change. The Data Contract CLI (`datacontract test`, see
data_contracts/README.md) gets a virtual environment of its own, .venv-datacontract, rebuilt only when
its pins change: its own pins conflict with the project's. Package installs need a package registry;
everything after that runs offline. All state goes under FACTORY_HOME (default ./.factory).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".factory-installed"

# The Data Contract CLI (https://cli.datacontract.com) tests the contracts of the warehouse's tables
# (data_contracts/{products,features,predictions}) against the warehouse: `datacontract test`, run for
# every one of them by tests/test_datacontract_cli.py. It lives in a virtual environment of its own
# because its pins conflict with the project's (datacontract-cli 1.2.8 wants typer<0.28, requirements.lock
# has typer 0.29.2 through dagster-dbt and dagster-dg-cli), and its ~60 dependencies (ibis, sqlglot,
# boto3, ...) stay out of the factory's. Its DuckDB is pinned to the project's (requirements.lock): one
# DuckDB version reads and writes the warehouse file.
DATACONTRACT_VENV = ROOT / ".venv-datacontract"
DATACONTRACT_BIN = DATACONTRACT_VENV / ("Scripts" if os.name == "nt" else "bin")
DATACONTRACT_PY = DATACONTRACT_BIN / "python"
DATACONTRACT_STAMP = DATACONTRACT_VENV / ".factory-installed"
DATACONTRACT_CLI = "datacontract-cli[duckdb]==1.2.8"


def _say(msg: str) -> None:
    print(f"[tasks] {msg}", flush=True)


def _run(cmd: list, **kwargs) -> None:
    result = subprocess.run([str(c) for c in cmd], **kwargs)
    if result.returncode != 0:
        sys.exit(result.returncode)


def _env() -> dict:
    env = dict(os.environ)
    home = Path(env.get("FACTORY_HOME", ROOT / ".factory")).resolve()
    env["FACTORY_HOME"] = str(home)
    env.setdefault("DAGSTER_HOME", str(home / "dagster_home"))
    env.setdefault("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DO_NOT_TRACK", "1")  # dbt and other tools: no anonymous usage pings
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


def _requirements_hash(gpu: bool = False) -> str:
    digest = hashlib.sha256()
    for name in ("requirements.lock", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest() + ("+cuda" if gpu else "")


def nvidia_gpu(env: dict | None = None) -> tuple[bool, str]:
    """(install the CUDA xgboost wheel?, why). FACTORY_GPU=1 or 0 decides; otherwise an NVIDIA GPU
    that `nvidia-smi -L` lists does."""
    env = os.environ if env is None else env
    choice = env.get("FACTORY_GPU", "auto").strip().lower()
    if choice in ("0", "1"):
        return choice == "1", f"FACTORY_GPU={choice}"
    nvidia = shutil.which("nvidia-smi", path=env.get("PATH"))
    if nvidia is None:
        return False, "no nvidia-smi"
    try:
        listed = subprocess.run([nvidia, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"nvidia-smi -L failed ({exc})"
    gpus = [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    if listed.returncode != 0 or not gpus:
        return False, "nvidia-smi lists no GPU"
    return True, gpus[0]


def cuda_xgboost_requirement(lock: str) -> str:
    """The full (CUDA) xgboost wheel at the version the lock pins xgboost-cpu to: same import name."""
    pins = [line.split(";")[0].strip() for line in lock.splitlines() if line.startswith("xgboost-cpu==")]
    if len(pins) != 1:
        sys.exit("[tasks] requirements.lock must pin xgboost-cpu exactly once (xgboost-cpu==X.Y.Z)")
    return "xgboost==" + pins[0].split("==", 1)[1]


def _datacontract_requirements() -> list[str]:
    """The CLI's pin and the project's DuckDB pin (from requirements.lock)."""
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    duckdb = [line.split(";")[0].strip() for line in lock if line.startswith("duckdb==")]
    if len(duckdb) != 1:
        sys.exit("[tasks] requirements.lock must pin duckdb exactly once (duckdb==X.Y.Z)")
    return [DATACONTRACT_CLI, duckdb[0]]


def setup_datacontract(env: dict) -> None:
    """.venv-datacontract with the pinned Data Contract CLI; recreated from scratch when the pins change."""
    requirements = _datacontract_requirements()
    wanted = "\n".join(requirements)
    if DATACONTRACT_STAMP.exists() and DATACONTRACT_STAMP.read_text() == wanted and DATACONTRACT_PY.exists():
        return
    _say(f"creating {DATACONTRACT_VENV.name} for the Data Contract CLI ({', '.join(requirements)})")
    venv.EnvBuilder(with_pip=False, clear=True).create(DATACONTRACT_VENV)
    _run([PY, "-m", "uv", "pip", "install", "--python", DATACONTRACT_PY, "--compile-bytecode",
          *requirements], env=env)
    DATACONTRACT_STAMP.write_text(wanted)


def setup() -> dict:
    env = _env()
    gpu, why = nvidia_gpu(env)
    wanted = _requirements_hash(gpu)
    if not (STAMP.exists() and STAMP.read_text() == wanted and PY.exists()):
        if not PY.exists():
            _say(f"creating virtual environment in {VENV}")
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        _say("installing pinned dependencies (uv, requirements.lock)")
        _run([PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv==0.13.9"], env=env)
        uv = [PY, "-m", "uv", "pip", "install", "--python", PY, "--compile-bytecode"]
        _run([*uv, "-r", ROOT / "requirements.lock"], env=env)
        _run([*uv, "--no-deps", "-e", ROOT], env=env)
        if gpu:  # XGBoost's CUDA learner; LightGBM's wheel has its OpenCL learner already (README: Device)
            wheel = cuda_xgboost_requirement((ROOT / "requirements.lock").read_text())
            _say(f"NVIDIA GPU ({why}): replacing xgboost-cpu by {wheel}, which carries CUDA")
            _run([PY, "-m", "uv", "pip", "uninstall", "--python", PY, "xgboost-cpu"], env=env)
            _run([*uv, "--no-deps", wheel], env=env)
        STAMP.write_text(wanted)
    setup_datacontract(env)
    # DuckLake's extensions, offline: the binaries of the duckdb-extension-* packages laid out as a
    # local extension repository in the venv, where dbt's profile and every process install them from.
    _run([PY, "-c", "from factory_assets.lib.lake import extension_repository, shared_repository; "
                    "extension_repository(shared_repository())"], env=env, cwd=ROOT)
    # The raw tables' dbt sources follow from data_contracts/raw (a new raw contract needs no YAML);
    # files are rewritten only when they differ, so an unchanged project is not parsed again.
    _run([PY, "-m", "factory_assets.lib.dbt_contracts", "--sources-only", "--quiet"], env=env, cwd=ROOT)
    manifest = ROOT / "dbt_project" / "target" / "manifest.json"
    sources = _dbt_sources(ROOT / "dbt_project")
    if not manifest.exists() or any(p.stat().st_mtime > manifest.stat().st_mtime for p in sources):
        _say("preparing the dbt manifest (dbt parse)")
        _run([BIN / "dbt", "parse", "--quiet", "--project-dir", ROOT / "dbt_project", "--profiles-dir", ROOT / "dbt_project"],
             env=env, cwd=ROOT)
    return env


def _dbt_sources(project: Path) -> list[Path]:
    """The dbt project's SQL and YAML, not descending into target/ (one folder per dbt run)."""
    found = []
    for folder, subfolders, files in os.walk(project):
        subfolders[:] = [d for d in subfolders if d not in ("target", "logs", "dbt_packages")]
        found += [Path(folder, f) for f in files if f.endswith((".sql", ".yml", ".yaml"))]
    return found


def ensure_chromium() -> None:
    """The UI tests drive a real Chromium; install Debian's package when it is missing."""
    if os.environ.get("FACTORY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    _apt_install("chromium", "the UI tests need Chromium",
                 "install your system's chromium package (or set FACTORY_CHROMIUM to a Chromium binary)")


def ensure_postgres() -> None:
    """The production-profile tests start a real PostgreSQL server on loopback (pg_ctl, initdb)."""
    import glob

    if shutil.which("pg_ctl") or glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"):
        return
    _apt_install("postgresql", "the production-profile tests need a PostgreSQL server",
                 "install your system's PostgreSQL server package")


def _apt_install(package: str, why: str, otherwise: str) -> None:
    apt = shutil.which("apt-get")
    sudo = [] if os.name != "nt" and os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if apt is None or sudo is None:
        sys.exit(f"[tasks] {why}: {otherwise}, and run again.")
    _say(f"installing {package} ({why}): apt-get install {package}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run([*sudo, apt, "update", "-qq"], env=env)
    _run([*sudo, apt, "install", "-y", "-qq", package], env=env)


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command not in {"setup", "run", "test", "ui", "bench"}:
        sys.exit(__doc__)
    env = setup()
    if command == "run":
        _run([BIN / "factory", "demo", *rest], env=env, cwd=ROOT)
    elif command == "test":
        fast = "--fast" in rest
        rest = [arg for arg in rest if arg != "--fast"]
        # Lint first: a ruff finding fails the command before any test runs ([tool.ruff] in pyproject.toml).
        _run([PY, "-m", "ruff", "check", ROOT], env=env, cwd=ROOT)
        # Then the layer contracts (.importlinter): which layer may import which, pure modules without Dagster.
        _run([BIN / "lint-imports", "--no-cache"], env=env, cwd=ROOT)
        if fast:
            # The unit tier (tests/conftest.py assigns every test one tier): no Dagster run, no dbt,
            # no Chromium or PostgreSQL, so neither is installed and one process is quicker than workers.
            _run([PY, "-m", "pytest", "-m", "unit", *rest], env=env, cwd=ROOT)
            return
        ensure_chromium()
        ensure_postgres()
        # One test module per worker (module-scoped worlds stay in one process), up to 4 workers.
        workers = os.environ.get("FACTORY_TEST_WORKERS", str(min(os.cpu_count() or 1, 4)))
        _run([PY, "-m", "pytest", "-n", workers, "--dist", "loadfile", *rest], env=env, cwd=ROOT)
    elif command == "bench":
        _run([PY, ROOT / "bench" / "run_all.py", *rest], env=env, cwd=ROOT)
    elif command == "ui":
        factory = [str(BIN / "factory"), "ui", *rest]
        if os.name == "posix":
            # Become `factory ui`: a service manager's SIGTERM to this pid, or a Ctrl-C, reaches it
            # directly, and it stops the whole UI. (Through subprocess.run, a SIGTERM would end this
            # process alone, and a Ctrl-C would SIGKILL `factory ui` before it could stop dagster dev.)
            os.chdir(ROOT)
            os.execve(factory[0], factory, env)
        _run(factory, env=env, cwd=ROOT)


if __name__ == "__main__":
    main(sys.argv[1:])
