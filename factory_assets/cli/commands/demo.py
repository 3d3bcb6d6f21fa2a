"""`factory demo`: demo data, then the whole loop on it (products, training, scoring, monitoring,
retraining where monitoring asks), and a summary of what each step produced."""

from __future__ import annotations

import time
from datetime import timedelta

from factory_assets.cli.commands.data import cmd_generate, peek_warehouse, simulation_config
from factory_assets.cli.jobs import Progress, run_report, run_requested_retraining, run_supply_chain, run_training, setup_instance
from factory_assets.settings import default_paths


def cmd_demo(args) -> int:
    paths = default_paths().create()
    setup_instance(paths)
    started = time.perf_counter()
    cmd_generate(args)
    config = simulation_config(args)
    last_day = config.start_date + timedelta(days=config.days - 1)
    live_days = 0 if args.no_train else max(0, min(args.live_days, config.days - 60))
    history_end = last_day - timedelta(days=live_days)
    progress = Progress(started)
    print(f"Running supply_chain_nightly for {config.start_date} .. {history_end} (one run) ...", flush=True)
    result = run_supply_chain(config.start_date, history_end, progress=progress)
    training = live = None
    retrained = []
    if result.success and not args.no_train:
        print(f"Training the use cases on what was known by {history_end} and running the promotion gates ...", flush=True)
        training = run_training(as_of=history_end + timedelta(days=1), progress=progress)
        if training.success and live_days:
            first_live = history_end + timedelta(days=1)
            print(f"Nightly chain for {first_live} .. {last_day}: landing, products, features, scoring, monitoring ...",
                  flush=True)
            live = run_supply_chain(first_live, last_day, progress=progress)
            retrained = run_requested_retraining(progress=progress) if live.success else []
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
        for step in run_report(training, 0)["failed_steps"]:
            print(f"  step {step['step']} failed: {step['error']}")
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
    from factory_assets.lib.warehouse import describe_warehouse

    print(f"State lives in {paths.home} (warehouse: {describe_warehouse(paths)}).")
    print("Open the UI:  python3 tasks.py ui   (then http://127.0.0.1:3000)")
    runs = [result, training, live, *(run for _, run in retrained)]
    return 0 if all(r.success for r in runs if r is not None) else 1


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
        elif key.endswith("_champion") and meta["promoted"].value:
            lines.append(f"  {key.removesuffix('_champion'):<24} {meta['reason'].value.split(': ')[0]}")
        elif key.endswith("_champion"):
            use_case = key.removesuffix("_champion")
            lines.append(f"  {use_case:<24} stays challenger: {meta['reason'].value.split(' (gate alone')[0]}")
            if "approval" in meta["reason"].value:
                lines.append(f"  {'':<24} approve (two declared approvers, each with their key): .venv/bin/factory "
                             f"approve {use_case} challenger --approver NAME --key KEY --decision approve; then "
                             f".venv/bin/factory promote {use_case}")
    for event in result.get_asset_observation_events():  # a use case without enough history yet
        meta = event.asset_observation_data.asset_observation.metadata
        if "not_trained" in meta:
            lines.append(f"  {event.asset_key.path[-1].removesuffix('_model'):<24} skipped: "
                         f"{meta['not_trained'].value.split(' not trained: ', 1)[-1]}")
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
    with peek_warehouse(default_paths()) as conn:
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
