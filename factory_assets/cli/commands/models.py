"""`factory use-cases` and `factory models`: the use cases and their registered model versions."""

from __future__ import annotations

from factory_assets.cli.output import UsageError, emit_json
from factory_assets.lib.formatting import format_table


def _registry():
    from factory_assets.resources import default_store

    return default_store().registry()


def _use_cases():
    from factory_assets.assembly.specs import UseCaseSpecError, load_use_cases

    try:
        return load_use_cases()
    except UseCaseSpecError as exc:
        raise UsageError(f"{exc}; fix that declaration (README: Onboard your own data)") from None


def _aliases(registry, use_case: str) -> dict[str, str]:
    return registry.aliases(use_case) if use_case in registry.use_cases() else {}


def use_case_rows(specs, registry) -> list[dict]:
    """One row per use case: its spec and what the registry holds for it."""
    rows = []
    for name, spec in specs.items():
        aliases = _aliases(registry, name)
        champion = registry.get(name, aliases["champion"]) if "champion" in aliases else None
        value = champion.metrics.get(spec.metric) if champion else None
        rows.append({"name": name, "template": spec.template, "risk_tier": spec.risk_tier,
                     "business_unit": spec.business_unit, "owner": spec.owner, "metric": spec.metric,
                     "champion": aliases.get("champion"), "champion_metric": value,
                     "challenger": aliases.get("challenger"), "description": spec.description.strip()})
    return rows


def cmd_use_cases(args) -> int:
    rows = use_case_rows(_use_cases(), _registry())
    if args.json:
        emit_json(rows)
        return 0
    table = [[r["name"], r["template"], r["risk_tier"], r["business_unit"], r["owner"], r["champion"],
              f"{r['metric']} {r['champion_metric']:.3f}" if r["champion_metric"] is not None else None,
              r["challenger"]] for r in rows]
    print(format_table(["USE CASE", "TEMPLATE", "RISK", "BUSINESS UNIT", "OWNER", "CHAMPION", "METRIC", "CHALLENGER"],
                       table))
    if not any(r["champion"] or r["challenger"] for r in rows):
        print("\nNo models yet: train them with `factory run --layer assembly`.")
    return 0


def model_rows(registry, use_case: str) -> list[dict]:
    """The registered versions of a use case, newest first, with their aliases."""
    if use_case not in registry.use_cases():
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(_aliases(registry, use_case).items()):
        by_version.setdefault(version, []).append(alias)
    return [{"version": v.version, "created_at": v.created_at, "created_by": v.manifest.get("created_by"),
             "engine": v.engine, "metrics": v.metrics, "baseline_metrics": v.baseline_metrics,
             "aliases": by_version.get(v.version, [])} for v in registry.list_versions(use_case)]


def cmd_models(args) -> int:
    specs = _use_cases()
    registry = _registry()
    known = sorted(set(specs) | set(registry.use_cases()))
    if args.use_case not in known:
        raise UsageError(f"unknown use case {args.use_case!r}; known: {', '.join(known)} (see `factory use-cases`)")
    rows = model_rows(registry, args.use_case)
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        print(f"No models registered for {args.use_case} yet: train one with `factory run --layer assembly`.")
        return 0
    metric = specs[args.use_case].metric if args.use_case in specs else next(iter(rows[0]["metrics"]), None)
    table = []
    for r in rows:
        value, base = r["metrics"].get(metric), r["baseline_metrics"].get(metric)
        others = ", ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items() if k != metric)
        table.append([r["version"], r["created_at"][:16].replace("T", " "), r["engine"],
                      f"{value:.3f}" if value is not None else None, f"{base:.3f}" if base is not None else None,
                      others or None, ", ".join(r["aliases"]) or None])
    print(format_table(["VERSION", "CREATED (UTC)", "ENGINE", (metric or "metric").upper(), "BASELINE",
                        "OTHER METRICS", "ALIASES"], table))
    return 0
