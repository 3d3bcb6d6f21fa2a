"""The warehouse's reader/writer lock between processes (what lets steps on separate workers share
one DuckDB file): readers together, a writer alone, waiters time out with a message that says why."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from factory_assets.lib.warehouse_lock import lock_path, warehouse_lock

HOLD = """
import sys, time
from pathlib import Path
from factory_assets.lib.warehouse_lock import warehouse_lock
with warehouse_lock(Path(sys.argv[1]), exclusive=sys.argv[2] == "write", holder="the test's other process"):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _hold(database, mode: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(database), mode, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_writer_waits_for_another_process_to_finish_writing(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    other = _hold(database, "write", 1.5)
    started = time.monotonic()
    with warehouse_lock(database, exclusive=True, timeout_s=30):
        waited = time.monotonic() - started
        duckdb.connect(str(database)).close()  # DuckDB's own file lock is free by now
    other.wait(timeout=30)
    assert waited > 1.0  # it waited for the other writer instead of failing


def test_readers_share_the_warehouse_and_a_writer_times_out_naming_the_holder(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    reader = _hold(database, "read", 3)
    with warehouse_lock(database, exclusive=False, timeout_s=0.5):  # a second reader does not wait
        pass
    reader.kill()
    reader.wait()
    writer = _hold(database, "write", 10)
    try:
        with pytest.raises(TimeoutError) as error, warehouse_lock(database, exclusive=False, timeout_s=0.3):
            pass
        message = str(error.value)
        assert str(database) in message and f"pid {writer.pid} the test's other process" in message
        assert "FACTORY_WAREHOUSE_LOCK_TIMEOUT" in message
    finally:
        writer.kill()
        writer.wait()
    with warehouse_lock(database, exclusive=True, timeout_s=5):  # a killed holder's lock is released
        assert lock_path(database).exists()


def test_the_lock_is_reentrant_in_one_process_but_refuses_to_upgrade_a_read(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    with warehouse_lock(database, exclusive=True, timeout_s=1):
        with warehouse_lock(database, exclusive=True, timeout_s=1), warehouse_lock(database, exclusive=False, timeout_s=1):
            pass
    with warehouse_lock(database, exclusive=False, timeout_s=1):
        with pytest.raises(RuntimeError, match="asked to write"), warehouse_lock(database, exclusive=True, timeout_s=1):
            pass
    other = _hold(database, "write", 0.2)  # everything was released: another process gets it
    assert other.wait(timeout=30) == 0
