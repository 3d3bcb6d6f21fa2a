"""Audit bundle: built from a real (tiny) registry, valid against its schema, self-contained on disk."""

from __future__ import annotations

import copy
import hashlib
import html
import json
import shutil
from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from factory_assets.assembly.registry import ModelRegistry, UnknownUseCaseError, UnknownVersionError
from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.templates import fit_template
from factory_assets.assembly.training import improvement
from factory_assets.governance.audit import (
    SCHEMA_PATH,
    AuditBundleError,
    build_audit_bundle,
    render_html,
    validate_bundle,
    write_bundle,
)
from factory_assets.lib.contracts import product_contract

UC = "churn_demo"
SPEC = UseCaseSpec(
    name=UC, description='Who leaves <script>alert("x")</script> & why', template="binary_classification",
    training_set="factory_assets.assembly.training_sets:ORDER_LINES", target="y", label_delay_days=7, feature_sets=("customer_activity", "regional_conditions"),
    entity="customer_key", time_column="t", horizon_days=30, metric="auc", risk_tier="high",
    business_unit="marketing", owner="team:marketing-analytics", engine="lightgbm",
)
SEGMENTS = {"region": {"north": {"rows": 120, "auc": 0.8}, "south": {"rows": 95, "auc": 0.71}},
            "channel": {"web": {"rows": 150, "auc": 0.77}}}
REASONS = ["trained by run r1", 'first model: auc 0.8 > baseline 0.5 <b>&"ok"</b>', "trained by run r2",
           "promoted: challenger auc=0.81 vs champion auc=0.80: +1.25% >= margin 1.00%"]
LINEAGE = {"customer_activity": ["fct_order_lines", "int_tickets__scored"]}
APPROVALS = [{"use_case": UC, "version": "v1", "decision": "approve", "approver": "Ana Risk",
              "note": "segments <ok> & fair", "at": "2026-01-12T09:00:00+00:00", "recorded_by": "ana"}]
NOW = datetime(2026, 1, 13, 8, 0, tzinfo=timezone.utc)


def _frame() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 600
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    region = rng.choice(["north", "south"], size=n)
    y = (x1 - 0.5 * x2 + rng.normal(size=n) > 0).astype(np.int8)
    days = [date(2025, 11, 1) + timedelta(days=int(i) // 10) for i in range(n)]
    return pl.DataFrame({"t": days, "x1": x1, "x2": x2, "region": region, "y": y})


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    """A FACTORY_HOME/artifacts with two registered versions, alias history, reports and a dbt manifest."""
    root = tmp_path_factory.mktemp("audit")
    artifacts = root / "artifacts"
    registry = ModelRegistry(artifacts / "models")
    frame = _frame()
    versions = []
    for run, extra_params in (("r1", {}), ("r2", {"num_leaves": 7})):
        result = fit_template("binary_classification", frame, target="y", feature_columns=["x1", "x2", "region"],
                              time_column="t", engine="lightgbm", device="cpu",
                              params={"num_threads": 1, **extra_params}, metric="auc")
        extra = {"test_window": list(result.test_window), "training_as_of": "2026-01-01", "rows": result.rows,
                 "baseline": result.baseline_name, "template": "binary_classification",
                 "reference": {"file": "reference.parquet", "rows": 10}}
        if run == "r1":
            extra["segment_metrics"] = SEGMENTS
        versions.append(registry.register(
            UC, result.model, metrics={**result.metrics, "pr_auc": float("nan")},
            baseline_metrics=result.baseline_metrics,
            feature_contracts={"customer_activity": "1.0.0", "regional_conditions": "1.1.0"},
            data_versions={"training_set": f"data-{run}"}, code_version=f"abc{run}", created_by="tester",
            extra=extra,
        ))
    v1, v2 = (v.version for v in versions)
    registry.set_alias(UC, "challenger", v1, REASONS[0], actor="dagster")
    registry.set_alias(UC, "champion", v1, REASONS[1], actor="gate")
    registry.set_alias(UC, "challenger", v2, REASONS[2], actor="dagster")
    registry.set_alias(UC, "champion", v2, REASONS[3], actor="gate")

    reports = artifacts / "reports" / UC
    for day, names in {"2026-01-10": ["data_drift", "prediction_drift", "quality"], "2026-01-11": ["data_drift"]}.items():
        (reports / day).mkdir(parents=True)
        for name in names:
            (reports / day / f"{name}.html").write_text(f"<html><body>{name} of {day}</body></html>")
    (reports / "notes").mkdir()  # not a day: ignored
    (reports / "notes" / "x.html").write_text("ignored")

    dbt_manifest = root / "dbt" / "manifest.json"
    dbt_manifest.parent.mkdir()
    dbt_manifest.write_text('{"metadata": {"dbt_version": "1.11.0"}}')
    policy_file = root / "policy.yaml"
    policy_file.write_text('version: "9.1.0"\ntiers: {}\n')
    return {"root": root, "artifacts": artifacts, "registry": registry, "v1": v1, "v2": v2,
            "dbt": dbt_manifest, "policy_file": policy_file}


def _build(factory, version="v2", artifacts=None, **kw):
    args = dict(artifacts=artifacts or factory["artifacts"], use_case=UC, version=factory.get(version, version),
                spec=SPEC, policy={"passed": True, "rules": {"min_lift": "ok"}}, policy_file=factory["policy_file"],
                approvals=APPROVALS, dbt_manifest=factory["dbt"], product_lineage=LINEAGE, now=NOW)
    return build_audit_bundle(**{**args, **kw})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if "src" in attrs:
            self.srcs.append(attrs["src"])


def test_bundle_validates_and_carries_the_manifest(factory):
    bundle = _build(factory, "v1")
    validate_bundle(bundle)
    manifest = factory["registry"].get(UC, factory["v1"]).manifest
    extra = manifest["extra"]

    assert bundle["generated_at"] == "2026-01-13T08:00:00+00:00"
    assert bundle["use_case"] == {"name": UC, "description": SPEC.description, "risk_tier": "high",
                                  "business_unit": "marketing", "owner": "team:marketing-analytics",
                                  "template": "binary_classification", "metric": "auc", "uses": []}
    model = bundle["model"]
    for key in ("version", "engine", "task", "created_at", "created_by", "code_version", "params", "best_iteration",
                "device", "model_sha256", "feature_names"):
        assert model[key] == manifest[key], key
    assert model["params"]["num_threads"] == 1
    assert model["manifest_sha256"] == _sha(factory["registry"].get(UC, factory["v1"]).path / "manifest.json")
    assert model["training_as_of"] == "2026-01-01"
    assert model["test_window"] == {"start": extra["test_window"][0], "end": extra["test_window"][1]}
    assert model["content_sha256"] == manifest["content_sha256"] and model["integrity"]["ok"] is True

    feature_sets = {f["name"]: f for f in bundle["inputs"]["feature_sets"]}
    assert {n: f["contract_version"] for n, f in feature_sets.items()} == manifest["feature_contracts"]
    fct = product_contract("fct_order_lines")
    assert feature_sets["customer_activity"]["products"] == [
        {"name": "fct_order_lines", "contract_version": fct.version, "contract_checksum": fct.checksum},
        {"name": "int_tickets__scored", "contract_version": None, "contract_checksum": None},  # not a product
    ]
    assert feature_sets["regional_conditions"]["products"] is None  # lineage not supplied for it
    training = bundle["inputs"]["training_data"]
    assert training["data_versions"] == {"training_set": "data-r1"}
    assert training["rows"] == extra["rows"] and training["test_window"] == model["test_window"]

    assert bundle["dbt"] == {"manifest_path": str(factory["dbt"]), "manifest_sha256": _sha(factory["dbt"])}

    metrics = bundle["metrics"]
    assert metrics["model"]["auc"] == manifest["metrics"]["auc"]
    assert metrics["model"]["pr_auc"] is None  # NaN in the manifest -> null
    assert metrics["baseline"] == manifest["baseline_metrics"]
    assert metrics["baseline_name"] == "prior rate" and metrics["primary"] == "auc"
    assert metrics["champion_at_registration"] is None
    assert metrics["lift_over_baseline"]["auc"] == pytest.approx(
        improvement("auc", manifest["metrics"]["auc"], manifest["baseline_metrics"]["auc"]))
    assert metrics["lift_over_baseline"]["log_loss"] == pytest.approx(
        improvement("log_loss", manifest["metrics"]["log_loss"], manifest["baseline_metrics"]["log_loss"]))
    assert bundle["segment_metrics"] == SEGMENTS

    days = bundle["monitoring"]["days"]
    assert [d["day"] for d in days] == ["2026-01-10", "2026-01-11"]
    assert [r["name"] for r in days[0]["reports"]] == ["data_drift", "prediction_drift", "quality"]
    assert days[0]["reports"][2]["path"] == "reports/2026-01-10/quality.html"
    assert bundle["monitoring"]["reference"] == extra["reference"]

    assert bundle["approvals"] == APPROVALS
    assert bundle["policy"] == {"version": "9.1.0", "file": str(factory["policy_file"]),
                                "file_sha256": _sha(factory["policy_file"]),
                                "evaluation": {"passed": True, "rules": {"min_lift": "ok"}}}

    history = bundle["promotion_history"]
    assert [r["reason"] for r in history["records"]] == REASONS
    assert [r["alias"] for r in history["records"]] == ["challenger", "champion", "challenger", "champion"]
    assert [r["involves_this_version"] for r in history["records"]] == [True] * 4  # v1 set, then replaced
    assert history["records"][3]["previous_version"] == factory["v1"]
    assert history["currently"] == {"champion": factory["v2"], "challenger": factory["v2"]}
    assert history["is_champion"] is False


def test_alias_resolves_and_champion_flag(factory):
    bundle = _build(factory, "champion", product_lineage=None, policy=None, policy_file=None, dbt_manifest=None,
                    approvals=None)
    validate_bundle(bundle)
    assert bundle["model"]["version"] == factory["v2"]
    assert bundle["promotion_history"]["is_champion"] is True
    assert [r["involves_this_version"] for r in bundle["promotion_history"]["records"]] == [False, False, True, True]
    assert bundle["segment_metrics"] == {}  # v2 recorded none
    assert all(f["products"] is None for f in bundle["inputs"]["feature_sets"])
    assert bundle["dbt"] == {"manifest_path": None, "manifest_sha256": None}
    assert bundle["policy"] is None and bundle["approvals"] == []


def test_policy_version_falls_back_to_the_evaluation(factory):
    bundle = _build(factory, "v1", policy={"policy_version": "1.0.0", "passed": False}, policy_file=None)
    validate_bundle(bundle)
    assert bundle["policy"] == {"version": "1.0.0", "file": None, "file_sha256": None,
                                "evaluation": {"policy_version": "1.0.0", "passed": False}}


def test_written_bundle_is_self_contained(factory, tmp_path):
    bundle = _build(factory, "v1")
    out = tmp_path / "bundle"
    json_path, html_path = write_bundle(bundle, out)
    assert (json_path, html_path) == (out / "bundle.json", out / "index.html")

    def no_nan(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    assert json.loads(json_path.read_text(), parse_constant=no_nan) == bundle
    for day in bundle["monitoring"]["days"]:
        for report in day["reports"]:
            copied = out / report["path"]
            original = factory["artifacts"] / "reports" / UC / day["day"] / copied.name
            assert _sha(copied) == report["sha256"] == _sha(original)
            assert report["bytes"] == copied.stat().st_size
    assert not list(out.rglob("*.tmp"))

    page = html_path.read_text()
    assert factory["v1"] in page and "risk tier: high" in page
    for reason in REASONS:
        assert html.escape(reason) in page
    links = _Links()
    links.feed(page)
    assert links.srcs == [] and "<script" not in page  # no scripts, no external assets
    files = [h for h in links.hrefs if not h.startswith("#")]
    assert "bundle.json" in files and len(files) == 1 + 4  # the JSON and the four reports
    for href in files:
        target = (out / href).resolve()
        assert target.is_relative_to(out.resolve()) and target.is_file(), href


def test_html_escapes_every_value(factory):
    page = render_html(_build(factory, "v1"))
    assert '<script>alert("x")</script>' not in page
    assert html.escape(SPEC.description) in page
    assert "<b>" not in page and html.escape('<b>&"ok"</b>') in page
    assert html.escape("segments <ok> & fair") in page


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda b: b["model"].pop("version"), "$.model", "'version' is a required property"),
        (lambda b: b.pop("promotion_history"), "$", "'promotion_history' is a required property"),
        (lambda b: b["metrics"]["model"].__setitem__("auc", "high"), "$.metrics.model.auc", "is not of type"),
        (lambda b: b["promotion_history"].__setitem__("is_champion", "yes"), "$.promotion_history.is_champion",
         "is not of type 'boolean'"),
        (lambda b: b["use_case"].__setitem__("risk_tier", "extreme"), "$.use_case.risk_tier", "is not one of"),
        (lambda b: b["monitoring"]["days"][0]["reports"][0].__setitem__("path", "../../etc/passwd"),
         "$.monitoring.days[0].reports[0].path", "does not match"),
        (lambda b: b["model"].__setitem__("model_sha256", "abc"), "$.model.model_sha256", "does not match"),
    ],
)
def test_broken_bundle_fails_naming_the_path(factory, mutate, path, words):
    bundle = _build(factory, "v1")
    mutate(bundle)
    with pytest.raises(AuditBundleError) as info:
        validate_bundle(bundle)
    assert any(e.startswith(f"{path}: ") and words in e for e in info.value.errors), info.value.errors
    assert path in str(info.value)


def test_every_violation_is_listed_and_nothing_is_written(factory, tmp_path):
    bundle = copy.deepcopy(_build(factory, "v1"))
    del bundle["dbt"]["manifest_sha256"]
    bundle["approvals"] = "none"
    with pytest.raises(AuditBundleError) as info:
        write_bundle(bundle, tmp_path / "out")
    assert len(info.value.errors) == 2
    assert {e.split(":")[0] for e in info.value.errors} == {"$.dbt", "$.approvals"}
    assert not (tmp_path / "out").exists()


def test_unknown_use_case_or_version_names_what_exists(factory):
    with pytest.raises(UnknownVersionError) as info:
        _build(factory, "0000000000000000")
    assert factory["v1"] in str(info.value) and factory["v2"] in str(info.value)
    with pytest.raises(UnknownUseCaseError) as info:
        build_audit_bundle(artifacts=factory["artifacts"], use_case="nope", version="champion", spec=None)
    assert UC in str(info.value)


def test_changed_report_is_refused(factory, tmp_path):
    artifacts = tmp_path / "artifacts"
    shutil.copytree(factory["artifacts"], artifacts)
    bundle = _build(factory, "v1", artifacts=artifacts)
    (artifacts / "reports" / UC / "2026-01-11" / "data_drift.html").write_text("tampered")
    with pytest.raises(AuditBundleError, match="changed after the bundle was built"):
        write_bundle(bundle, tmp_path / "out")


def test_schema_documents_every_property():
    schema = json.loads(SCHEMA_PATH.read_text())
    undocumented = []

    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if "description" not in sub:
                    undocumented.append(f"{where}.{name}")
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema, "$")
    assert undocumented == []


def test_a_version_whose_manifest_was_edited_is_audited_with_the_problem(factory, tmp_path):
    artifacts = tmp_path / "artifacts"
    shutil.copytree(factory["artifacts"], artifacts)
    path = ModelRegistry(artifacts / "models").get(UC, factory["v1"]).path / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"]["auc"] = 0.999
    path.write_text(json.dumps(manifest))
    bundle = _build(factory, "v1", artifacts=artifacts)
    validate_bundle(bundle)
    assert bundle["model"]["integrity"]["ok"] is False
    assert "edited after registration" in bundle["model"]["integrity"]["detail"] and factory["v1"] in bundle["model"]["integrity"]["detail"]
    assert "edited after registration" in render_html(bundle)
