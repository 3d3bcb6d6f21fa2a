"""The embedded Dagster instance's storage: Dagster's own SQLite storage, with pooled connections.

Dagster's SQLite run and event-log storages build a new SQLAlchemy engine, and open a new SQLite
connection, for every single write (``poolclass=NullPool``). A night of the chain writes hundreds of
events (step, output, materialisation and one planned + one evaluation event per asset check), so
the embedded instance spent seconds per night opening connections; a kept connection makes each
write several times cheaper (the figures: README, "What the benchmarks found"). That was most of the
gap between a night through Dagster and the same work as a plain script (``bench/bench_overhead.py``).

``PooledSqliteStorage`` is ``DagsterSqliteStorage`` with the same files and schema, so the UI,
the daemon and ``dagster`` CLI read it as they read the default; only the connection handling
differs:

* one engine per database file, reused; its connections stay open between writes;
* at most ``MAX_OPEN_SHARDS`` run shards keep an engine (a webserver reads many runs), the least
  recently used is closed;
* engines are dropped after a fork, never shared between processes (SQLite's own file locks, with
  WAL as Dagster sets it, handle several processes as before);
* engines are closed before Dagster deletes database files (``wipe``) and on ``dispose``.

The instance's ``dagster.yaml`` (``settings.ensure_dagster_home``) names it under ``storage: custom``.
A production instance uses Postgres instead (``deploy/production/dagster.yaml``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

# The storage classes subclass Dagster's private SQLite storages: they live in factory_assets.compat
# with the other private-API uses, and are re-exported here, the module dagster.yaml names.
from factory_assets.compat import (  # compat reads MAX_OPEN_SHARDS and EngineCache from here, lazily
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    PooledSqliteStorage,
)

__all__ = ["MAX_OPEN_SHARDS", "EngineCache", "PooledSqliteEventLogStorage", "PooledSqliteRunStorage",
           "PooledSqliteStorage"]

#: run shards (one SQLite file per run) that keep an open engine in one process
MAX_OPEN_SHARDS = 16


class EngineCache:
    """SQLAlchemy engines by connection string, least recently used first, for this process only."""

    def __init__(self, max_engines: int):
        self._max = max_engines
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def get(self, conn_string: str, busy_timeout_s: float | None = None) -> Engine:
        """The engine for ``conn_string``, built on first use."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's connections are not ours
                for engine in self._engines.values():
                    engine.dispose(close=False)
                self._engines.clear()
                self._pid = os.getpid()
            engine = self._engines.get(conn_string)
            if engine is not None:
                self._engines.move_to_end(conn_string)
                return engine
            connect_args = {"check_same_thread": False}  # Dagster logs from more than one thread
            if busy_timeout_s is not None:
                connect_args["timeout"] = busy_timeout_s
            engine = create_engine(conn_string, pool_size=1, max_overflow=4, connect_args=connect_args)
            self._engines[conn_string] = engine
            while len(self._engines) > self._max:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    def close_all(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.dispose(close=self._pid == os.getpid())
            self._engines.clear()

    def __len__(self) -> int:
        return len(self._engines)
