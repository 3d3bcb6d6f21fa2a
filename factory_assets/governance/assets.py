"""Governance as Dagster definitions: the compliance review, the use-case portfolio, the approval job
and the sensor that re-evaluates every use case when the policy file changes.

The two assets sit in the ``feedback`` group (they report on the models in production); their
tables live in the warehouse schema ``governance``.

Both are built on every run that includes them, whatever the state of each use case. Dagster skips
a step when an upstream step of the same run produced no output, and a monitoring asset never does
(it records its partitions as ``AssetMaterialization`` events; with no champion it records
nothing): an asset with the monitors as plain ``deps`` was skipped every night. So each is a
graph-backed asset (:func:`_after_upstream`) whose one working op waits for all its upstream steps
through a single fan-in input that also reads an always-present start op: Dagster skips a fan-in
input only when *all* its sources produced nothing, so the op runs after the monitors (and reads
their results of the night from the instance) but is never skipped by them. A failed upstream step
still abandons it, as for any Dagster step.
"""

import json
import math

import dagster as dg
import polars as pl

from factory_assets.assembly.specs import load_use_cases, use_case_paths
from factory_assets.governance.portfolio import Monitoring, compliance_reports, portfolio_rows
from factory_assets.keys import BREACHES, COMPLIANCE_KEY, PORTFOLIO_KEY, USAGE_KEY, champion_key, monitoring_key
from factory_assets.resources import FactoryStore, GovernancePolicy
from factory_assets.settings import RISK_TEAM, WAREHOUSE_WRITER_TAG

GOVERNANCE_OWNER = "team:model-risk"
NIGHTLY_JOB = "supply_chain_nightly"


#: Nights averaged for a use case's compute, and the latest days of landed service usage in the portfolio.
NIGHTS, USAGE_DAYS = 7, 30


def _nightly_step_seconds(instance: dg.DagsterInstance) -> list[dict[str, float]]:
    """Per recent successful nightly run: seconds of each step (Dagster's step statistics)."""
    from factory_assets.jobs import supply_chain_job

    runs = instance.get_runs(filters=dg.RunsFilter(job_name=supply_chain_job.name, statuses=[dg.DagsterRunStatus.SUCCESS]),
                             limit=NIGHTS)
    return [{s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(run.run_id)
             if s.start_time is not None and s.end_time is not None} for run in runs]


def _measured(instance: dg.DagsterInstance, store: FactoryStore, specs, paths_of) -> dict[str, dict]:
    """What the portfolio measures per use case (governance/value.py)."""
    from factory_assets.feedback.usage import usage_by_service
    from factory_assets.governance.value import compute_seconds_per_night, first_commit_at

    steps = _nightly_step_seconds(instance)
    with store.warehouse(read_only=True) as conn:
        usage = usage_by_service(conn, USAGE_DAYS)
    return {name: {"declared_at": first_commit_at(paths_of[name]) if name in paths_of else None,
                   "compute_s_per_night": compute_seconds_per_night(steps, name), "usage": usage.get(name, {})}
            for name in specs}


def _latest_monitoring(instance: dg.DagsterInstance, use_cases) -> dict[str, Monitoring]:
    out = {}
    for name in use_cases:
        event = instance.get_latest_materialization_event(monitoring_key(name))
        if event is None or event.asset_materialization is None:
            continue
        meta = event.asset_materialization.metadata
        share = meta["drift_share"].value if "drift_share" in meta else None
        breaches = tuple(meta[BREACHES].value) if BREACHES in meta else ()
        quality = f"quality/{use_cases[name].metric}"
        live = meta[quality].value if quality in meta else None
        out[name] = Monitoring(day=event.asset_materialization.partition, drift_share=share, breaches=breaches,
                               live_metric=live if live is None or math.isfinite(live) else None)
    return out


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _write(store: FactoryStore, table: str, rows: list[dict]) -> None:
    frame = (pl.DataFrame(rows, infer_schema_length=None) if rows
             else pl.DataFrame({"use_case": []}, schema={"use_case": pl.String}))
    from factory_assets.lib.lake import ddl, replace_table

    with store.warehouse() as conn:
        ddl(conn, "create schema if not exists governance")
        conn.register("_rows", frame.to_arrow())
        try:
            replace_table(conn, "governance", table, "select * from _rows")
        finally:
            conn.unregister("_rows")


def _after_upstream(key: dg.AssetKey, upstream: list[dg.AssetKey], compute, *, description: str,
                    check_specs: tuple[dg.AssetCheckSpec, ...] = (), kinds: tuple[str, ...] = ("duckdb", "python"),
                    ) -> dg.AssetsDefinition:
    """The asset ``key`` computed by ``compute`` (an op function yielding the ``result`` output and
    its checks' results) after every step of ``upstream`` in the same run, even those that produced
    nothing (see the module docstring). Its lineage is ``upstream``. Steps:
    ``<graph>.<name>_start`` (does nothing) and ``<graph>.<name>``."""
    graph_name = key.to_python_identifier()
    name = key.path[-1] if key.path[-1] != graph_name else f"{graph_name}_op"  # a node's name is unique in a job

    @dg.op(name=f"{name}_start", out=dg.Out(dg.Nothing),
           description=f"Starts {key.to_user_string()}: the source of its fan-in that is always produced, so the "
           "asset is built even when no upstream step produced anything.")
    def start():
        return None

    checks = {spec.get_python_identifier(): spec for spec in check_specs}
    work = dg.op(name=name, description=description, ins={"upstream": dg.In(dg.Nothing)},
                 out={"result": dg.Out(dg.Nothing), **{n: dg.Out(dagster_type=None) for n in checks}})(compute)
    inputs = {k.to_python_identifier(): k for k in upstream}

    def compose(**upstream_steps):
        outs = work(upstream=[start(), *upstream_steps.values()])
        return outs._asdict() if checks else {"result": outs}

    graph = dg.graph(name=graph_name, description=description,
                     ins={n: dg.GraphIn() for n in inputs},
                     out={"result": dg.GraphOut(), **{n: dg.GraphOut() for n in checks}})(compose)
    return dg.AssetsDefinition.from_graph(
        graph, keys_by_input_name=inputs, keys_by_output_name={"result": key}, check_specs=list(check_specs),
        group_name="feedback", descriptions_by_output_name={"result": description},
        owners_by_output_name={"result": [GOVERNANCE_OWNER]},
        tags_by_output_name={"result": {"layer": "governance", **{f"dagster/kind/{k}": "" for k in kinds}}},
    )


def build_governance_defs(use_cases_folder=None, own=None) -> dg.Definitions:
    """Governance over every use case of every location (``use_cases_folder``: only those). The
    assets depend on this location's use cases (``own``; default: all): another location's assets
    are not drawn here, but its use cases are judged and listed all the same."""
    specs = load_use_cases(use_cases_folder) if use_cases_folder else load_use_cases()
    paths_of = use_case_paths(use_cases_folder) if use_cases_folder else use_case_paths()
    own = sorted(specs if own is None else own)
    champions = [champion_key(n) for n in own]
    monitors = [monitoring_key(n) for n in own]

    def model_compliance(context: dg.OpExecutionContext, store: FactoryStore, policy: GovernancePolicy):
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
        yield dg.Output(None, output_name="result", metadata={
            "policy_version": policy.version,
            "champions": dg.MetadataValue.int(len(reports)),
            "non_compliant": dg.MetadataValue.int(len(failing)),
            "review": dg.MetadataValue.md("| use case | compliant | failing rules |\n|---|---|---|\n" + table),
        })
        yield dg.AssetCheckResult(asset_key=COMPLIANCE_KEY, check_name="champions_compliant", passed=not failing,
                                  severity=dg.AssetCheckSeverity.ERROR,
                                  metadata={"non_compliant": dg.MetadataValue.json(failing)})

    compliance = _after_upstream(
        COMPLIANCE_KEY, [*champions, *monitors], model_compliance,
        check_specs=(dg.AssetCheckSpec("champions_compliant", asset=COMPLIANCE_KEY, description=(
            "Fails (flagged red in the UI) when a champion breaks the policy in force; lists the rules.")),),
        description="Every champion re-evaluated against the policy in force (governance/policy.yaml): per model, "
        "which rules pass or fail (drift: tonight's monitoring, when it ran). Table governance.model_compliance. "
        "Re-run automatically when the policy changes; built every night, whatever the state of each use case.",
    )

    def use_case_portfolio(context: dg.OpExecutionContext, store: FactoryStore, policy: GovernancePolicy):
        from factory_assets.governance.facts import approvals_log

        registry = store.registry()
        monitoring = _latest_monitoring(context.instance, specs)
        reports = compliance_reports(specs, registry, approvals_log(store.paths.artifacts), policy.current(), monitoring)
        in_flight = context.instance.get_runs(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
            tags={"factory/trigger": "monitoring"}))
        retraining = {run.tags.get("factory/use_case") for run in in_flight}
        measured = _measured(context.instance, store, specs, paths_of)
        rows = portfolio_rows(specs, registry, reports, monitoring, retraining, measured=measured)
        _write(store, "portfolio", rows)
        lines = [f"| {r['use_case']} | {r['business_unit']} | {r['risk_tier']} | {r['status']} | "
                 f"{r['estimated_hours_saved_per_week']:g} | {_figure(r['lead_time_days'], '.1f')} | "
                 f"{_figure(r['compute_s_per_night'], '.0f')} | {_figure(r['live_lift'], '+.1%')} | "
                 f"{r['service_calls_30d']} | {r['champion_version'] or '-'} | {r['health']} |" for r in rows]
        # one number per use case and measure, so the UI plots each over the nights (the asset's Plots tab)
        plots = {f"{r['use_case']}/{measure}": dg.MetadataValue.float(float(r[measure]))
                 for r in rows for measure in ("lead_time_days", "compute_s_per_night", "live_lift", "service_calls_30d")
                 if r[measure] is not None}
        yield dg.Output(None, output_name="result", metadata={
            "dagster/row_count": dg.MetadataValue.int(len(rows)),
            "portfolio": dg.MetadataValue.md(
                "| use case | business unit | tier | status | hours saved / week (estimated) | lead time (days) | "
                "compute (s / night) | live lift over baseline | service calls (30 d) | champion | health |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(lines)),
            "statuses": dg.MetadataValue.json({r["use_case"]: r["status"] for r in rows}),
            **plots,
        })

    portfolio = _after_upstream(
        PORTFOLIO_KEY, [COMPLIANCE_KEY, *monitors, USAGE_KEY], use_case_portfolio,
        description="The use-case portfolio: owner business unit, risk tier, status (challenger only, champion, "
        "non-compliant, retraining, not trained), value estimated in the spec and measured (lead time, compute per "
        "night, live lift over the baseline, service usage), last training, current champion and its "
        "health (tonight's monitoring, when it ran). Table governance.portfolio. Built every night, whatever the "
        "state of each use case.",
    )

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

    @dg.sensor(name="governance_after_failed_night", job=review_job, minimum_interval_seconds=60, owners=[RISK_TEAM],
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="When a nightly run fails, its compliance review and portfolio are abandoned with the "
               "failed steps; this runs policy_review after it, so governance's view is built every night.")
    def governance_after_failed_night(context: dg.SensorEvaluationContext):
        """A failed scoring step is often what governance must show (a tampered or non-compliant
        champion). The cursor is the last failure seen; the first tick only sets it."""
        import datetime as dt

        now = dt.datetime.now(dt.timezone.utc).timestamp()
        if context.cursor is None:
            context.update_cursor(str(now))
            return dg.SkipReason("watching nightly runs that fail from now on")
        since = dt.datetime.fromtimestamp(float(context.cursor), dt.timezone.utc)
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(job_name=NIGHTLY_JOB, statuses=[dg.DagsterRunStatus.FAILURE], updated_after=since))
        if not records:
            return dg.SkipReason(f"no nightly run failed since {since.isoformat(timespec='seconds')}")
        context.update_cursor(str(max(r.update_timestamp.timestamp() for r in records)))
        return [dg.RunRequest(run_key=f"after:{r.dagster_run.run_id}",
                              tags={"factory/after_failed_run": r.dagster_run.run_id}) for r in records]

    return dg.Definitions(assets=[compliance, portfolio], jobs=[review_job, record_approval],
                          sensors=[policy_change, governance_after_failed_night])


def _champion_version(store: FactoryStore, use_case: str) -> str:
    return store.registry().aliases(use_case).get("champion", "")
