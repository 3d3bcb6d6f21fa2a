"""Governance as Dagster definitions: the compliance review, the use-case portfolio, the approval job
and the sensor that re-evaluates every use case when the policy file changes.

The two assets sit in the ``feedback`` group (they report on the models in production); their
tables live in the warehouse schema ``governance``.
"""

import json

import dagster as dg
import polars as pl

from factory_assets.assembly.specs import load_use_cases
from factory_assets.feedback.assets import BREACHES
from factory_assets.governance.portfolio import Monitoring, compliance_reports, portfolio_rows
from factory_assets.keys import COMPLIANCE_KEY, PORTFOLIO_KEY, champion_key, monitoring_key
from factory_assets.resources import FactoryStore, GovernancePolicy
from factory_assets.settings import RISK_TEAM, WAREHOUSE_WRITER_TAG

GOVERNANCE_OWNER = "team:model-risk"


def _latest_monitoring(instance: dg.DagsterInstance, use_cases) -> dict[str, Monitoring]:
    out = {}
    for name in use_cases:
        event = instance.get_latest_materialization_event(monitoring_key(name))
        if event is None or event.asset_materialization is None:
            continue
        meta = event.asset_materialization.metadata
        share = meta["drift_share"].value if "drift_share" in meta else None
        breaches = tuple(meta[BREACHES].value) if BREACHES in meta else ()
        out[name] = Monitoring(day=event.asset_materialization.partition, drift_share=share, breaches=breaches)
    return out


def _write(store: FactoryStore, table: str, rows: list[dict]) -> None:
    frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame({"use_case": []}, schema={"use_case": pl.String})
    with store.warehouse() as conn:
        conn.execute("create schema if not exists governance")
        conn.register("_rows", frame.to_arrow())
        conn.execute(f"create or replace table governance.{table} as select * from _rows")
        conn.unregister("_rows")


def build_governance_defs(use_cases_folder=None, own=None) -> dg.Definitions:
    """Governance over every use case of every location (``use_cases_folder``: only those). The
    assets depend on this location's use cases (``own``; default: all): another location's assets
    are not drawn here, but its use cases are judged and listed all the same."""
    specs = load_use_cases(use_cases_folder) if use_cases_folder else load_use_cases()
    own = sorted(specs if own is None else own)
    champions = [champion_key(n) for n in own]

    @dg.asset(
        key=COMPLIANCE_KEY, group_name="feedback", deps=champions, owners=[GOVERNANCE_OWNER],
        kinds={"duckdb", "python"}, tags={"layer": "governance"},
        check_specs=[dg.AssetCheckSpec("champions_compliant", asset=COMPLIANCE_KEY, description=(
            "Fails (flagged red in the UI) when a champion breaks the policy in force; lists the rules."))],
        description="Every champion re-evaluated against the policy in force (governance/policy.yaml): per model, "
        "which rules pass or fail. Table governance.model_compliance. Re-run automatically when the policy changes.",
    )
    def model_compliance(context: dg.AssetExecutionContext, store: FactoryStore, policy: GovernancePolicy):
        from factory_assets.governance.facts import approvals_log

        policy = policy.current()
        reports = compliance_reports(specs, store.registry(),
                                     approvals_log(store.paths.artifacts), policy,
                                     _latest_monitoring(context.instance, specs))
        rows = [{"use_case": n, "version": r_version, "rule": rule.rule, "passed": rule.passed, "detail": rule.detail,
                 "policy_version": policy.version}
                for n, report in reports.items() for r_version in [_champion_version(store, n)] for rule in report.rules]
        _write(store, "model_compliance", rows)
        failing = {n: [f"{r.rule}: {r.detail}" for r in report.failed] for n, report in reports.items() if not report.passed}
        table = "\n".join(f"| {n} | {'yes' if report.passed else 'NO'} | {', '.join(r.rule for r in report.failed) or '-'} |"
                          for n, report in reports.items())
        yield dg.MaterializeResult(metadata={
            "policy_version": policy.version,
            "champions": dg.MetadataValue.int(len(reports)),
            "non_compliant": dg.MetadataValue.int(len(failing)),
            "review": dg.MetadataValue.md("| use case | compliant | failing rules |\n|---|---|---|\n" + table),
        })
        yield dg.AssetCheckResult(check_name="champions_compliant", passed=not failing,
                                  severity=dg.AssetCheckSeverity.ERROR,
                                  metadata={"non_compliant": dg.MetadataValue.json(failing)})

    @dg.asset(
        key=PORTFOLIO_KEY, group_name="feedback", deps=[COMPLIANCE_KEY, *[monitoring_key(n) for n in own]],
        owners=[GOVERNANCE_OWNER], kinds={"duckdb", "python"}, tags={"layer": "governance"},
        description="The use-case portfolio: owner business unit, risk tier, status (challenger only, champion, "
        "non-compliant, retraining), value from the spec, last training, current champion and its health. "
        "Table governance.portfolio.",
    )
    def use_case_portfolio(context: dg.AssetExecutionContext, store: FactoryStore,
                           policy: GovernancePolicy) -> dg.MaterializeResult:
        from factory_assets.governance.facts import approvals_log

        registry = store.registry()
        monitoring = _latest_monitoring(context.instance, specs)
        reports = compliance_reports(specs, registry, approvals_log(store.paths.artifacts), policy.current(), monitoring)
        in_flight = context.instance.get_runs(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
            tags={"factory/trigger": "monitoring"}))
        retraining = {run.tags.get("factory/use_case") for run in in_flight}
        rows = portfolio_rows(specs, registry, reports, monitoring, retraining)
        _write(store, "portfolio", rows)
        lines = [f"| {r['use_case']} | {r['business_unit']} | {r['risk_tier']} | {r['status']} | "
                 f"{r['estimated_hours_saved_per_week']:g} | {r['champion_version'] or '-'} | {r['health']} |" for r in rows]
        return dg.MaterializeResult(metadata={
            "dagster/row_count": dg.MetadataValue.int(len(rows)),
            "portfolio": dg.MetadataValue.md("| use case | business unit | tier | status | hours saved / week | "
                                             "champion | health |\n|---|---|---|---|---|---|---|\n" + "\n".join(lines)),
            "statuses": dg.MetadataValue.json({r["use_case"]: r["status"] for r in rows}),
        })

    review_job = dg.define_asset_job(
        "policy_review", selection=dg.AssetSelection.assets(COMPLIANCE_KEY, PORTFOLIO_KEY), owners=[RISK_TEAM],
        description="Re-evaluates every champion against the policy in force and refreshes the portfolio.",
        tags={WAREHOUSE_WRITER_TAG: "true"},
    )

    @dg.sensor(name="policy_change", job=review_job, minimum_interval_seconds=60, owners=[RISK_TEAM],
               metadata={"layer": "governance", "watches": "governance/policy.yaml"},
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Runs policy_review whenever the policy file's content changes (one run per version of the file).")
    def policy_change(context: dg.SensorEvaluationContext):
        from factory_assets.governance.facts import policy_path
        from factory_assets.governance.policy import policy_version_hash

        digest = policy_version_hash(policy_path())
        if context.cursor == digest:
            return dg.SkipReason("policy unchanged")
        context.update_cursor(digest)
        return dg.RunRequest(run_key=f"policy:{digest}", tags={"factory/policy_hash": digest})

    @dg.op(config_schema={"use_case": str, "version": str, "approver": str, "decision": str,
                          "note": dg.Field(str, default_value=""), "signed_at": str, "signature": str},
           description="Records a decision signed offline by a declared approver (`factory approve ... --sign-only` "
           "prints this config); an unsigned, wrongly signed or self-approved decision is refused.")
    def record_approval_op(context: dg.OpExecutionContext, store: FactoryStore) -> None:
        from factory_assets.assembly.registry import RegistryIntegrityError, RegistryKeyError
        from factory_assets.governance.facts import approvals_log, current_approvers, signed_content

        c = context.op_config
        spec = specs.get(c["use_case"])
        if spec is None:
            raise dg.Failure(f"unknown use case {c['use_case']!r}; known: {', '.join(sorted(specs))}")
        try:
            version = store.registry().verify(spec.name, c["version"])
            approvers = current_approvers()
            declared = approvers.get(c["approver"])
            if declared is not None and approvers.is_trainer(declared, version.trained_by):
                raise ValueError(f"{declared.name} trained {version.version} (trained by {version.trained_by}): "
                                 "the four-eyes rule needs someone else")
            record = approvals_log(store.paths.artifacts).record(
                spec.name, version.version, c["approver"], c["decision"], c["note"],
                content_sha256=signed_content(version), at=c["signed_at"], signature=c["signature"],
                approvers=approvers, tier=spec.risk_tier)
        except (RegistryKeyError, RegistryIntegrityError, ValueError) as exc:
            raise dg.Failure(str(exc)) from None
        context.log.info(json.dumps(record))

    @dg.job(name="record_approval", owners=[RISK_TEAM], description="Record a signed approval or rejection: paste "
            "the run config printed by `factory approve USE_CASE VERSION --approver NAME --key KEY --decision approve "
            "--sign-only` (use_case, version, approver, decision, note, signed_at, signature). Then run the gate.")
    def record_approval():
        record_approval_op()

    return dg.Definitions(assets=[model_compliance, use_case_portfolio], jobs=[review_job, record_approval],
                          sensors=[policy_change])


def _champion_version(store: FactoryStore, use_case: str) -> str:
    return store.registry().aliases(use_case).get("champion", "")
