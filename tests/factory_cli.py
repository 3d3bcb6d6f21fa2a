"""Run the `factory` console script as a user would, for the tests that drive the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FACTORY = Path(sys.executable).parent / "factory"


def factory(home: Path, *args, timeout: float = 400) -> subprocess.CompletedProcess:
    """Run `factory ARGS` as a user would: the console script, a clean cwd, state under ``home``."""
    env = {**os.environ, "FACTORY_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
           "FACTORY_WAREHOUSE_PATH": str(home / "warehouse.duckdb"),
           "PATH": f"{FACTORY.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FACTORY_PARTITIONS_START", None)
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(FACTORY), *map(str, args)], env=env, cwd=home, capture_output=True, text=True,
                          timeout=timeout)
