"""The catalogue of reusable services (issue 22, item 2): a real LightGBM champion and the sentiment
scorer, called through Python, plain HTTP requests built from the OpenAPI document (Starlette on
uvicorn), and the CLI; the policy deciding who may call a high-tier service; every call recorded
as usage, delivered to landing and ingested as the raw source ``service_usage``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from types import SimpleNamespace

import jsonschema
import numpy as np
import polars as pl
import pytest
from test_scoring_service import FEATURES, USE_CASE, expected, synthetic, train_champion

from factory_assets.assembly.registry import ModelRegistry
from factory_assets.distribution import services as svc
from factory_assets.assembly.feature_schema import ScoringInputError
from factory_assets.distribution.http_api import make_server, openapi_document
from factory_assets.distribution.service import ScoringService
from factory_assets.distribution.services import (
    CallerNotAllowedError,
    ServiceCatalogue,
    ServiceNotFoundError,
    UsageLog,
    sentiment_scores,
)
from factory_assets.governance.policy import load_policy
from factory_assets.settings import PROJECT_ROOT, FactoryPaths

TIER = {USE_CASE: SimpleNamespace(owner="retention-team@factory.example", risk_tier="high",
                                  description="Which customers are about to leave.")}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("factory")
    train_champion(home / "artifacts" / "models")
    return home


@pytest.fixture
def catalogue(home, tmp_path):
    usage = UsageLog(tmp_path / "usage", tmp_path / "landing")
    return ServiceCatalogue(home / "artifacts" / "models", use_cases=TIER,
                            policy=load_policy(PROJECT_ROOT / "governance" / "policy.yaml"), usage=usage)


@pytest.fixture(scope="module")
def fresh():
    return synthetic(300, seed=2)


def test_the_catalogue_lists_champions_and_function_services_with_owners_tiers_and_contracts(catalogue, home):
    specs = {s.name: s for s in catalogue.specs()}
    assert set(specs) == {USE_CASE, "sentiment"}
    model = specs[USE_CASE]
    version = ModelRegistry(home / "artifacts" / "models").get(USE_CASE, "champion").version
    assert (model.kind, model.version, model.owner, model.risk_tier) == ("model", version, TIER[USE_CASE].owner, "high")
    assert [c.name for c in model.inputs] == FEATURES
    channel = next(c for c in model.inputs if c.name == "channel")
    assert channel.type == "string" and channel.categories == ("phone", "store", "web")
    assert [c.name for c in model.outputs] == ["prediction", "model_version"]
    sentiment = specs["sentiment"]
    assert (sentiment.kind, sentiment.risk_tier, [c.name for c in sentiment.inputs]) == ("function", "low", ["text"])
    with pytest.raises(ServiceNotFoundError, match=r"no service 'nope'.*churn_demo.*sentiment"):
        catalogue.spec("nope")


def test_the_sentiment_service_scores_with_the_dbt_projects_lexicon():
    scores = sentiment_scores(["Thanks, great job!", "Terrible: broken and damaged. Thanks anyway", None, "Neutral words"])
    assert scores.to_dicts() == [
        {"sentiment": 1.0, "positive_terms": 2, "negative_terms": 0},
        {"sentiment": -0.5, "positive_terms": 1, "negative_terms": 3},
        {"sentiment": 0.0, "positive_terms": 0, "negative_terms": 0},
        {"sentiment": 0.0, "positive_terms": 0, "negative_terms": 0},
    ]
    positive, negative = svc.sentiment_lexicon()
    assert "thank you" in positive and "never again" in negative  # dbt_project.yml's vars, not a copy


def test_python_calls_follow_the_policy_and_are_recorded_as_usage_without_values(catalogue, fresh, tmp_path):
    rows = fresh.drop("churned")
    result = catalogue.call(USE_CASE, rows, caller="retention-team")
    np.testing.assert_allclose(result.outputs["prediction"].to_numpy(),
                               expected(ScoringService(catalogue.scoring.registry.root), fresh), atol=1e-12)
    with pytest.raises(CallerNotAllowedError, match="caller 'marketing' may not call churn_demo .*risk tier high"):
        catalogue.call(USE_CASE, rows, caller="marketing")
    secret = "Terrible service from Zelda Quux"
    assert catalogue.call("sentiment", [{"text": secret}], caller="marketing").outputs["sentiment"].to_list() == [-1.0]
    bad = rows.head(3).with_columns(pl.lit("lots").alias("spend"))
    with pytest.raises(ScoringInputError):
        catalogue.call(USE_CASE, bad, caller="risk-team")
    with pytest.raises(ServiceNotFoundError):
        catalogue.call("nope", rows.head(1), caller="risk-team")
    records = catalogue.usage.records()
    assert [(r["caller"], r["service"], r["status"], r["rows"]) for r in records] == [
        ("retention-team", USE_CASE, "ok", 300), ("marketing", USE_CASE, "refused", 300),
        ("marketing", "sentiment", "ok", 1), ("risk-team", USE_CASE, "bad_input", 3), ("risk-team", "nope", "not_found", 1)]
    assert all(r["latency_ms"] >= 0 and r["channel"] == "python" for r in records)
    log_text = (tmp_path / "usage" / f"{svc._utcnow().date().isoformat()}.jsonl").read_text()
    assert "Zelda" not in log_text and "lots" not in log_text


def test_finished_days_of_usage_land_and_are_ingested_as_a_raw_source(tmp_path, monkeypatch):
    from factory_assets.lib.warehouse import open_warehouse
    from factory_assets.raw_material.ingest import ingest_partitions

    paths = FactoryPaths(tmp_path / "home").create()
    monkeypatch.setenv("FACTORY_HOME", str(paths.home))
    usage = svc.usage_log(paths)
    monkeypatch.setattr(svc, "_utcnow", lambda: datetime(2025, 3, 1, 23, 59, 59))
    for caller in ("finance", "logistics-planning", "anonymous"):
        usage.record(caller=caller, service="sentiment", version="lexicon-1", channel="http", rows=4, latency_ms=1.5,
                     status="ok")
    assert usage.deliver() == []  # the day is not over: nothing lands yet
    monkeypatch.setattr(svc, "_utcnow", lambda: datetime(2025, 3, 2, 0, 0, 1))
    usage.record(caller="finance", service="nope", version=None, channel="cli", rows=1, latency_ms=0.2,
                 status="not_found", error="ServiceNotFoundError")  # a call of the next day delivers the day before
    landed = sorted((paths.landing / "service_usage").iterdir())
    assert [p.name for p in landed] == ["service_usage_2025-03-01.jsonl"]
    assert [p.name for p in usage.deliver(date(2025, 3, 3))] == ["service_usage_2025-03-02.jsonl"]
    with open_warehouse(paths) as conn:
        outcomes = ingest_partitions(conn, paths, "service_usage", None, first_day=date(2025, 1, 1),
                                     today=date(2025, 3, 3))
        assert [(o.status, o.rows) for o in outcomes] == [("ingested", 3), ("ingested", 1)]
        assert conn.execute("SELECT caller, status, rows FROM raw.service_usage ORDER BY called_at").fetchall() == [
            ("finance", "ok", 4), ("logistics-planning", "ok", 4), ("anonymous", "ok", 4), ("finance", "not_found", 1)]


# ---- HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def server(catalogue):
    server = make_server(None, port=0, max_body_bytes=100_000, catalogue=catalogue)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def call(server, method: str, path: str, body: dict | bytes | None = None, caller: str | None = None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"X-Caller": caller} if caller else {})}
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_every_service_is_called_over_http_from_its_openapi_document(server, catalogue, fresh):
    status, document = call(server, "GET", "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    assert document == json.loads(json.dumps(openapi_document(catalogue, 100_000)))
    example = {USE_CASE: fresh.drop("churned", "customer_id", "split_time").head(50).to_dicts(),
               "sentiment": [{"text": "Thanks, great and quick!"}, {"text": "broken"}, {"text": None}]}
    assert set(p.rsplit("/", 1)[1] for p in document["paths"] if p.startswith("/services/")) == set(example)
    for name, rows in example.items():
        operation = document["paths"][f"/services/{name}"]["post"]
        request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
        jsonschema.validate({"rows": rows}, request_schema)  # the document describes what the service takes
        status, payload = call(server, "POST", f"/services/{name}", {"rows": rows}, caller="risk-team")
        assert status == 200, payload
        jsonschema.validate(payload, operation["responses"]["200"]["content"]["application/json"]["schema"])
        assert len(payload["outputs"]) == len(rows)
    status, payload = call(server, "POST", f"/services/{USE_CASE}", {"rows": example[USE_CASE]}, caller="risk-team")
    np.testing.assert_allclose([o["prediction"] for o in payload["outputs"]],
                               expected(catalogue.scoring, fresh.head(50)), atol=1e-12)
    status, payload = call(server, "POST", "/services/sentiment", {"rows": example["sentiment"]})
    assert [o["sentiment"] for o in payload["outputs"]] == [1.0, -1.0, 0.0]
    assert call(server, "GET", "/services")[1]["services"][0]["name"] in (USE_CASE, "sentiment")
    assert call(server, "GET", f"/services/{USE_CASE}")[1]["risk_tier"] == "high"


def test_http_refuses_callers_the_policy_does_not_allow_bad_rows_and_big_bodies(server, catalogue, fresh):
    rows = fresh.drop("churned", "split_time").head(5).to_dicts()
    status, payload = call(server, "POST", f"/services/{USE_CASE}", {"rows": rows})  # no X-Caller: anonymous
    assert status == 403 and "caller 'anonymous' may not call" in payload["error"] and "risk-team" in payload["error"]
    rows[2]["visits"] = "many"
    status, payload = call(server, "POST", f"/services/{USE_CASE}", {"rows": rows}, caller="risk-team")
    assert status == 400 and payload["errors"][0]["column"] == "visits" and payload["errors"][0]["rows"] == [2]
    status, payload = call(server, "POST", "/services/sentiment", {"rows": [{"text": 5}]})
    assert status == 400 and payload["errors"][0]["column"] == "text"
    status, payload = call(server, "POST", "/services/sentiment", b"{nope")
    assert status == 400 and "not valid JSON" in payload["errors"][0]["problem"]
    assert call(server, "POST", "/services/nope", {"rows": [{"text": "x"}]})[0] == 404
    status, payload = call(server, "POST", "/services/sentiment", {"rows": [{"text": "x" * 1000}] * 200})
    assert status == 413 and "limit" in payload["error"]
    assert call(server, "DELETE", "/services/sentiment")[0] == 404
    statuses = [r["status"] for r in catalogue.usage.records()]
    assert statuses == ["refused", "bad_input", "bad_input", "not_found"]  # unreadable bodies never reach a service


def test_concurrent_http_calls_are_all_answered_and_all_recorded(server, catalogue, fresh):
    rows = fresh.drop("churned", "split_time").head(20).to_dicts()

    def one(i: int):
        return call(server, "POST", f"/services/{USE_CASE}", {"rows": rows}, caller="risk-team")[0]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(40))) == [200] * 40
    records = catalogue.usage.records()
    assert len(records) == 40 and {r["rows"] for r in records} == {20} and {r["channel"] for r in records} == {"http"}


# ---- CLI ------------------------------------------------------------------------------------

CLI = ("import sys, argparse\n"
       "from factory_assets.distribution.service_cli import register_commands\n"
       "parser = argparse.ArgumentParser(prog='factory')\n"
       "register_commands(parser.add_subparsers(dest='command', required=True))\n"
       "args = parser.parse_args(sys.argv[1:])\n"
       "sys.exit(args.func(args))\n")


def factory(home, *args):
    env = {**os.environ, "FACTORY_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=PROJECT_ROOT, timeout=120)


def test_the_cli_lists_describes_and_calls_services_under_the_policy(home, fresh, tmp_path):
    listed = factory(home, "services", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {s["name"]: s["risk_tier"] for s in json.loads(listed.stdout)} == {USE_CASE: "high", "sentiment": "low"}
    described = factory(home, "services", "describe", "sentiment")
    assert described.returncode == 0 and "text" in described.stdout and "sentiment" in described.stdout
    texts = tmp_path / "texts.csv"
    pl.DataFrame({"text": ["great and fast", "awful"]}).write_csv(texts)
    called = factory(home, "services", "call", "sentiment", texts, "--json")
    assert called.returncode == 0, called.stderr
    assert [o["sentiment"] for o in json.loads(called.stdout)["outputs"]] == [1.0, -1.0]
    customers = tmp_path / "customers.csv"
    fresh.drop("churned").write_csv(customers)
    # churn_demo is declared nowhere: an undeclared model is high tier, which the policy keeps from "cli"
    refused = factory(home, "services", "call", USE_CASE, customers)
    assert refused.returncode == 2 and "caller 'cli' may not call" in refused.stderr and "Traceback" not in refused.stderr
    allowed = factory(home, "services", "call", USE_CASE, customers, "--caller", "risk-team", "--out", tmp_path / "o.parquet")
    assert allowed.returncode == 0, allowed.stderr
    assert pl.read_parquet(tmp_path / "o.parquet").height == 300
    usage = svc.usage_log(FactoryPaths(home)).records()
    assert [(r["caller"], r["service"], r["status"], r["channel"]) for r in usage[-3:]] == [
        ("cli", "sentiment", "ok", "cli"), ("cli", USE_CASE, "refused", "cli"), ("risk-team", USE_CASE, "ok", "cli")]
