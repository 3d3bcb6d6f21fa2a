"""`factory approve`, `factory promote`, `factory audit` and `factory keygen`: governance from the command line.

    factory approve <use_case> <version|alias> --approver NAME --key PRIVATE_KEY --decision approve|reject
                    [--note TEXT] [--sign-only] [--json]
    factory promote <use_case> [--json]   run the promotion gate (policy included) for the current challenger
    factory audit <use_case> [--version champion] [--out DIR]
    factory keygen --approver NAME [--out DIR] [--json]

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
    """Add ``approve``, ``promote``, ``audit`` and ``keygen`` to the ``factory`` command's subparsers.

    ``help_of``: one-line help by command name (the ``factory`` parser's table)."""
    help_of = {
        "approve": "record a signed approval or rejection of a model version (append-only)",
        "promote": "run the promotion gate of a use case (policy rules included)",
        "audit": "write the audit bundle (JSON + HTML) of a model version",
        "keygen": "create an approver's Ed25519 key pair and print the public key to declare",
        **(help_of or {})}
    extra = {"formatter_class": formatter_class} if formatter_class else {}
    p = subparsers.add_parser(
        "approve", help=help_of["approve"], **extra,
        description="Sign a decision on a model version with your private key and append it to the use case's "
        "hash-chained approvals log. It counts only if you are declared in governance/approvers.yaml "
        "(FACTORY_APPROVERS_FILE) for the use case's tier, with this key, and did not train the version; one key "
        "counts once. The promotion gate counts the signed approvals per the policy's risk tier.")
    p.add_argument("use_case", help="the use case, e.g. purchase_propensity (see `factory use-cases`)")
    p.add_argument("version", help="version id, or the alias challenger / champion (see `factory models USE_CASE`)")
    p.add_argument("--approver", required=True, help="your name as declared in governance/approvers.yaml")
    p.add_argument("--key", required=True, type=Path, metavar="PRIVATE_KEY",
                   help="your Ed25519 private key (`factory keygen` or `ssh-keygen -t ed25519`; an encrypted key "
                   "reads its passphrase from FACTORY_KEY_PASSPHRASE or a prompt)")
    p.add_argument("--decision", required=True, choices=["approve", "reject"], help="approve or reject")
    p.add_argument("--note", default="", help="why (recorded with the decision)")
    p.add_argument("--sign-only", action="store_true",
                   help="record nothing: print the run config of the record_approval job (to launch it in the UI)")
    p.add_argument("--json", action="store_true", help="print the recorded decision and the approval count as JSON")
    p.set_defaults(func=cmd_approve)

    p = subparsers.add_parser(
        "promote", help=help_of["promote"], **extra,
        description="Run the use case's promotion gate: the challenger becomes champion only if it beats the "
        "champion by its risk tier's margin and passes the policy (approvals included). Exit code 0 promoted, "
        "3 not promoted (the reason is printed), 2 unknown use case or a model whose files changed.")
    p.add_argument("use_case", help="the use case, e.g. purchase_propensity (see `factory use-cases`)")
    p.add_argument("--json", action="store_true", help="print the gate's decision as JSON")
    p.set_defaults(func=cmd_promote)

    p = subparsers.add_parser(
        "audit", help=help_of["audit"], **extra,
        description="Write the audit bundle of a model version: use case, model, training data and its lineage, "
        "metrics by segment, policy evaluation, approvals (each with whether it counts) and promotion history, as "
        "JSON and an HTML page. Prints one JSON line naming the two files; a tampered approvals log or model "
        "is reported on stderr and in the bundle. The training set is rebuilt from the lake as it was at the "
        "snapshot the version recorded (time travel) and its hash compared with the recorded one.")
    p.add_argument("use_case", help="the use case, e.g. late_delivery (see `factory use-cases`)")
    p.add_argument("--version", default="champion", help="version id or alias (default champion)")
    p.add_argument("--out", type=Path, metavar="DIR", help="folder (default .factory/artifacts/audit/<use_case>/<version>)")
    p.add_argument("--json", action="store_true", help="accepted for symmetry: the output is always one JSON line")
    p.set_defaults(func=cmd_audit)

    p = subparsers.add_parser(
        "keygen", help=help_of["keygen"], **extra,
        description="Create an Ed25519 key pair for an approver: the private key (PKCS#8 PEM, mode 600, encrypted "
        "when FACTORY_KEY_PASSPHRASE is set) stays with the person; paste the printed entry into "
        "governance/approvers.yaml. `ssh-keygen -t ed25519` keys work as well.")
    p.add_argument("--approver", required=True, help="the approver's name (letters, digits, '.', '_', '-')")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="folder for NAME.ed25519.pem and NAME.ed25519.pub (default ~/.ai-factory/keys)")
    p.add_argument("--json", action="store_true", help="print the paths, public key and fingerprint as JSON")
    p.set_defaults(func=cmd_keygen)


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


def _registry():
    from factory_assets.assembly.registry import ModelRegistry

    return ModelRegistry(default_paths().artifacts / "models")


def cmd_approve(args) -> int:
    from factory_assets.assembly.registry import RegistryIntegrityError
    from factory_assets.governance.approvals import fingerprint, load_private_key, now_iso, sign_approval
    from factory_assets.governance.facts import approval_status, approvals_log, current_approvers, signed_content

    try:
        spec, version = _spec_and_version(args.use_case, args.version)
        version = _registry().verify(spec.name, version.version)
        approvers = current_approvers()
        declared = approvers.get(args.approver)
        if declared is None:
            names = ", ".join(a.name for a in approvers.people) or "none"
            return _fail(f"{args.approver} is not a declared approver in {approvers.path} (declared: {names}); "
                         f"create a key with `factory keygen --approver {args.approver}` and declare it there")
        if spec.risk_tier not in declared.tiers:
            return _fail(f"{declared.name} may approve tiers {list(declared.tiers)} ({approvers.path}); "
                         f"{spec.name} is tier {spec.risk_tier}")
        if approvers.is_trainer(declared, version.trained_by):
            return _fail(f"{declared.name} trained {version.version} (trained by {version.trained_by}): the "
                         "four-eyes rule needs someone else")
        key = load_private_key(args.key)
        if fingerprint(key.public_key()) != approvers.key_id(declared):
            return _fail(f"{args.key} is not {declared.name}'s declared key: it is {fingerprint(key.public_key())}, "
                         f"{approvers.path} declares {approvers.key_id(declared)}")
        at, content = now_iso(), signed_content(version)
        signature = sign_approval(key, spec.name, version.version, content, args.decision, at, declared.name)
        if args.sign_only:
            import yaml

            config = {"use_case": spec.name, "version": version.version, "approver": declared.name,
                      "decision": args.decision, "note": args.note, "signed_at": at, "signature": signature}
            print(yaml.safe_dump({"ops": {"record_approval_op": {"config": config}}}, sort_keys=False), end="")
            return 0
        log = approvals_log(default_paths().artifacts)
        record = log.record(spec.name, version.version, declared.name, args.decision, args.note,
                            content_sha256=content, at=at, signature=signature, approvers=approvers,
                            tier=spec.risk_tier)
    except (LookupError, ValueError, RegistryIntegrityError) as exc:
        return _fail(str(exc))
    status = approval_status(spec, version, log)
    if getattr(args, "json", False):
        print(json.dumps({"recorded": record, "approvals": status.approvals, "rejected": bool(status.rejected),
                          "not_counted": list(status.discounted), "log_problem": status.tampered}, default=str))
        return 0
    print(f"recorded: {record['approver']} {record['decision']}s {spec.name} {version.version} at {record['at']} "
          f"(signed with {record['key']})")
    print(f"{status.approvals} signed approval(s){' and a standing rejection' if status.rejected else ''}; "
          f"run `factory promote {spec.name}` to run the gate")
    for note in status.discounted:
        print(f"  not counted: {note}")
    return 0


def cmd_keygen(args) -> int:
    import os

    from factory_assets.governance.approvals import (
        PASSPHRASE_ENV,
        _check_name,
        fingerprint,
        generate_key_pair,
        public_key_line,
    )

    try:
        name = _check_name("approver name", args.approver)
    except ValueError as exc:
        return _fail(str(exc))
    folder = args.out or Path.home() / ".ai-factory" / "keys"
    private, public = folder / f"{name}.ed25519.pem", folder / f"{name}.ed25519.pub"
    existing = [str(p) for p in (private, public) if p.exists()]
    if existing:
        return _fail(f"{', '.join(existing)} already exist(s): keep that key, or move it away first")
    passphrase = os.environ.get(PASSPHRASE_ENV)
    pem, public_key = generate_key_pair(passphrase.encode() if passphrase else None)
    line = public_key_line(public_key, name)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        public.write_text(line + "\n")
    except OSError as exc:
        return _fail(f"cannot write the key pair into {folder}: {exc.strerror or exc}")
    if args.json:
        print(json.dumps({"approver": name, "private_key": str(private), "public_key_file": str(public),
                          "public_key": line, "fingerprint": fingerprint(public_key),
                          "encrypted": bool(passphrase)}))
        return 0
    unencrypted = "" if passphrase else f"; not encrypted: set {PASSPHRASE_ENV} before keygen to encrypt it"
    print(f"private key: {private} (keep it to yourself{unencrypted})")
    print(f"public key:  {line}")
    print(f"fingerprint: {fingerprint(public_key)}")
    print("Declare it in governance/approvers.yaml (under `approvers:`), reviewed like the policy:")
    print(f"  - name: {name}\n    role: <role>\n    tiers: [high]\n    public_key: {line}")
    print(f"Then sign: factory approve <use_case> challenger --approver {name} --key {private} --decision approve")
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

    from factory_assets.assembly.registry import RegistryIntegrityError

    registry = _registry()
    if args.use_case in registry.use_cases():  # a changed model is refused before the gate runs
        try:
            for alias in sorted(registry.aliases(args.use_case)):
                registry.verify(args.use_case, alias)
        except RegistryIntegrityError as exc:
            return _fail(str(exc))
    os.environ.setdefault("DAGSTER_HOME", str(ensure_dagster_home(default_paths().create())))
    key = champion_key(args.use_case)
    defs, training_job = _location_definitions(args.use_case)
    try:
        defs.resolve_assets_def(key)
    except Exception:  # any lookup failure means the same thing to the user
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
    errors = [e.event_specific_data.error.message.strip() for e in result.all_events
              if e.event_type_value == "STEP_FAILURE" and e.event_specific_data.error]
    return _fail(f"the gate did not run (run {result.run_id}){': ' + errors[0] if errors else '; see the Dagster UI'}")


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

    from factory_assets.assembly.registry import RegistryIntegrityError
    from factory_assets.governance.approvals import ApproversError
    from factory_assets.governance.facts import current_approvers, signed_content

    artifacts = default_paths().artifacts
    approvals = approvals_log(artifacts)
    warnings = []
    try:
        _registry().verify(spec.name, version.version)
    except RegistryIntegrityError as exc:
        warnings.append(str(exc))
    problem = approvals.check_chain(spec.name)
    if problem:
        warnings.append(f"the approvals log is tampered: {problem}")
    try:
        entries = approvals.judge(spec.name, version.version, content_sha256=signed_content(version),
                                  approvers=current_approvers, tier=spec.risk_tier, trained_by=version.trained_by)
    except (ApproversError, ValueError) as exc:
        warnings.append(f"approvals cannot be judged: {exc}")
        entries = []
    report = evaluate_compliance(current_policy(), model_facts(spec, version, approvals))
    bundle = build_audit_bundle(
        artifacts=artifacts, use_case=spec.name, version=version.version, spec=spec, policy=report.to_dict(),
        approvals=entries, dbt_manifest=MANIFEST_PATH,
        product_lineage=feature_set_products(), policy_file=policy_path())
    rebuilt = _rebuild_training_set(spec, version)
    bundle["training_set_rebuild"] = rebuilt
    if rebuilt.get("matches") is False:
        warnings.append(f"the training set rebuilt at lake snapshot {rebuilt['lake_snapshot']} hashes to "
                        f"{rebuilt['rebuilt']}, not the recorded {rebuilt['recorded']}: the lake's history was changed")
    out = args.out or artifacts / "audit" / spec.name / version.version
    json_path, html_path = write_bundle(bundle, out)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps({"bundle": str(json_path), "page": str(html_path), "warnings": warnings,
                      "training_set": rebuilt, "seconds": round(time.perf_counter() - started, 2)}))
    return 0


def _rebuild_training_set(spec, version) -> dict:
    """The version's training set read again at its lake snapshot (time travel), hash compared."""
    from factory_assets.assembly.lifecycle import rebuild_training_set

    try:
        return rebuild_training_set(default_paths(), spec, version.manifest)
    except Exception as exc:  # snapshot expired by hand, lake unreachable: the bundle still says why
        return {"lake_snapshot": (version.manifest.get("data_versions") or {}).get("lake_snapshot"),
                "matches": None, "why": f"cannot be rebuilt: {exc}"}
