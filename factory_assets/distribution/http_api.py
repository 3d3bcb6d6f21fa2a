"""The services over HTTP: a Starlette app served by uvicorn (both come with dagster-webserver).

    GET  /health                                   {"status": "ok"}
    GET  /openapi.json                             the OpenAPI 3.1 document, one path per service
    GET  /services                                 the catalogue
    GET  /services/<name>                          a service's owner, tier, version and contracts
    POST /services/<name>                          body {"rows": [...]}  ->  {"service", "version", "outputs", "warnings"}
    GET  /models                                   use cases with their aliases and versions
    GET  /models/<use_case>/<alias_or_version>     a model's feature contract and metrics
    POST /models/<use_case>/<alias_or_version>/score   body {"rows": [...]}  ->  {"model_version", "predictions", ...}

    200 | 400 {"errors": [{column, problem, fix, rows, count}]} | 403 | 404 | 413 | 500 {"error"}

A caller names itself in the ``X-Caller`` header (the gateway in front sets it; there is no
authentication here, so keep it on loopback or behind one); the policy decides who may call a
high-tier service, and every call is recorded as usage. Scoring runs in a thread pool, so slow
requests do not hold up others. Errors say what is wrong with the request and never carry a
traceback; unexpected failures are logged here and answered with a generic 500.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from factory_assets.assembly.feature_schema import INPUT, FeatureProblem, ScoringInputError
from factory_assets.distribution.service import ModelNotFoundError
from factory_assets.distribution.services import ANONYMOUS, CallerNotAllowedError, ServiceCatalogue
from factory_assets.lib.jsonable import jsonable

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
#: A refused body up to this many times the limit is read and dropped so the client sees the 413.
DISCARD_FACTOR = 10
ENDPOINTS = ["GET /health", "GET /openapi.json", "GET /services", "GET /services/<name>", "POST /services/<name>",
             "GET /models", "GET /models/<use_case>/<alias_or_version>",
             "POST /models/<use_case>/<alias_or_version>/score"]
ROWS_HINT = 'send {"rows": [{"column": value, ...}, ...]} as UTF-8 JSON'


class _TooLarge(Exception):
    def __init__(self, size: int, limit: int):
        super().__init__(f"the body has {size} bytes or more; the limit is {limit} bytes: send fewer rows per request")


def _number(value):
    return value if value is None or not isinstance(value, float) or math.isfinite(value) else None


def _json(status: int, payload: dict | bytes) -> Response:
    body = payload if isinstance(payload, bytes) else _encoded(payload)
    return Response(body, status_code=status, media_type="application/json")


def _problem(p: FeatureProblem) -> dict:
    return {"column": p.column, "problem": p.problem, "fix": p.fix, "rows": p.rows, "count": p.count}


def _body_error(problem: str, fix: str) -> ScoringInputError:
    return ScoringInputError([FeatureProblem(INPUT, problem, fix)], context="the request body cannot be read")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body; one over ``limit`` bytes is drained (up to DISCARD_FACTOR times the limit, so the
    client reads the 413 rather than a reset connection) and refused."""
    declared = request.headers.get("content-length", "")
    size, body = 0, bytearray()
    too_large = declared.isdigit() and int(declared) > limit
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_large = True
        if too_large:
            if size > DISCARD_FACTOR * limit:
                break
            continue
        body += chunk
    if too_large:
        raise _TooLarge(max(size, int(declared) if declared.isdigit() else 0), limit)
    return bytes(body)


def _rows_of(body: bytes) -> list:
    """The "rows" of a JSON body, or a ScoringInputError saying what is wrong with it."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _body_error(f"the body is not valid JSON ({getattr(exc, 'msg', exc)})", ROWS_HINT) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
        raise _body_error('the body has no "rows" list', ROWS_HINT)
    return payload["rows"]


def _encoded(payload: dict) -> bytes:
    return json.dumps(jsonable(payload), allow_nan=False).encode()


def build_app(catalogue: ServiceCatalogue, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Starlette:
    """The ASGI app over ``catalogue``; ``max_body_bytes`` bounds a request body."""

    def caller_of(request: Request) -> str:
        return request.headers.get("x-caller", "").strip() or ANONYMOUS

    async def health(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def openapi(request: Request) -> Response:
        return _json(200, await run_in_threadpool(openapi_document, catalogue, max_body_bytes))

    async def services(request: Request) -> Response:
        specs = await run_in_threadpool(catalogue.specs)
        return _json(200, {"services": [s.summary() for s in specs]})

    async def service(request: Request) -> Response:
        spec = await run_in_threadpool(catalogue.spec, request.path_params["name"])
        return _json(200, spec.describe())

    # Parsing, the call and the answer's JSON run together in the thread pool: the event loop only
    # moves bytes, so one request's work never holds up reading the next.
    async def call(request: Request) -> Response:
        body, name, caller = await _read_body(request, max_body_bytes), request.path_params["name"], caller_of(request)

        def work() -> bytes:
            result = catalogue.call(name, _rows_of(body), caller=caller, channel="http")
            return _encoded({"service": result.service, "version": result.version, "outputs": result.outputs.to_dicts(),
                             "warnings": [_problem(p) for p in result.warnings]})

        return _json(200, await run_in_threadpool(work))

    async def models(request: Request) -> Response:
        return _json(200, {"models": await run_in_threadpool(catalogue.scoring.list_models)})

    async def model(request: Request) -> Response:
        p = request.path_params
        return _json(200, await run_in_threadpool(catalogue.scoring.describe, p["use_case"], p["alias"]))

    async def score(request: Request) -> Response:
        p, body, caller = request.path_params, await _read_body(request, max_body_bytes), caller_of(request)

        def work() -> bytes:
            result = catalogue.call(p["use_case"], _rows_of(body), caller=caller, channel="http", alias=p["alias"])
            return _encoded({"use_case": p["use_case"], "model_version": result.version,
                             "predictions": [_number(v) for v in result.outputs["prediction"].to_list()],
                             "warnings": [_problem(w) for w in result.warnings]})

        return _json(200, await run_in_threadpool(work))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json(404, {"error": f"no endpoint {request.method} {request.url.path}", "endpoints": ENDPOINTS})

    async def errors(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ModelNotFoundError):
            return _json(404, {"error": str(exc)})
        if isinstance(exc, CallerNotAllowedError):
            return _json(403, {"error": str(exc)})
        if isinstance(exc, ScoringInputError):
            return _json(400, {"errors": [_problem(p) for p in exc.problems]})
        if isinstance(exc, _TooLarge):
            return _json(413, {"error": str(exc)})
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return _json(500, {"error": "internal error while handling the request; it is logged on the server"})

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/services", services, methods=["GET"]),
        Route("/services/{name}", service, methods=["GET"]),
        Route("/services/{name}", call, methods=["POST"]),
        Route("/models", models, methods=["GET"]),
        Route("/models/{use_case}/{alias}", model, methods=["GET"]),
        Route("/models/{use_case}/{alias}/score", score, methods=["POST"]),
    ]
    handlers = {404: not_found, 405: not_found,
                **{kind: errors for kind in (ModelNotFoundError, CallerNotAllowedError, ScoringInputError, _TooLarge,
                                             Exception)}}
    return Starlette(routes=routes, exception_handlers=handlers)


# ---- the OpenAPI document --------------------------------------------------------------------

_PROBLEMS = {"type": "object", "properties": {"errors": {"type": "array", "items": {
    "type": "object", "required": ["column", "problem", "fix"],
    "properties": {"column": {"type": "string"}, "problem": {"type": "string"}, "fix": {"type": "string"},
                   "rows": {"type": "array", "items": {"type": "integer"}}, "count": {"type": "integer"}}}}}}
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def _rows_schema(columns, required: bool) -> dict:
    return {"type": "object", "properties": {c.name: c.json_schema() for c in columns},
            "required": [c.name for c in columns if required or not c.nullable]}


def openapi_document(catalogue: ServiceCatalogue, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> dict:
    """One path per service in the catalogue, its request and response bodies from its contracts."""
    caller = {"name": "X-Caller", "in": "header", "required": False, "schema": {"type": "string"},
              "description": "who calls (a department or system); the policy decides who may call high-tier services"}
    errors = {
        "400": {"description": "the rows do not fit the input contract: one problem per column",
                "content": {"application/json": {"schema": _PROBLEMS}}},
        "403": {"description": "the policy does not let this caller call the service",
                "content": {"application/json": {"schema": _ERROR}}},
        "404": {"description": "no such service", "content": {"application/json": {"schema": _ERROR}}},
        "413": {"description": f"the body is larger than {max_body_bytes} bytes",
                "content": {"application/json": {"schema": _ERROR}}},
    }
    paths: dict[str, dict] = {
        "/health": {"get": {"summary": "liveness", "responses": {"200": {"description": "up"}}}},
        "/services": {"get": {"summary": "the catalogue of services", "responses": {"200": {"description": "services"}}}},
    }
    for spec in catalogue.specs():
        request = {"type": "object", "required": ["rows"], "properties": {
            "rows": {"type": "array", "minItems": 1, "items": _rows_schema(spec.inputs, required=False)}}}
        response = {"type": "object", "required": ["service", "version", "outputs", "warnings"], "properties": {
            "service": {"const": spec.name}, "version": {"type": "string"},
            "outputs": {"type": "array", "items": _rows_schema(spec.outputs, required=True)},
            "warnings": _PROBLEMS["properties"]["errors"]}}
        paths[f"/services/{spec.name}"] = {
            "get": {"summary": f"describe {spec.name}", "operationId": f"describe_{spec.name}",
                    "responses": {"200": {"description": "owner, tier, version and contracts"}, "404": errors["404"]}},
            "post": {
                "summary": f"call {spec.name} ({spec.kind}, {spec.risk_tier} tier, owner {spec.owner})",
                "description": spec.description, "operationId": f"call_{spec.name}", "parameters": [caller],
                "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                "responses": {"200": {"description": "one output row per input row, in order",
                                      "content": {"application/json": {"schema": response}}}, **errors},
            },
        }
    return {"openapi": "3.1.0",
            "info": {"title": "AI Factory services", "version": "1",
                     "description": "Reusable AI services: call any with your own rows (README: Services)."},
            "paths": paths}


# ---- serving ---------------------------------------------------------------------------------


class ServiceServer:
    """uvicorn serving the app on a socket bound at construction (port 0 picks a free one):
    ``serve_forever`` in this thread or another, ``shutdown`` from elsewhere, then ``server_close``."""

    def __init__(self, catalogue: ServiceCatalogue, host: str = "127.0.0.1", port: int = 8000,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, *, log_level: str = "warning"):
        import uvicorn

        self.catalogue = catalogue
        self.service = catalogue.scoring  # the models' scoring service
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.socket.listen(2048)
        self.server_address = self.socket.getsockname()
        config = uvicorn.Config(build_app(catalogue, max_body_bytes), lifespan="off", log_level=log_level,
                                access_log=False, timeout_graceful_shutdown=5)
        self._uvicorn = uvicorn.Server(config)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float = 10) -> None:
        self._uvicorn.should_exit = True
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()


def make_server(registry_root: Path | str, host: str = "127.0.0.1", port: int = 8000, *,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, catalogue: ServiceCatalogue | None = None) -> ServiceServer:
    """A bound, not yet serving server over ``catalogue`` (default: the registry's models and the
    function services, no policy, no usage log)."""
    return ServiceServer(catalogue or ServiceCatalogue(registry_root), host, port, max_body_bytes)


def serve(catalogue: ServiceCatalogue, host: str = "127.0.0.1", port: int = 8000, *,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = ServiceServer(catalogue, host, port, max_body_bytes, log_level="info")
    print(f"Serving {len(catalogue.specs())} service(s) on {server.url} (OpenAPI: {server.url}/openapi.json; "
          "Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
