"""`factory`: the command line of the AI Factory.

    factory demo      generate demo data and run the whole loop on it: products, training, nightly
                      scoring and monitoring of the last days, retraining where monitoring asks
    factory generate  only write simulated landing files
    factory score     score a file against a registered model (distribution layer)
    factory serve     serve registered models over a small local HTTP endpoint
    factory approve   record an approval or rejection of a model version (append-only)
    factory promote   run a use case's promotion gate (the only way to change a champion)
    factory audit     write the audit bundle (JSON + HTML) of a model version
    factory ui        open the Dagster UI on the embedded instance
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date, timedelta

from factory_assets.settings import PROJECT_ROOT, default_paths, ensure_dagster_home

PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"


def _simulation_config(args):
    from factory_assets.raw_material.simulator import DriftScenario, SimulationConfig

    end = date.fromisoformat(args.end) if args.end else date.today() - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    drift = DriftScenario(start_date=date.fromisoformat(args.drift_from)) if args.drift_from else None
    return SimulationConfig(start_date=start, days=args.days, order_lines_per_day=args.lines_per_day, seed=args.seed, drift=drift)


def cmd_generate(args) -> int:
    from factory_assets.raw_material.simulator import generate_demo_data

    paths = default_paths().create()
    config = _simulation_config(args)
    started = time.perf_counter()
    written = generate_demo_data(config, paths.landing)
    n_files = sum(len(v) for v in written.values())
    print(f"Wrote {n_files} landing files for {config.days} days from {config.start_date} "
          f"into {paths.landing} in {time.perf_counter() - started:.1f} s")
    return 0


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # full logs are in the UI


def run_supply_chain(first_day: date, last_day: date):
    """Run the nightly job in this process over a range of days, as one run, on the instance."""
    import dagster as dg

    from factory_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    job = defs.resolve_job_def("supply_chain_nightly")
    tags = {PARTITION_RANGE_START: first_day.isoformat(), PARTITION_RANGE_END: last_day.isoformat()}
    return job.execute_in_process(instance=instance, tags=tags, run_config=QUIET, raise_on_error=False)


def run_training(as_of: date | None = None, asset_selection=None, tags=None):
    """Train (every use case, or a selection) and run the promotion gates, in this process.

    ``as_of``: train on what was known at the start of that day."""
    import dagster as dg

    from factory_assets.assembly.specs import load_use_cases
    from factory_assets.definitions import defs

    config = dict(QUIET)
    if as_of is not None:
        config["ops"] = {f"assembly__{name}_training_set": {"config": {"as_of": as_of.isoformat()}}
                         for name in load_use_cases()}
    return defs.resolve_job_def("assembly_training").execute_in_process(
        instance=dg.DagsterInstance.get(), run_config=config, raise_on_error=False,
        asset_selection=asset_selection, tags=tags)


def run_requested_retraining():
    """Evaluate the retraining sensor once and run what it requests (what the daemon would do)."""
    import dagster as dg

    from factory_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    sensor = defs.resolve_sensor_def("retraining_on_monitoring_breach")
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    return [(request, run_training(asset_selection=list(request.asset_selection), tags=request.tags))
            for request in tick.run_requests]


def model_summary(result) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        key = event.asset_key.path[-1]
        meta = event.materialization.metadata
        if key.endswith("_model"):
            metrics = {k.split("/", 1)[1]: v.value for k, v in meta.items() if k.startswith("metric/")}
            baseline = {k.split("/", 1)[1]: v.value for k, v in meta.items() if k.startswith("baseline/")}
            shown = ", ".join(f"{m} {metrics[m]:.3f} (baseline {baseline[m]:.3f})" for m in metrics)
            lines.append(f"  {key.removesuffix('_model'):<24} {meta['engine'].value}: {shown}")
        elif key.endswith("_champion") and not meta["promoted"].value:
            use_case = key.removesuffix("_champion")
            lines.append(f"  {use_case:<24} stays challenger: {meta['reason'].value.split(' (gate alone')[0]}")
            if "approval" in meta["reason"].value:
                lines.append(f"  {'':<24} approve: .venv/bin/factory approve {use_case} challenger --approver NAME "
                             f"--decision approve; then .venv/bin/factory promote {use_case}")
    return lines


def summarise(result) -> tuple[list[tuple[str, int]], int, int]:
    import duckdb

    from factory_assets.assembly.specs import load_use_cases
    from factory_assets.lib.contracts import prediction_contract_path, product_contract, product_contract_names

    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    passed = sum(1 for c in checks if c.passed)
    tables = [(name, product_contract(name).physical_name) for name in product_contract_names()]
    tables += [(f"{uc}_predictions", f"predictions.{uc}") for uc in load_use_cases() if prediction_contract_path(uc).is_file()]
    tables.append(("service_priority", "operations.service_priority"))
    rows = []
    with duckdb.connect(str(default_paths().warehouse), read_only=True) as conn:
        for name, table in tables:
            try:
                rows.append((name, conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))
            except duckdb.Error:
                rows.append((name, -1))
    return rows, passed, len(checks)


def monitoring_summary(result) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[0] != "feedback" or not event.asset_key.path[-1].endswith("_monitoring"):
            continue
        meta = event.materialization.metadata
        breaches = meta["breaches"].value if "breaches" in meta else []
        share = meta["drift_share"].value if "drift_share" in meta else float("nan")
        lines.append(f"  {event.asset_key.path[-1]:<34} {event.materialization.partition}  drift share "
                     f"{share:.2f}  {'; '.join(breaches) if breaches else 'ok'}")
    return lines


def cmd_demo(args) -> int:
    paths = default_paths().create()
    os.environ.setdefault("DAGSTER_HOME", str(ensure_dagster_home(paths)))
    started = time.perf_counter()
    cmd_generate(args)
    config = _simulation_config(args)
    last_day = config.start_date + timedelta(days=config.days - 1)
    live_days = 0 if args.no_train else max(0, min(args.live_days, config.days - 60))
    history_end = last_day - timedelta(days=live_days)
    print(f"Running supply_chain_nightly for {config.start_date} .. {history_end} (one run) ...", flush=True)
    result = run_supply_chain(config.start_date, history_end)
    training = live = None
    retrained = []
    if result.success and not args.no_train:
        print(f"Training the use cases on what was known by {history_end} and running the promotion gates ...", flush=True)
        training = run_training(as_of=history_end + timedelta(days=1))
        if training.success and live_days:
            first_live = history_end + timedelta(days=1)
            print(f"Nightly chain for {first_live} .. {last_day}: landing, products, features, scoring, monitoring ...",
                  flush=True)
            live = run_supply_chain(first_live, last_day)
            retrained = run_requested_retraining() if live.success else []
    rows, passed, total = summarise(live if live is not None else result)
    print()
    print(f"Run {result.run_id}: {'SUCCESS' if result.success else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    print(f"Asset checks passed: {passed}/{total}")
    print("Data and prediction products (rows):")
    for name, count in rows:
        print(f"  {name:<32} {count if count >= 0 else 'not built':>10}")
    if training is not None:
        print(f"Models (run {training.run_id}: {'SUCCESS' if training.success else 'FAILED'}; test-window metrics):")
        print("\n".join(model_summary(training)))
    if live is not None:
        print(f"Monitoring (run {live.run_id}: {'SUCCESS' if live.success else 'FAILED'}):")
        print("\n".join(monitoring_summary(live)))
        for request, run in retrained:
            gate = [e.materialization.metadata["reason"].value for e in run.get_asset_materialization_events()
                    if e.asset_key.path[-1].endswith("_champion")]
            print(f"Retraining requested for {request.tags['factory/use_case']} "
                  f"({'SUCCESS' if run.success else 'FAILED'}): {gate[0] if gate else 'no gate decision'}")
    quarantined = sorted(p.name for p in paths.quarantine.rglob("*") if p.is_file() and not p.name.endswith(".reason.json"))
    if quarantined:
        print(f"Quarantined files ({len(quarantined)}), see {paths.quarantine}: {', '.join(quarantined[:5])}")
    print()
    print(f"State lives in {paths.home} (warehouse: {paths.warehouse}).")
    print("Open the UI:  python3 tasks.py ui   (then http://127.0.0.1:3000)")
    runs = [result, training, live, *(run for _, run in retrained)]
    return 0 if all(r.success for r in runs if r is not None) else 1


def cmd_ui(args) -> int:
    paths = default_paths().create()
    env = dict(os.environ, DAGSTER_HOME=str(ensure_dagster_home(paths)))
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    return subprocess.call(cmd, env=env, cwd=PROJECT_ROOT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="factory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (("demo", cmd_demo, "generate demo data and run the chain on it"),
                              ("generate", cmd_generate, "write simulated landing files only")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--days", type=int, default=90, help="days of history to simulate (default 90; purchase propensity needs 28 days of history plus 30-day labels)")
        p.add_argument("--lines-per-day", type=int, default=1500, help="mean order lines per day (default 1500)")
        p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        p.add_argument("--end", help="last simulated day, YYYY-MM-DD (default: yesterday)")
        p.add_argument("--drift-from", help="turn on the drift scenario from this day, YYYY-MM-DD")
        p.set_defaults(func=func)
        if name == "demo":
            p.add_argument("--no-train", action="store_true", help="stop after the data products")
            p.add_argument("--live-days", type=int, default=7,
                           help="last days run night by night after training: scored, monitored, and retrained "
                           "where monitoring asks (default 7)")
    from factory_assets.distribution import service_cli
    from factory_assets.governance import cli as governance_cli

    service_cli.register_commands(sub)
    governance_cli.register_commands(sub)
    p = sub.add_parser("ui", help="open the Dagster UI (dagster dev) on the embedded instance")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
