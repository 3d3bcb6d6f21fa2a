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

Processes outside the factory (a DuckDB shell, a notebook, a BI tool) do not take this lock; DuckDB
refuses the factory's connection while they hold the file ("Could not set lock on file").
:func:`connect_duckdb` treats that as transient: it tries again with exponential back-off until
the same timeout, then fails naming the file and the process that holds it (issue 19, item 9).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
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


# --------------------------------------------------------------------------------------
# DuckDB's own file lock, held by a process outside the factory
# --------------------------------------------------------------------------------------

#: What DuckDB says when another process holds the database file.
LOCK_CONFLICT = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")

_log = logging.getLogger("factory_assets.warehouse")


class WarehouseBusyError(TimeoutError):
    """Another process kept the warehouse file locked longer than FACTORY_WAREHOUSE_LOCK_TIMEOUT."""


def lock_holder(message: str) -> str | None:
    """Who holds the file, from DuckDB's message: program and pid, and (on this machine) its command line."""
    match = _HOLDER.search(message)
    if match is None:
        return None
    pid = int(match["pid"])
    try:
        command = " ".join(open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").replace("\0", " ").split())
    except OSError:
        command = ""
    return f"{match['program']} (PID {pid}){f', running: {command[:200]}' if command else ''}"


def _duckdb_words(message: str) -> str:
    """DuckDB's message, one line, without its "IO Error: " prefix and documentation link."""
    text = " ".join(message.split()).removeprefix("IO Error: ")
    return text.split(" See also ")[0].rstrip(".")


def connect_duckdb(database: Path, read_only: bool = False, timeout_s: float | None = None, *,
                   sleep=time.sleep, clock=time.monotonic):
    """``duckdb.connect``, trying again while another process holds the file's lock.

    Pauses double from 0.05 s up to 2 s; after ``timeout_s`` (default FACTORY_WAREHOUSE_LOCK_TIMEOUT)
    a WarehouseBusyError names the file and its holder. Any other error is raised at once."""
    import duckdb

    timeout_s = lock_timeout() if timeout_s is None else timeout_s
    deadline, pause, tries = clock() + timeout_s, 0.05, 0
    while True:
        try:
            conn = duckdb.connect(str(database), read_only=read_only)
            if tries:
                _log.warning("warehouse %s: opened after %d tries (another process held it)", database, tries + 1)
            return conn
        except duckdb.IOException as exc:
            if LOCK_CONFLICT not in str(exc):
                raise
            tries += 1
            left = deadline - clock()
            if left <= 0:
                holder = lock_holder(str(exc))
                raise WarehouseBusyError(
                    f"the warehouse {database} stayed locked by another process for {timeout_s:.0f} s "
                    f"({tries} tries to open it {'read-only' if read_only else 'for writing'}): {_duckdb_words(str(exc))}"
                    f"{f'; held by {holder}' if holder else ''}. Close that process's connection (a DuckDB shell, "
                    "a notebook, a BI tool), or raise FACTORY_WAREHOUSE_LOCK_TIMEOUT (seconds).") from exc
            if tries == 1:
                _log.warning("warehouse %s is locked by %s: trying again for up to %.0f s", database,
                             lock_holder(str(exc)) or "another process", timeout_s)
            sleep(min(pause, left))
            pause = min(pause * 2, 2.0)


# --------------------------------------------------------------------------------------
# A warehouse file that is damaged, or gone while the raw store still holds what landed
# --------------------------------------------------------------------------------------

#: What DuckDB says about a file it cannot read as a database (truncated, overwritten, half-copied).
DAMAGE_SIGNS = ("not a valid DuckDB database file", "Could not read enough bytes", "Corrupt database file",
                "database file is corrupt", "Failure while replaying WAL", "checksum mismatch",
                "Failed to read database header")

RECOVERY_HINT = ("Rebuild it from the immutable raw store (FACTORY_HOME/raw, the Parquet copies of every "
                 "ingested file) with `factory recover`: it keeps the damaged file aside, restores the raw "
                 "tables to the same rows and rebuilds the data products (README: Fault tolerance).")


class WarehouseDamagedError(RuntimeError):
    """The warehouse file cannot be read, or is missing while the raw store holds ingested data."""


def is_damage(error: BaseException) -> bool:
    return any(sign in str(error) for sign in DAMAGE_SIGNS)


def damaged(database: Path, error: BaseException) -> WarehouseDamagedError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return WarehouseDamagedError(f"the warehouse {database} is damaged ({first}). {RECOVERY_HINT}")


def raw_store_holds_data(raw_store: Path) -> bool:
    return raw_store.is_dir() and next(raw_store.glob("*/partition_date=*/*.parquet"), None) is not None


def lost(database: Path, raw_store: Path) -> WarehouseDamagedError:
    return WarehouseDamagedError(
        f"the warehouse {database} is missing, but the raw store {raw_store} holds ingested files: opening a new "
        f"empty warehouse would rebuild every product with 0 rows. {RECOVERY_HINT}")
