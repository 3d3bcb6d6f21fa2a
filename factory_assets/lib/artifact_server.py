"""Serves the reports under FACTORY_HOME/artifacts (Evidently reports, audit bundles) read-only over HTTP.

The Dagster UI runs in a browser, which will not follow a link from an http page to a local
file; monitoring records each report as a URL under ``settings.artifacts_url()`` and this
server, started by ``factory ui``, answers it. Loopback only by default; GET and HEAD only.

Only reports are served, never the rest of the artifacts folder (models, training sets,
feature snapshots, approvals, contracts): a URL answers 200 only when it names

* ``reports/<use case>/<day>/<name>.html`` -- an Evidently report written by monitoring, or
* ``audit/<use case>/<version>/...<name>.html`` or ``audit/.../bundle.json`` -- an audit bundle's
  page, its copies of the reports and the machine-readable bundle its page links to;

and the file, symlinks resolved, lies inside that folder. Everything else -- directories (no
listings), other files, hidden names, ``..`` in any spelling -- is a 404. The URL scheme is the
artifacts folder's own layout, so ``{FACTORY_ARTIFACTS_URL}/<path relative to artifacts>`` links
keep working.
"""

from __future__ import annotations

import shutil
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: Top-level folder of the artifacts -> names a file in it may have to be served.
_SERVED = {
    "reports": lambda name: name.endswith(".html"),
    "audit": lambda name: name.endswith(".html") or name == "bundle.json",
}
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json"}
_MAX_SEGMENTS = 16


def resolve_report(root: Path, url_path: str) -> Path | None:
    """The file ``url_path`` (the path part of a request, percent-encoded) names under ``root``,
    or None when it is not a servable report (see the module docstring)."""
    path = unquote(urlsplit(url_path).path, errors="strict")
    if not path.startswith("/") or "\\" in path or "\x00" in path:
        return None
    parts = path[1:].split("/")
    if len(parts) < 2 or len(parts) > _MAX_SEGMENTS:
        return None
    # no empty segment (a trailing slash is a directory), no ".", "..", or hidden names
    if any(not part or part.startswith(".") for part in parts):
        return None
    allowed = _SERVED.get(parts[0])
    if allowed is None or not allowed(parts[-1]):
        return None
    base = (root / parts[0]).resolve()
    try:
        target = root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    # a symlink may not lead out of its folder, nor to a file of another kind
    if not target.is_relative_to(base) or target == base or not allowed(target.name) or not target.is_file():
        return None
    return target


class _ReportsHandler(BaseHTTPRequestHandler):
    server_version = "FactoryReports"
    sys_version = ""
    root: Path  # set by start_artifact_server on a subclass

    def log_message(self, format, *args):  # the stdlib's signature
        pass  # the UI's own log is enough; reports are static files

    def _not_found(self, send_body: bool) -> None:
        body = b"404: not a report\n"
        self.send_response(HTTPStatus.NOT_FOUND)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _serve(self, send_body: bool) -> None:
        try:
            target = resolve_report(self.root, self.path)
        except (UnicodeDecodeError, ValueError):
            target = None
        if target is None:
            return self._not_found(send_body)
        try:
            handle = target.open("rb")
        except OSError:
            return self._not_found(send_body)
        with handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", _CONTENT_TYPES.get(target.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if send_body:
                shutil.copyfileobj(handle, self.wfile)

    def do_GET(self):  # the stdlib's naming
        self._serve(send_body=True)

    def do_HEAD(self):
        self._serve(send_body=False)

    def _not_allowed(self):
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed


def start_artifact_server(root: Path, host: str = "127.0.0.1", port: int = 3001) -> ThreadingHTTPServer:
    """Serve the reports under ``root`` in a daemon thread; ``server.shutdown()`` stops it."""
    root.mkdir(parents=True, exist_ok=True)
    handler = type("ReportsHandler", (_ReportsHandler,), {"root": root.resolve()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="artifact-server", daemon=True).start()
    return server
