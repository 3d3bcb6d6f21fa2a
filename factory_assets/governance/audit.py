"""Audit bundle of one model version: everything an auditor asks for, in one self-contained folder.

``build_audit_bundle`` reads only files (the registry's manifest, aliases and promotion log, the
monitoring reports, the data contracts, the dbt manifest and the policy file) and returns a dict
that follows ``governance/audit_bundle.schema.json``. ``write_bundle`` validates it and writes::

    out_dir/bundle.json                  the bundle (strict JSON; NaN/inf become null)
    out_dir/index.html                   the same content as one readable page, no external assets
    out_dir/reports/<day>/<file>.html    copies of the drift and quality reports, hash-checked

Pure (no Dagster): the CLI and assets call these functions.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from factory_assets.lib.files import atomic_write, sha256_file as _sha256_file
from factory_assets.lib.jsonable import jsonable
from factory_assets.assembly.registry import ALIASES, ModelRegistry
from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.training import PRIMARY_METRIC, improvement
from factory_assets.lib.contracts import product_contract, product_contract_names
from factory_assets.lib.yaml_files import load_yaml

__all__ = [
    "BUNDLE_SCHEMA_VERSION",
    "SCHEMA_PATH",
    "AuditBundleError",
    "build_audit_bundle",
    "render_html",
    "validate_bundle",
    "write_bundle",
]

BUNDLE_SCHEMA_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "governance" / "audit_bundle.schema.json"
BUNDLE_JSON = "bundle.json"
BUNDLE_HTML = "index.html"
REPORTS_DIR = "reports"

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_REPORT_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.html$")


class AuditBundleError(ValueError):
    """A bundle breaks its schema (every violation listed with its JSON path) or cannot be written."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = list(errors or [])


# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------




def _window(value: Any) -> dict[str, str] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return {"start": str(value[0]), "end": str(value[1])}
    return None


def _use_case_section(use_case: str, spec: UseCaseSpec | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    if spec is not None and spec.name != use_case:
        raise ValueError(f"spec is for use case {spec.name!r}, not {use_case!r}")
    return {
        "name": use_case,
        "description": spec.description.strip() if spec else None,
        "risk_tier": spec.risk_tier if spec else None,
        "business_unit": spec.business_unit if spec else None,
        "owner": spec.owner if spec else None,
        "template": spec.template if spec else extra.get("template"),
        "metric": spec.metric if spec else None,
        "uses": list(spec.uses) if spec else None,
    }


def _inputs_section(
    use_case: str, manifest: Mapping[str, Any], extra: Mapping[str, Any], product_lineage: Mapping[str, list[str]] | None
) -> dict[str, Any]:
    contracted = set(product_contract_names())

    def product(name: str) -> dict[str, Any]:
        if name not in contracted:  # e.g. an intermediate relation: read, but not a data product
            return {"name": name, "contract_version": None, "contract_checksum": None}
        contract = product_contract(name)
        return {"name": name, "contract_version": contract.version, "contract_checksum": contract.checksum}

    feature_sets = []
    for name, version in (manifest.get("feature_contracts") or {}).items():
        products = None if product_lineage is None or name not in product_lineage else [
            product(p) for p in product_lineage[name]]
        feature_sets.append({"name": name, "contract_version": None if version is None else str(version),
                             "products": products})
    return {
        "feature_sets": feature_sets,
        "training_data": {
            "data_versions": dict(manifest.get("data_versions") or {}),
            "training_as_of": extra.get("training_as_of"),
            "test_window": _window(extra.get("test_window")),
            "rows": extra.get("rows"),
            "path": f"training_sets/{use_case}.parquet",
        },
    }


def _metrics_section(manifest: Mapping[str, Any], extra: Mapping[str, Any], spec: UseCaseSpec | None) -> dict[str, Any]:
    model = dict(manifest.get("metrics") or {})
    baseline = dict(manifest.get("baseline_metrics") or {})
    lift = {m: improvement(m, v, baseline[m]) for m, v in model.items() if m in baseline and m in PRIMARY_METRIC}
    return {
        "primary": spec.metric if spec else None,
        "model": model,
        "baseline": baseline,
        "baseline_name": extra.get("baseline"),
        "champion_at_registration": extra.get("champion_at_registration"),
        "lift_over_baseline": lift,
    }


def _monitoring_section(artifacts: Path, use_case: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Every report file under artifacts/reports/<use_case>/<day>/, hashed (copied by write_bundle)."""
    source = artifacts / "reports" / use_case
    days = []
    folders = sorted(p for p in source.iterdir() if p.is_dir() and _DAY.match(p.name)) if source.is_dir() else []
    for folder in folders:
        reports = [
            {"name": f.stem, "path": f"{REPORTS_DIR}/{folder.name}/{f.name}", "sha256": _sha256_file(f),
             "bytes": f.stat().st_size}
            for f in sorted(folder.iterdir()) if f.is_file() and _REPORT_FILE.match(f.name)
        ]
        if reports:
            days.append({"day": folder.name, "reports": reports})
    return {"source_dir": str(source), "reference": extra.get("reference"), "days": days}


def _policy_section(policy: Mapping[str, Any] | None, policy_file: Path | None) -> dict[str, Any] | None:
    if policy is None and policy_file is None:
        return None
    version, sha = None, None
    if policy_file is not None:
        policy_file = Path(policy_file)
        if not policy_file.is_file():
            raise FileNotFoundError(f"policy file {policy_file} not found")
        data = policy_file.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        doc = load_yaml(data)
        if isinstance(doc, Mapping) and doc.get("version") is not None:
            version = str(doc["version"])
    if version is None and policy:  # PolicyReport.to_dict() carries policy_version
        found = policy.get("policy_version", policy.get("version"))
        version = None if found is None else str(found)
    return {"version": version, "file": None if policy_file is None else str(policy_file), "file_sha256": sha,
            "evaluation": None if policy is None else dict(policy)}


def _promotion_section(registry: ModelRegistry, use_case: str, version: str) -> dict[str, Any]:
    records = [
        {**r, "involves_this_version": version in (r.get("version"), r.get("previous_version"))}
        for r in registry.history(use_case)
    ]
    aliases = registry.aliases(use_case)
    currently = {alias: aliases.get(alias) for alias in ALIASES}
    return {"records": records, "currently": currently, "is_champion": currently["champion"] == version}


def _integrity(registry: ModelRegistry, use_case: str, version: str) -> dict[str, Any]:
    """Whether the version's files still match what was registered (the registry's ``verify``)."""
    from factory_assets.assembly.registry import RegistryIntegrityError

    try:
        registry.verify(use_case, version)
    except RegistryIntegrityError as exc:
        return {"ok": False, "detail": str(exc)}
    return {"ok": True, "detail": "manifest content hash and every file's sha256 match the registration"}


def build_audit_bundle(
    *,
    artifacts: Path,
    use_case: str,
    version: str,
    spec: UseCaseSpec | None,
    policy: dict | None = None,
    approvals: list[dict] | None = None,
    dbt_manifest: Path | None = None,
    product_lineage: dict[str, list[str]] | None = None,
    policy_file: Path | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The audit bundle of ``use_case``/``version`` (a version id or an alias) as a JSON-ready dict.

    ``artifacts``: FACTORY_HOME/artifacts (registry in ``models/``, reports in ``reports/``).
    ``policy``: the policy module's evaluation of this version; ``policy_file``: the policy file it
    used (its ``version`` and sha256 are recorded). ``product_lineage``: feature set -> data products
    it reads (without it, products are null: unknown). ``approvals``: the approval log's entries for
    this version (``ApprovalLog.judge``: each with ``counted`` and ``why_not``). Unknown use case or version raises the
    registry's ``UnknownUseCaseError`` / ``UnknownVersionError``, which name what exists.
    """
    artifacts = Path(artifacts)
    registry = ModelRegistry(artifacts / "models")
    mv = registry.get(use_case, version)
    manifest = mv.manifest
    extra = manifest.get("extra") or {}
    if dbt_manifest is not None and not Path(dbt_manifest).is_file():
        raise FileNotFoundError(f"dbt manifest {dbt_manifest} not found (run `dbt parse` to produce it)")

    bundle = {
        "bundle_schema_version": BUNDLE_SCHEMA_VERSION,
        "generated_at": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "use_case": _use_case_section(use_case, spec, extra),
        "model": {
            "version": mv.version,
            "engine": manifest["engine"],
            "task": manifest["task"],
            "created_at": manifest["created_at"],
            "created_by": manifest["created_by"],
            "code_version": manifest.get("code_version"),
            "params": dict(manifest.get("params") or {}),
            "best_iteration": int(manifest.get("best_iteration") or 0),
            "device": manifest.get("device"),
            "model_sha256": manifest["model_sha256"],
            "manifest_sha256": _sha256_file(mv.path / "manifest.json"),
            "content_sha256": manifest.get("content_sha256"),
            "integrity": _integrity(registry, use_case, mv.version),
            "feature_names": list(manifest["feature_names"]),
            "training_as_of": extra.get("training_as_of"),
            "test_window": _window(extra.get("test_window")),
        },
        "inputs": _inputs_section(use_case, manifest, extra, product_lineage),
        "dbt": {
            "manifest_path": None if dbt_manifest is None else str(dbt_manifest),
            "manifest_sha256": None if dbt_manifest is None else _sha256_file(Path(dbt_manifest)),
        },
        "metrics": _metrics_section(manifest, extra, spec),
        "segment_metrics": dict(extra.get("segment_metrics") or {}),
        "monitoring": _monitoring_section(artifacts, use_case, extra),
        "approvals": list(approvals or []),
        "policy": _policy_section(policy, policy_file),
        "promotion_history": _promotion_section(registry, use_case, mv.version),
    }
    return jsonable(bundle)


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_bundle(bundle: dict) -> None:
    """Raise ``AuditBundleError`` listing every schema violation as ``<json path>: <message>``."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(bundle), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        lines = [f"{e.json_path}: {e.message}" for e in errors]
        raise AuditBundleError(
            f"audit bundle breaks {SCHEMA_PATH.name} ({len(lines)} problem(s)):\n  " + "\n  ".join(lines), lines
        )


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;color:#1d2430;
line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:2px solid #d8dee8;padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1rem;margin-bottom:.3rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.92rem}th,td{border:1px solid #d8dee8;padding:.3rem .6rem;
text-align:left;vertical-align:top}th{background:#f2f5f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.85rem;word-break:break-all}.muted{color:#667085}.tier{display:inline-block;padding:.1rem .6rem;
border-radius:1rem;font-weight:600;background:#e8eefc}.tier-high{background:#fde2e1}.tier-medium{background:#fff1d6}
.tier-low{background:#dcf5e3}tr.this{background:#fffbe6}nav a{margin-right:.8rem}
"""

_SECTIONS = [
    ("use-case", "Use case"), ("model", "Model"), ("inputs", "Inputs"), ("dbt", "dbt project"),
    ("metrics", "Metrics"), ("segments", "Segment metrics"), ("monitoring", "Monitoring reports"),
    ("approvals", "Approvals"), ("policy", "Policy"), ("promotions", "Promotion history"),
]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """One value as escaped HTML: numbers compact, structures as JSON, missing as a dash."""
    if value is None:
        return '<span class="muted">&mdash;</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _e(f"{value:.6g}")
    if isinstance(value, dict) and set(value) == {"start", "end"}:  # a time window
        return _e(f"{value['start']} .. {value['end']}")
    if isinstance(value, (dict, list)):
        return f"<code>{_e(json.dumps(value, ensure_ascii=False, sort_keys=True))}</code>"
    return _e(value)


def _table(headers: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """``rows`` hold already-escaped HTML cells."""
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row, cls in zip(rows, row_classes or [""] * len(rows)):
        attr = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv(mapping: Mapping[str, Any]) -> str:
    return _table(["field", "value"], [[_e(k), _fmt(v)] for k, v in mapping.items()])


def _pct(value: Any) -> str:
    return _fmt(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else _e(f"{value:+.2%}")


def _product_cell(product: Mapping[str, Any]) -> str:
    if product["contract_version"] is None:
        return f'{_e(product["name"])} <span class="muted">(not a contracted data product)</span>'
    return (f"{_e(product['name'])} &middot; contract {_e(product['contract_version'])} "
            f"&middot; <code>{_fmt(product['contract_checksum'])}</code>")


def _section(anchor: str, body: str) -> str:
    title = dict(_SECTIONS)[anchor]
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def render_html(bundle: dict) -> str:
    """One self-contained, readable page (inline CSS, no scripts); every value is HTML-escaped."""
    uc, model, inputs, metrics = bundle["use_case"], bundle["model"], bundle["inputs"], bundle["metrics"]
    tier = uc.get("risk_tier") or "unknown"
    parts = []

    parts.append(_section("use-case", _kv(uc)))

    model_fields = {k: v for k, v in model.items() if k not in ("params", "feature_names")}
    parts.append(_section("model", _kv(model_fields) + "<h3>Parameters</h3>" + _kv(model["params"])
                          + "<h3>Features (in model order)</h3>"
                          + _table(["#", "feature"], [[str(i), _e(f)] for i, f in enumerate(model["feature_names"], 1)])))

    fs_rows = []
    for fset in inputs["feature_sets"]:
        products = fset["products"]
        cell = ('<span class="muted">lineage not supplied</span>' if products is None else
                "<br>".join(_product_cell(p) for p in products) or "none")
        fs_rows.append([_e(fset["name"]), _fmt(fset["contract_version"]), cell])
    training = dict(inputs["training_data"])
    parts.append(_section("inputs", "<h3>Feature sets and the data products they read</h3>"
                          + _table(["feature set", "contract version", "data products (contract version, checksum)"], fs_rows)
                          + "<h3>Training data</h3>" + _kv(training)))

    parts.append(_section("dbt", _kv(bundle["dbt"])))

    names = list(dict.fromkeys([*metrics["model"], *metrics["baseline"]]))
    metric_rows = [[_e(m) + (" (primary)" if m == metrics.get("primary") else ""), _fmt(metrics["model"].get(m)),
                    _fmt(metrics["baseline"].get(m)), _pct(metrics["lift_over_baseline"].get(m))] for m in names]
    parts.append(_section("metrics", f"<p>Test window; baseline: {_fmt(metrics['baseline_name'])}.</p>"
                          + _table(["metric", "model", "baseline", "lift over baseline"], metric_rows)
                          + "<h3>Champion at registration</h3>" + _fmt(metrics["champion_at_registration"])))

    seg_html = []
    for dimension, segments in bundle["segment_metrics"].items():
        cols = list(dict.fromkeys(k for values in segments.values() for k in values))
        rows = [[_e(seg), *(_fmt(values.get(c)) for c in cols)] for seg, values in segments.items()]
        seg_html.append(f"<h3>{_e(dimension)}</h3>" + _table([dimension, *cols], rows))
    parts.append(_section("segments", "".join(seg_html) or '<p class="muted">not recorded for this version</p>'))

    mon = bundle["monitoring"]
    report_rows = [[_e(d["day"]), f'<a href="{_e(r["path"])}">{_e(r["name"])}</a>', f"<code>{_e(r['sha256'])}</code>",
                    _e(r["bytes"])] for d in mon["days"] for r in d["reports"]]
    parts.append(_section("monitoring", f"<p>Copied from <code>{_e(mon['source_dir'])}</code>. Drift reference: "
                          f"{_fmt(mon['reference'])}</p>" + _table(["day", "report", "sha256", "bytes"], report_rows)))

    approvals = bundle["approvals"]
    cols = [c for c in dict.fromkeys(k for a in approvals for k in a) if c not in ("signature", "prev")]
    parts.append(_section("approvals", _table(cols, [[_fmt(a.get(c)) for c in cols] for a in approvals])))

    policy = bundle["policy"]
    parts.append(_section("policy", '<p class="muted">no policy evaluation supplied</p>' if policy is None else
                          _kv({k: v for k, v in policy.items() if k != "evaluation"}) + "<h3>Evaluation</h3>"
                          + (_kv(policy["evaluation"]) if policy["evaluation"] else '<p class="muted">none</p>')))

    history = bundle["promotion_history"]
    records = history["records"]
    promo_rows = [[_fmt(r.get("time")), _fmt(r.get("alias")), _fmt(r.get("version")), _fmt(r.get("previous_version")),
                   _fmt(r.get("reason")), _fmt(r.get("actor"))] for r in records]
    classes = ["this" if r.get("involves_this_version") else "" for r in records]
    parts.append(_section("promotions", f"<p>Now: champion {_fmt(history['currently']['champion'])}, challenger "
                          f"{_fmt(history['currently']['challenger'])}. This version is "
                          f"{'' if history['is_champion'] else 'not '}the champion. Highlighted rows concern it.</p>"
                          + _table(["time", "alias", "version", "previous", "reason", "actor"], promo_rows, classes)))

    nav = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in _SECTIONS)
    title = f"Audit bundle: {uc['name']} {model['version']}"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p><span class=\"tier tier-{_e(tier)}\">risk tier: {_e(tier)}</span> "
        f"&middot; generated {_e(bundle['generated_at'])} &middot; schema {_e(bundle['bundle_schema_version'])} "
        f'&middot; machine-readable: <a href="{BUNDLE_JSON}">{BUNDLE_JSON}</a></p></header>'
        f"<nav>{nav}</nav>{''.join(parts)}</body></html>\n"
    )


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def write_bundle(bundle: dict, out_dir: Path) -> tuple[Path, Path]:
    """Validate, copy the reports in (checking their hashes), write bundle.json and index.html.

    Each file is written atomically; the JSON and HTML come last, so a folder with an index.html has
    every report it links to. Returns (bundle.json path, index.html path).
    """
    validate_bundle(bundle)  # also guarantees report paths stay inside out_dir (schema pattern)
    out_dir = Path(out_dir)
    source = Path(bundle["monitoring"]["source_dir"])
    for day in bundle["monitoring"]["days"]:
        for report in day["reports"]:
            original = source / day["day"] / Path(report["path"]).name
            data = original.read_bytes()
            if hashlib.sha256(data).hexdigest() != report["sha256"]:
                raise AuditBundleError(f"{original} changed after the bundle was built (sha256 differs); build it again")
            atomic_write(out_dir / report["path"], data)
    json_path, html_path = out_dir / BUNDLE_JSON, out_dir / BUNDLE_HTML
    atomic_write(json_path, (json.dumps(bundle, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode())
    atomic_write(html_path, render_html(bundle).encode())
    return json_path, html_path
