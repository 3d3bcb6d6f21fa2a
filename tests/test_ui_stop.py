"""Stopping `factory ui` stops all of it: dagster dev, its webserver and daemon, their code servers.

A service manager sends SIGTERM to the main pid only (a terminal's Ctrl-C goes to the foreground
process group, and `factory ui` forwards both the same way): every process of the UI must be gone
within STOP_S and its ports free. `tasks.py ui` becomes `factory ui` (exec), so the same holds there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from factory_assets.settings import PROJECT_ROOT

STOP_S = 10.0
START_TIMEOUT_S = 240
CODE_SERVERS = 4  # two locations (workspace.yaml): a `code-server start` proxy and its `api grpc` each


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of our own requests is fine
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _locations_loaded(port: int) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


def _wait_until_up(server: subprocess.Popen, port: int, log: Path) -> list[psutil.Process]:
    """Wait for the webserver, its code locations and the daemon's code servers; the UI's processes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    main = psutil.Process(server.pid)
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`factory ui` exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        tree = main.children(recursive=True)
        code_servers = [p for p in tree if _alive(p) and {"code-server", "grpc"} & set(_cmdline(p))]
        if len(code_servers) >= CODE_SERVERS and _locations_loaded(port):
            return [main, *tree]
        time.sleep(1)
    pytest.fail(f"the UI did not come up within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def test_sigterm_to_factory_ui_stops_every_process_of_the_ui_within_ten_seconds(tmp_path):
    home = tmp_path / "factory"
    port, artifacts_port = _free_port(), _free_port()
    env = dict(os.environ, FACTORY_HOME=str(home), DAGSTER_HOME=str(home / "dagster_home"),
               FACTORY_WAREHOUSE_PATH=str(home / "warehouse.duckdb"),
               FACTORY_ARTIFACTS_URL=f"http://127.0.0.1:{artifacts_port}",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    log_path = tmp_path / "factory_ui.log"
    processes: list[psutil.Process] = []
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "factory"), "ui", "--port", str(port), "--artifacts-port", str(artifacts_port)],
            env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            processes = _wait_until_up(server, port, log_path)
            names = {" ".join(_cmdline(p)) for p in processes}
            assert any("dagster dev" in n for n in names) and any("dagster_webserver" in n for n in names)
            assert any("dagster._daemon" in n for n in names)

            started = time.monotonic()
            os.kill(server.pid, signal.SIGTERM)  # the main pid only, as a service manager does
            while time.monotonic() - started < STOP_S + 5 and any(_alive(p) for p in processes):
                server.poll()  # reap `factory ui` itself
                time.sleep(0.05)
            stopped_s = time.monotonic() - started
            left = [f"{p.pid} {' '.join(_cmdline(p))[:200]}" for p in processes if _alive(p)]
            print(f"every process of the UI stopped {stopped_s:.2f} s after SIGTERM to `factory ui`")
            assert not left, f"still running {stopped_s:.1f} s after SIGTERM:\n" + "\n".join(left)
            assert stopped_s <= STOP_S, f"stopping took {stopped_s:.1f} s"
            assert server.wait(timeout=1) == 0
            assert _port_free(port) and _port_free(artifacts_port)
        finally:
            try:
                processes += psutil.Process(server.pid).children(recursive=True)
            except psutil.Error:
                pass
            for process in processes:  # never leave a UI behind, whatever failed
                try:
                    process.kill()
                except psutil.Error:
                    pass
            if server.poll() is None:
                server.kill()
                server.wait()


def test_tasks_py_ui_becomes_factory_ui_so_that_signals_reach_it(monkeypatch):
    """Through subprocess.run, SIGTERM to `tasks.py ui` would end tasks.py alone (the UI kept
    running), and a Ctrl-C would SIGKILL `factory ui` before it could stop dagster dev."""
    if os.name != "posix":
        pytest.skip("exec replaces the process on POSIX only")
    sys.path.insert(0, str(PROJECT_ROOT))
    try:
        import tasks
    finally:
        sys.path.remove(str(PROJECT_ROOT))
    calls = []

    class Exec(Exception):
        """os.execve does not return"""

    def execve(path, argv, env):
        calls.append(("exec", str(path), list(argv)))
        raise Exec

    monkeypatch.setattr(tasks, "setup", lambda: {"FACTORY_HOME": "/nowhere"})
    monkeypatch.setattr(tasks, "_run", lambda cmd, **kwargs: calls.append(("run", [str(c) for c in cmd])))
    monkeypatch.setattr(tasks.os, "execve", execve)
    monkeypatch.setattr(tasks.os, "chdir", lambda path: None)
    with pytest.raises(Exec):
        tasks.main(["ui", "--port", "3005"])
    factory = str(tasks.BIN / "factory")
    assert calls == [("exec", factory, [factory, "ui", "--port", "3005"])]
