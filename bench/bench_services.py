"""Benchmark: HTTP scoring on the ASGI stack (Starlette on uvicorn, with the policy and the usage log)
against the first endpoint on the standard library's ``http.server`` (bench/stdlib_http_server.py),
same model, same requests: ``requests`` POSTs of ``rows`` rows each, from ``clients`` threads at once,
each server in its own process. Throughput (requests/s) and p95 latency per request.

    .venv/bin/python bench/bench_services.py --requests 1000 --rows 100
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

USE_CASE = "churn_demo"

_SERVER = """
import sys, json
sys.path.insert(0, {bench!r})
kind, registry, home = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "stdlib":
    from stdlib_http_server import make_server
    server = make_server(registry, port=0)
else:
    from pathlib import Path
    from factory_assets.distribution.http_api import ServiceServer
    from factory_assets.distribution.services import ServiceCatalogue, UsageLog
    from factory_assets.governance.policy import load_policy
    catalogue = ServiceCatalogue(registry, policy=load_policy({policy!r}),
                                 usage=UsageLog(Path(home) / "usage", Path(home) / "landing"))
    server = ServiceServer(catalogue, port=0)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
"""


def _train(home: Path) -> list[dict]:
    """A real champion (the scoring tests' synthetic churn model); returns request rows."""
    from test_scoring_service import synthetic, train_champion

    train_champion(home / "models")
    return synthetic(2000, seed=2).drop("churned", "split_time").to_dicts()


def _drive(port: int, bodies: list[bytes], clients: int) -> dict:
    """POST every body (a new connection each, as the stdlib server closes after each answer)."""
    def one(body: bytes) -> float:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", f"/models/{USE_CASE}/champion/score", body,
                     {"Content-Type": "application/json", "X-Caller": "risk-team"})
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}: {payload[:300]!r}")
        return time.perf_counter() - started

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, bodies[: clients * 2]))  # warm-up: models loaded, connections made
        started = time.perf_counter()
        latencies = list(pool.map(one, bodies))
        wall = time.perf_counter() - started
    return {"wall_s": wall, "requests_per_s": len(bodies) / wall, "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p95_ms": 1000 * float(np.percentile(latencies, 95))}


def measure(requests: int = 1000, rows: int = 100, clients: int = 8, workdir: str | None = None) -> dict:
    home = Path(workdir or tempfile.mkdtemp(prefix="bench-services-"))
    home.mkdir(parents=True, exist_ok=True)
    pool = _train(home)
    bodies = [json.dumps({"rows": [pool[(i * rows + j) % len(pool)] for j in range(rows)]}).encode()
              for i in range(requests)]
    code = _SERVER.format(bench=str(BENCH), policy=str(ROOT / "governance" / "policy.yaml"))
    out = {}
    for kind in ("stdlib", "asgi"):
        proc = subprocess.Popen([sys.executable, "-c", code, kind, str(home / "models"), str(home)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if not line.startswith("PORT"):
                raise RuntimeError(f"{kind} server did not start: {proc.stderr.read()[-2000:]}")
            out[kind] = _drive(int(line.split()[1]), bodies, clients)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    calls = sum(1 for log in (home / "usage").glob("*.jsonl") for _ in log.open())
    out["usage_lines"] = calls  # every ASGI request recorded (warm-up included)
    out["throughput_ratio"] = out["stdlib"]["requests_per_s"] / out["asgi"]["requests_per_s"]
    out["p95_ratio"] = out["asgi"]["p95_ms"] / out["stdlib"]["p95_ms"]
    out["requests"], out["rows"], out["clients"] = requests, rows, clients
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(measure(args.requests, args.rows, args.clients), indent=2))


if __name__ == "__main__":
    main()
