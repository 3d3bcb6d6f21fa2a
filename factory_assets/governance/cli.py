"""`factory approve`, `factory promote` and `factory audit`: governance from the command line.

    factory approve <use_case> <version|alias> --approver NAME --decision approve|reject [--note TEXT] [--json]
    factory promote <use_case> [--json]   run the promotion gate (policy included) for the current challenger
    factory audit <use_case> [--version champion] [--out DIR]

There is no command that sets the champion directly: promotion only happens through the gate,
which refuses what the policy forbids. Exit code 2 with the reason on stderr for bad input.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from factory_assets.settings import default_paths


def register_commands(subparsers, help_of=None, formatter_class=None) -> None:
    """Add ``approve``, ``promote`` and ``audit`` to the ``factory`` command's subparsers.

    ``help_of``: one-line help by command name (the ``factory`` parser's table)."""
    help_of = help_of or {
        "approve": "record an approval or rejection of a model version (append-only)",
        "promote": "run the promotion gate of a use case (policy rules included)",
        "audit": "write the audit bundle (JSON + HTML) of a model version"}
    extra = {"formatter_class": formatter_class} if formatter_class else {}
    p = subparsers.add_parser(
        "approve", help=help_of["approve"], **extra,
        description="Record who approves (or rejects) a model version, with the time and the OS user, in an "
        "append-only log. The promotion gate counts distinct approvals per the policy's risk tier; whoever "
        "trained the version cannot approve it (four eyes).")
    p.add_argument("use_case", help="the use case, e.g. purchase_propensity (see `factory use-cases`)")
    p.add_argument("version", help="version id, or the alias challenger / champion (see `factory models USE_CASE`)")
    p.add_argument("--approver", required=True, help="who decides (recorded with the time and the OS user)")
    p.add_argument("--decision", required=True, choices=["approve", "reject"], help="approve or reject")
    p.add_argument("--note", default="", help="why (recorded with the decision)")
    p.add_argument("--json", action="store_true", help="print the recorded decision and the approval count as JSON")
    p.set_defaults(func=cmd_approve)

    p = subparsers.add_parser(
        "promote", help=help_of["promote"], **extra,
        description="Run the use case's promotion gate: the challenger becomes champion only if it beats the "
        "champion by its risk tier's margin and passes the policy (approvals included). Exit code 0 promoted, "
        "3 not promoted (the reason is printed), 2 unknown use case.")
    p.add_argument("use_case", help="the use case, e.g. purchase_propensity (see `factory use-cases`)")
    p.add_argument("--json", action="store_true", help="print the gate's decision as JSON")
    p.set_defaults(func=cmd_promote)

    p = subparsers.add_parser(
        "audit", help=help_of["audit"], **extra,
        description="Write the audit bundle of a model version: use case, model, training data and its lineage, "
        "metrics by segment, policy evaluation, approvals and promotion history, as JSON and an HTML page. "
        "Prints one JSON line naming the two files.")
    p.add_argument("use_case", help="the use case, e.g. late_delivery (see `factory use-cases`)")
    p.add_argument("--version", default="champion", help="version id or alias (default champion)")
    p.add_argument("--out", type=Path, metavar="DIR", help="folder (default .factory/artifacts/audit/<use_case>/<version>)")
    p.add_argument("--json", action="store_true", help="accepted for symmetry: the output is always one JSON line")
    p.set_defaults(func=cmd_audit)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _spec_and_version(use_case: str, version: str):
    from factory_assets.assembly.registry import ModelRegistry, RegistryKeyError
    from factory_assets.assembly.specs import load_use_cases

    specs = load_use_cases()
    if use_case not in specs:
        raise LookupError(f"unknown use case {use_case!r}; known: {', '.join(sorted(specs))}")
    registry = ModelRegistry(default_paths().artifacts / "models")
    if use_case not in registry.use_cases():
        raise LookupError(f"no models registered for {use_case} yet: train one with `factory run --layer assembly`")
    try:
        return specs[use_case], registry.get(use_case, version)
    except RegistryKeyError as exc:
        raise LookupError(str(exc)) from exc


def cmd_approve(args) -> int:
    from factory_assets.governance.facts import approvals_log

    try:
        spec, version = _spec_and_version(args.use_case, args.version)
        if args.approver.strip().casefold() == str(version.manifest.get("created_by", "")).casefold():
            return _fail(f"{args.approver} trained {version.version}: the four-eyes rule needs someone else")
        record = approvals_log(default_paths().artifacts).record(spec.name, version.version, args.approver,
                                                                 args.decision, args.note)
    except (LookupError, ValueError) as exc:
        return _fail(str(exc))
    status = approvals_log(default_paths().artifacts).status(spec.name, version.version)
    if getattr(args, "json", False):
        print(json.dumps({"recorded": record, "approvals": status.approvals, "rejected": bool(status.rejected)},
                         default=str))
        return 0
    print(f"recorded: {record['approver']} {record['decision']}s {spec.name} {version.version} at {record['at']}")
    print(f"{status.approvals} approval(s){' and a standing rejection' if status.rejected else ''}; "
          f"run `factory promote {spec.name}` to run the gate")
    return 0


def cmd_promote(args) -> int:
    import os

    from factory_assets.assembly.specs import load_use_cases

    specs = load_use_cases()
    if args.use_case not in specs:
        return _fail(f"unknown use case {args.use_case!r}; known: {', '.join(sorted(specs))}")

    import dagster as dg

    from factory_assets.keys import champion_key
    from factory_assets.settings import ensure_dagster_home

    os.environ.setdefault("DAGSTER_HOME", str(ensure_dagster_home(default_paths().create())))
    key = champion_key(args.use_case)
    defs, training_job = _location_definitions(args.use_case)
    try:
        defs.resolve_assets_def(key)
    except Exception:  # noqa: BLE001 - any lookup failure means the same thing to the user
        return _fail(f"unknown use case {args.use_case!r}")
    result = defs.resolve_job_def(training_job).execute_in_process(
        instance=dg.DagsterInstance.get(), asset_selection=[key], raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        promoted = bool(meta["promoted"].value)
        if getattr(args, "json", False):
            print(json.dumps({"use_case": args.use_case, "promoted": promoted, "champion": meta["champion"].value,
                              "reason": meta["reason"].value, "run_id": result.run_id}, default=str))
        else:
            print(meta["reason"].value)
            print(f"champion: {meta['champion'].value}")
        return 0 if promoted else 3
    return _fail(f"the gate did not run (run {result.run_id}); see the Dagster UI")


def _location_definitions(use_case: str):
    """The definitions of the code location that declares ``use_case`` and its training job: the
    core's, or a business unit's (imported from its folder, as workspace.yaml does)."""
    import importlib
    import sys

    from factory_assets.assembly.specs import declaration_files
    from factory_assets.lib.locations import workspace_locations

    for location in workspace_locations():
        if location.defs_folder.is_dir() and any(p.parent.name == use_case for p in declaration_files(location.defs_folder)):
            if location.package == "factory_assets":
                break
            if str(location.root) not in sys.path:
                sys.path.insert(0, str(location.root))
            module = importlib.import_module(f"{location.package}.definitions")
            return module.defs, f"{location.name}_training"
    from factory_assets.definitions import defs

    return defs, "assembly_training"


def cmd_audit(args) -> int:
    started = time.perf_counter()
    try:
        spec, version = _spec_and_version(args.use_case, args.version)
    except LookupError as exc:
        return _fail(str(exc))
    from factory_assets.assembly.catalogue import feature_set_products
    from factory_assets.governance.audit import build_audit_bundle, write_bundle
    from factory_assets.governance.facts import approvals_log, current_policy, model_facts, policy_path
    from factory_assets.governance.policy import evaluate_compliance
    from factory_assets.processing.dbt_manifest import MANIFEST_PATH

    artifacts = default_paths().artifacts
    approvals = approvals_log(artifacts)
    report = evaluate_compliance(current_policy(), model_facts(spec, version, approvals))
    bundle = build_audit_bundle(
        artifacts=artifacts, use_case=spec.name, version=version.version, spec=spec, policy=report.to_dict(),
        approvals=approvals.entries(spec.name, version.version), dbt_manifest=MANIFEST_PATH,
        product_lineage=feature_set_products(), policy_file=policy_path())
    out = args.out or artifacts / "audit" / spec.name / version.version
    json_path, html_path = write_bundle(bundle, out)
    print(json.dumps({"bundle": str(json_path), "page": str(html_path),
                      "seconds": round(time.perf_counter() - started, 2)}))
    return 0

