"""A reader/writer lock on the DuckDB warehouse file, across processes.

DuckDB lets one process write a database file, or several read it, never both; a second process
gets "Could not set lock on file" at once. With the in-process executor every step shares one
process and this never happens. When the chain's steps run on separate workers (Dask, multiprocess)
they would collide, so every opening of the warehouse (``FactoryStore.warehouse``, the dbt step)
first takes this lock: shared for reading, exclusive for writing. Waiting steps poll with back-off
up to a timeout, then fail with a message that says what holds the file.

The lock is ``flock`` on a side file (``warehouse.duckdb.lock``), so it works between processes of
one machine or one shared volume. Within a process it is re-entrant: a nested opening (the dbt
step counting rows after dbt exits) does not wait for itself.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Seconds a step waits for the warehouse before failing (FACTORY_WAREHOUSE_LOCK_TIMEOUT).
DEFAULT_TIMEOUT_S = 1800.0

_mutex = threading.Lock()
_held: dict[str, list] = {}  # lock file -> [fd, exclusive, depth], for this process


def lock_path(database: Path) -> Path:
    return Path(f"{database}.lock")


def lock_timeout() -> float:
    return float(os.environ.get("FACTORY_WAREHOUSE_LOCK_TIMEOUT", DEFAULT_TIMEOUT_S))


@contextmanager
def warehouse_lock(database: Path, exclusive: bool, timeout_s: float | None = None,
                   holder: str | None = None) -> Iterator[None]:
    """Hold the warehouse shared (``exclusive=False``) or exclusive while the block runs."""
    path = str(lock_path(database))
    with _mutex:
        entry = _held.get(path)
        if entry is not None:
            if exclusive and not entry[1]:
                raise RuntimeError(f"{path}: this process holds the warehouse for reading and asked to write; "
                                   "close the read-only connection first")
            entry[2] += 1
    if entry is not None:  # this process already holds it; DuckDB serialises its own connections
        try:
            yield
        finally:
            _release(path)
        return
    fd = _acquire(path, exclusive, lock_timeout() if timeout_s is None else timeout_s, holder)
    with _mutex:
        _held[path] = [fd, exclusive, 1]
    try:
        yield
    finally:
        _release(path)


def _acquire(path: str, exclusive: bool, timeout_s: float, holder: str | None) -> int:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline, pause = time.monotonic() + timeout_s, 0.02
    while True:
        try:
            fcntl.flock(fd, mode)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holders = _read_holders(fd)
                os.close(fd)
                raise TimeoutError(
                    f"the warehouse {path.removesuffix('.lock')} stayed locked for {timeout_s:.0f} s "
                    f"({'write' if exclusive else 'read'} wanted; last writer: {holders or 'unknown'}). "
                    "Another run or step is using it: wait for it, or raise FACTORY_WAREHOUSE_LOCK_TIMEOUT.") from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
    if exclusive:  # say who writes, for the next waiter's error message
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} {holder or ''}".strip().encode(), 0)
    return fd


def _read_holders(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def _release(path: str) -> None:
    with _mutex:
        entry = _held[path]
        entry[2] -= 1
        if entry[2] > 0:
            return
        del _held[path]
    fcntl.flock(entry[0], fcntl.LOCK_UN)
    os.close(entry[0])
