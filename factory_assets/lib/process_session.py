"""Stop a child process and everything it started, within seconds.

``dagster dev`` alone does not stop in time: on SIGTERM it waits up to 60 s for its webserver and
daemon, and their code servers can outlive it. Started with ``start_new_session=True``, the child
and its whole tree, orphans included, keep its session id; :func:`stop_session` sends SIGTERM to
each of them, waits a grace period for a clean exit, then SIGKILLs whatever is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

GRACE_S = 5.0


def session_pids(sid: int) -> list[int] | None:
    """The live (not zombie) processes of session ``sid``, from /proc; None without /proc."""
    if not os.path.isdir("/proc"):
        return None
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    state, _ppid, _pgrp, session = stat.read().rsplit(b")", 1)[1].split()[:4]
            except (OSError, ValueError):
                continue  # gone meanwhile
            if int(session) == sid and state != b"Z":
                pids.append(int(entry.name))
    return pids


def signal_session(sid: int, signum: int) -> bool:
    """Send ``signum`` to every process of the session; whether any was left to signal."""
    pids = session_pids(sid)
    for pid in pids or ():
        try:
            os.kill(pid, signum)
        except OSError:
            pass
    try:
        os.killpg(sid, signum)  # where /proc is missing; nothing more elsewhere
        return True if pids is None else bool(pids)
    except OSError:
        return bool(pids)


def stop_session(process: subprocess.Popen, grace_s: float = GRACE_S,
                 hurry: Callable[[], bool] = lambda: False) -> None:
    """Stop ``process`` (started in a session of its own) and every process of its session:
    SIGTERM, up to ``grace_s`` for a clean exit (less once ``hurry()``), then SIGKILL. Elsewhere than
    POSIX, the process alone is terminated, then killed."""
    if os.name != "posix":
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
        return
    sid = process.pid  # the session's id: its processes keep it after the leader is gone
    deadline = time.monotonic() + grace_s
    if signal_session(sid, signal.SIGTERM):
        while time.monotonic() < deadline and not hurry():
            time.sleep(0.1)
            if not signal_session(sid, 0):
                break
    signal_session(sid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and signal_session(sid, 0):
        time.sleep(0.05)  # SIGKILLed processes vanish once reaped
    process.wait()
