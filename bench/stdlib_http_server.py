"""The factory's first scoring endpoint, on the standard library's ``http.server``: kept only as the
baseline of bench/bench_services.py (the factory serves with Starlette and uvicorn,
factory_assets/distribution/http_api.py).

    GET  /health                                     {"status": "ok"}
    GET  /models                                     use cases with their aliases and versions
    GET  /models/<use_case>/<alias_or_version>       the model's feature contract and metrics
    POST /models/<use_case>/<alias_or_version>/score body {"rows": [{...}, ...]}
         200 {"model_version", "predictions", "warnings"}   400 {"errors": [...]}   404 / 413 / 500

It listens on loopback by default and has no authentication: it is for a department's own machine
or behind a gateway that does the access control. Errors say what is wrong with the request and
never carry a traceback; unexpected failures are logged here and answered with a generic 500.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from factory_assets.assembly.feature_schema import ScoringInputError
from factory_assets.distribution.http_api import _body_error, _number, _problem
from factory_assets.distribution.service import ModelNotFoundError, ScoringService
from factory_assets.lib.jsonable import jsonable

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
#: A refused body up to this many times the limit is read and dropped so the client sees the 413.
DISCARD_FACTOR = 10
ENDPOINTS = ["GET /health", "GET /models", "GET /models/<use_case>/<alias_or_version>",
             "POST /models/<use_case>/<alias_or_version>/score"]


class ScoringServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the scoring service and the body size limit."""

    daemon_threads = True

    def __init__(self, address, service: ScoringService, max_body_bytes: int):
        super().__init__(address, ScoringHandler)
        self.service = service
        self.max_body_bytes = max_body_bytes

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class ScoringHandler(BaseHTTPRequestHandler):
    server: ScoringServer
    server_version = "AIFactoryScoring/1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        try:
            if method == "GET" and parts == ["health"]:
                return self._send(200, {"status": "ok"})
            if method == "GET" and parts == ["models"]:
                return self._send(200, {"models": self.server.service.list_models()})
            if method == "GET" and len(parts) == 3 and parts[0] == "models":
                return self._send(200, self.server.service.describe(parts[1], parts[2]))
            if method == "POST" and len(parts) == 4 and parts[0] == "models" and parts[3] == "score":
                return self._score(parts[1], parts[2])
            return self._send(404, {"error": f"no endpoint {method} {urlsplit(self.path).path}", "endpoints": ENDPOINTS})
        except ModelNotFoundError as exc:
            return self._send(404, {"error": str(exc)})
        except ScoringInputError as exc:
            return self._send(400, {"errors": [_problem(p) for p in exc.problems]})
        except _TooLarge as exc:
            return self._send(413, {"error": str(exc)})
        except Exception:
            log.exception("scoring request %s %s failed", method, self.path)
            return self._send(500, {"error": "internal error while handling the request; it is logged on the server"})

    def _score(self, use_case: str, alias_or_version: str) -> None:
        rows = self._read_rows()  # read the body first: closing on an unread body resets the connection
        result = self.server.service.score(use_case, rows, alias=alias_or_version)
        self._send(200, {
            "use_case": use_case,
            "model_version": result.model_version,
            "predictions": [_number(v) for v in result.predictions],
            "warnings": [_problem(p) for p in result.warnings],
        })

    def _read_rows(self) -> list:
        """The "rows" of the JSON body, or a ScoringInputError saying what is wrong with the body."""
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise _body_error("the request has no Content-Length", "send the JSON body with a Content-Length header")
        if int(length) > self.server.max_body_bytes:
            self._discard(int(length))
            raise _TooLarge(int(length), self.server.max_body_bytes)
        body = self.rfile.read(int(length))
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _body_error(f"the body is not valid JSON ({getattr(exc, 'msg', exc)})",
                              'send {"rows": [{"column": value, ...}, ...]} as UTF-8 JSON') from None
        if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
            raise _body_error('the body has no "rows" list', 'send {"rows": [{"column": value, ...}, ...]}')
        return payload["rows"]

    def _discard(self, length: int) -> None:
        """Read a refused body in chunks without keeping it, so the client gets to read the 413.

        Past ``DISCARD_FACTOR`` times the limit the connection is just closed instead.
        """
        self.close_connection = True
        if length > DISCARD_FACTOR * self.server.max_body_bytes:
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(jsonable(payload), allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # the base class's name
        log.info("%s %s", self.address_string(), format % args)


class _TooLarge(Exception):
    def __init__(self, size: int, limit: int):
        super().__init__(f"the body has {size} bytes; the limit is {limit} bytes: send fewer rows per request")


def make_server(registry_root: Path | str, host: str = "127.0.0.1", port: int = 8000, *,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> ScoringServer:
    """A bound, not yet serving server (port 0 picks a free port; read it from ``server.server_address``)."""
    return ScoringServer((host, port), ScoringService(registry_root), max_body_bytes)


def serve(registry_root: Path | str, host: str = "127.0.0.1", port: int = 8000, *,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = make_server(registry_root, host, port, max_body_bytes=max_body_bytes)
    print(f"Scoring models from {registry_root} on {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
