"""The reports server of `factory ui`: a real server on a free loopback port over a tmp artifacts folder.

It serves the monitors' Evidently reports and the audit bundles' pages, at the URLs the UI links
to, and nothing else of the artifacts folder: no models, no training sets, no listings, no way out.
"""

from __future__ import annotations

import http.client
import os
from pathlib import Path

import pytest

from factory_assets.lib.artifact_server import start_artifact_server

REPORT = "reports/late_delivery/2025-02-16/data_drift.html"
AUDIT_PAGE = "audit/late_delivery/v0001/index.html"
AUDIT_REPORT = "audit/late_delivery/v0001/reports/2025-02-16/data_drift.html"
AUDIT_JSON = "audit/late_delivery/v0001/bundle.json"


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("artifact_server")
    root = base / "artifacts"
    _write(root / REPORT, b"<html><body>Count of Drifted Columns</body></html>")
    _write(root / AUDIT_PAGE, b'<html><a href="bundle.json">bundle.json</a></html>')
    _write(root / AUDIT_REPORT, b"<html>copy</html>")
    _write(root / AUDIT_JSON, b'{"use_case": "late_delivery"}')
    _write(root / "models/late_delivery/v0001/model.joblib", b"pickle bytes")
    _write(root / "models/late_delivery/v0001/report.html", b"<html>not a report</html>")
    _write(root / "training_sets/late_delivery/2025-02-16.parquet", b"PAR1" + b"\0" * 1000 + b"PAR1")
    _write(root / "feature_snapshots/late_delivery/2025-02-16.parquet", b"PAR1")
    _write(root / "approvals/late_delivery.jsonl", b"{}\n")
    _write(root / "reports/late_delivery/2025-02-16/notes.txt", b"not html")
    _write(root / "reports/late_delivery/2025-02-16/.hidden.html", b"<html>hidden</html>")
    secret = _write(base / "secret.html", b"<html>outside</html>")
    os.symlink(secret, root / "reports/late_delivery/2025-02-16/escape.html")
    os.symlink(root / "models", root / "reports/models")  # a folder link out of reports/
    os.symlink(root / REPORT, root / "reports/late_delivery/2025-02-16/alias.html")  # stays inside: fine
    srv = start_artifact_server(root, "127.0.0.1", 0)
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _request(port: int, path: str, method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)  # the path goes out as is
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.headers, response.read()  # headers: case-insensitive
    finally:
        conn.close()


def test_a_monitors_report_is_served_at_the_url_the_ui_links_to(server):
    status, headers, body = _request(server, f"/{REPORT}")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b"Count of Drifted Columns" in body
    status, headers, body = _request(server, f"/{REPORT}", "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert _request(server, f"/{REPORT}?v=1")[0] == 200  # a query string changes nothing
    assert _request(server, "/reports/late_delivery/2025-02-16/alias.html")[0] == 200


@pytest.mark.parametrize("path", [AUDIT_PAGE, AUDIT_REPORT, AUDIT_JSON])
def test_an_audit_bundles_page_its_reports_and_json_are_served(server, path):
    status, headers, _ = _request(server, f"/{path}")
    assert status == 200
    assert headers["Content-Type"].split(";")[0] in {"text/html", "application/json"}


@pytest.mark.parametrize("path", [
    "/models/late_delivery/v0001/model.joblib",
    "/models/late_delivery/v0001/report.html",
    "/training_sets/late_delivery/2025-02-16.parquet",
    "/feature_snapshots/late_delivery/2025-02-16.parquet",
    "/approvals/late_delivery.jsonl",
    "/reports/late_delivery/2025-02-16/notes.txt",
    "/reports/late_delivery/2025-02-16/.hidden.html",
    "/reports/late_delivery/2025-02-16/missing.html",
    "/reports/models/late_delivery/v0001/report.html",  # through a folder link out of reports/
    "/reports/late_delivery/2025-02-16/escape.html",  # a symlink to a file outside
])
def test_nothing_but_reports_is_served(server, path):
    assert _request(server, path)[0] == 404
    assert _request(server, path, "HEAD")[0] == 404


@pytest.mark.parametrize("path", ["/", "/reports", "/reports/", "/reports/late_delivery/",
                                  "/reports/late_delivery/2025-02-16/", "/models/", "/training_sets/", "/audit/",
                                  "/audit/late_delivery/v0001/"])
def test_no_directory_is_listed(server, path):
    status, _, body = _request(server, path)
    assert status == 404
    assert b"2025-02-16" not in body and b"data_drift" not in body and b"v0001" not in body


@pytest.mark.parametrize("path", [
    "/reports/../models/late_delivery/v0001/model.joblib",
    "/reports/late_delivery/../../secret.html",
    "/reports/%2e%2e/training_sets/late_delivery/2025-02-16.parquet",
    "/reports/%2E%2E/%2E%2E/secret.html",
    "/reports/late_delivery%2f..%2f..%2fsecret.html",
    "/reports/..%5c..%5csecret.html",
    "/reports/late_delivery/2025-02-16/%2e/data_drift.html",
    "//reports/late_delivery/2025-02-16/data_drift.html/../../../../secret.html",
    "/reports/late_delivery/2025-02-16/data_drift.html%00.parquet",
    "/reports/%ff.html",
])
def test_no_path_traversal(server, path):
    status, _, body = _request(server, path)
    assert status in (403, 404)
    assert b"outside" not in body and b"PAR1" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_only_get_and_head(server, method):
    assert _request(server, f"/{REPORT}", method)[0] in (405, 501)
