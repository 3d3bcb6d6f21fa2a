"""`factory ui`: the Dagster UI on the embedded instance, with the read-only server of its report links."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from factory_assets.cli.output import UsageError
from factory_assets.settings import PROJECT_ROOT, apply_dagster_runtime_env, default_paths, ensure_dagster_home


def cmd_ui(args) -> int:
    paths = default_paths().create()
    embedded = str(ensure_dagster_home(paths))
    env = apply_dagster_runtime_env(dict(os.environ))
    env["DAGSTER_HOME"] = env.get("DAGSTER_HOME") or embedded  # a production DAGSTER_HOME is kept
    env.setdefault("FACTORY_WAREHOUSE_PATH", str(paths.warehouse))
    from factory_assets.lib.artifact_server import start_artifact_server

    # The monitors' report links point at FACTORY_ARTIFACTS_URL (default http://127.0.0.1:3001):
    # serve the artifacts folder there, read-only, for as long as the UI runs.
    try:
        reports = start_artifact_server(paths.artifacts, args.host, args.artifacts_port)
    except OSError as exc:
        raise UsageError(f"cannot serve the reports on {args.host}:{args.artifacts_port} ({exc.strerror}); "
                         "stop what uses that port, or pass --artifacts-port N and set FACTORY_ARTIFACTS_URL to match "
                         "for the runs that write the reports.") from exc
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
           "-h", args.host, "-p", str(args.port)]
    print(f"Starting the Dagster UI on http://{args.host}:{args.port} (FACTORY_HOME={paths.home}); reports on "
          f"http://{args.host}:{args.artifacts_port}/; Ctrl-C stops both.", flush=True)
    # `dagster dev` alone does not stop in time (see lib/process_session): it runs in a session of
    # its own, and this process alone takes Ctrl-C, a service manager's SIGTERM or a hang-up.
    import signal
    import threading

    from factory_assets.lib.process_session import stop_session

    posix = os.name == "posix"
    received: list[int] = []
    handled = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in handled:
            previous[signum] = signal.signal(signum, lambda signum, _frame: received.append(signum))

    process = None
    try:
        process = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, start_new_session=posix)
        while process.poll() is None and not received:
            time.sleep(0.1)
        return 0 if received else process.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        try:
            if process is not None:
                # also when dagster dev exited alone: its code servers may not have; a second Ctrl-C
                # skips the grace period
                stop_session(process, hurry=lambda: len(received) >= 2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            reports.shutdown()
            reports.server_close()
