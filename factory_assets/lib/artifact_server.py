"""Serves FACTORY_HOME/artifacts (Evidently reports, audit bundles) read-only over HTTP.

The Dagster UI runs in a browser, which will not follow a link from an http page to a local
file; monitoring records each report as a URL under ``settings.artifacts_url()`` and this
server, started by ``factory ui``, answers it. Loopback only by default; GET and HEAD only.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _ReadOnlyArtifacts(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # the UI's own log is enough; reports are static files


def start_artifact_server(root: Path, host: str = "127.0.0.1", port: int = 3001) -> ThreadingHTTPServer:
    """Start serving ``root`` in a daemon thread; ``server.shutdown()`` stops it."""
    root.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_ReadOnlyArtifacts, directory=str(root))
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="artifact-server", daemon=True).start()
    return server
