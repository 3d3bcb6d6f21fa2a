"""Benchmark: the chain through Dagster, its nightly run against a plain script, and a rebuild.

Per scale (total order lines over ``days`` days of history, plus one new day):

1. **Rebuild** (through Dagster, what `factory run` does): one run of ``supply_chain_nightly`` over
   the whole history, then ``assembly_training`` as of the new day, then the approvals the policy
   asks for (two people approve the high-tier challenger) and its promotion gate, so that every use
   case has a champion. Per-layer wall time and peak memory (this process and dbt, sampled) come
   from the step events. Then, untimed in the rebuild, the chain once more for its last day (the
   first night with every champion, see ``_rebuild``).
2. **The night**: the rebuilt FACTORY_HOME is set aside and copied back into its own folder for
   each side, so every night runs where the rebuild ran; on one copy the nightly run of the new
   day goes through Dagster (landing -> raw -> products -> feature sets -> champion scores ->
   operations models -> monitoring); on the other, ``plain_chain.run_days`` does the same work with
   the same functions and no orchestration. ``night_repeats`` pairs, alternating which side goes
   first; medians.

Figures, each a ratio inside one run: orchestration overhead = Dagster night / plain night;
incremental = Dagster night / rebuild; scaling = rebuild time per doubling of the lines.
Every side runs in its own process (imports not timed) on its own copy of the data.

    .venv/bin/python bench/bench_overhead.py --lines 1000000 4000000 --days 365
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
NIGHT = dt.date(2025, 6, 30)  # the new day; the history is the `days` days before it
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _dagster(home: Path):
    import dagster as dg

    from factory_assets.definitions import build_definitions
    from factory_assets.resources import FactoryStore
    from factory_assets.settings import FactoryPaths, ensure_dagster_home

    defs = build_definitions(FactoryStore(home=str(home)))
    instance = dg.DagsterInstance.from_config(str(ensure_dagster_home(FactoryPaths(home).create())))
    return defs, instance


def _chain(defs, instance, first: dt.date, last: dt.date):
    tags = {"dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()}
    return defs.resolve_job_def("supply_chain_nightly").execute_in_process(
        instance=instance, run_config=QUIET, tags=tags, raise_on_error=False)


def _rebuild(home: Path, first: dt.date, night: dt.date) -> dict:
    from layers import RssSampler, layer_profile

    from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases

    defs, instance = _dagster(home)
    training = {**QUIET, "ops": {f"assembly__{uc}_training_set": {"config": {"as_of": night.isoformat()}}
                                 for uc in load_use_cases(USE_CASES_DIR)}}
    phases, layers, ok = {}, {}, True
    with RssSampler() as sampler:
        for phase, run in (("history", lambda: _chain(defs, instance, first, night - dt.timedelta(days=1))),
                           ("training", lambda: defs.resolve_job_def("assembly_training").execute_in_process(
                               instance=instance, run_config=training, raise_on_error=False)),
                           ("promotion", lambda: _approve_and_promote(defs, instance, home))):
            started = time.perf_counter()
            result = run()
            if result is None:  # nothing to do in this phase
                continue
            phases[phase] = time.perf_counter() - started
            ok &= result.success
            layers[phase] = layer_profile(instance, [result.run_id], sampler)
    # The chain once more for the last day of history, now that every use case has a champion: the
    # first night that scores the high-tier use case also records, once, the column lineage of the
    # models that read its scores. The measured nights are the ones after: the steady state. Not
    # part of the rebuild's time (which would only make the incremental ratio look smaller).
    started = time.perf_counter()
    ok &= _chain(defs, instance, night - dt.timedelta(days=1), night - dt.timedelta(days=1)).success
    return {"phases": phases, "layers": layers, "peak_mb": sampler.peak_mb(), "ok": bool(ok),
            "settle_s": time.perf_counter() - started}


#: The two people who approve, in the benchmark, the challengers of tiers that need approvals.
BENCH_APPROVERS = ("bench.risk-officer", "bench.model-owner")
#: The approvers file the benchmark declares them in (public keys only), inside the home it builds:
#: every process of the benchmark reads it through FACTORY_APPROVERS_FILE (see ``child``).
BENCH_APPROVERS_FILE = "bench_approvers.yaml"


def _approve_and_promote(defs, instance, home: Path):
    """What the people of the README's walkthrough do after training: approve the challengers whose
    tier needs approvals (purchase_propensity, high tier) and run their gate, so that the nights
    score, monitor and serve every use case (the operations models read the high-tier scores).
    Each bench approver signs with a key generated here (kept in memory, never written)."""
    import dagster as dg
    import yaml

    from factory_assets.assembly.registry import ModelRegistry
    from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases
    from factory_assets.governance.approvals import (
        generate_key_pair,
        load_approvers,
        now_iso,
        public_key_line,
        sign_approval,
    )
    from factory_assets.governance.facts import (
        approvals_log,
        current_policy,
        signed_content,
    )
    from factory_assets.settings import FactoryPaths

    paths, policy = FactoryPaths(home), current_policy()
    registry, approvals = ModelRegistry(paths.artifacts / "models"), approvals_log(paths.artifacts)
    trained = set(registry.use_cases())  # a scale too short for a use case's label window trains none
    gated = [spec for spec in load_use_cases(USE_CASES_DIR).values() if policy.tier(spec.risk_tier).required_approvals
             and spec.name in trained and "challenger" in registry.aliases(spec.name)]
    if not gated:
        return None
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    keys = {name: load_pem_private_key(generate_key_pair()[0], None) for name in BENCH_APPROVERS}
    declared = home / BENCH_APPROVERS_FILE
    declared.write_text(yaml.safe_dump({"approvers": [
        {"name": name, "role": "benchmark reviewer", "tiers": ["low", "medium", "high"],
         "public_key": public_key_line(key.public_key(), name)} for name, key in keys.items()]}))
    os.environ["FACTORY_APPROVERS_FILE"] = str(declared)
    approvers = load_approvers(declared)
    for spec in gated:
        version = registry.verify(spec.name, "challenger")
        for approver in BENCH_APPROVERS[:policy.tier(spec.risk_tier).required_approvals]:
            at, content = now_iso(), signed_content(version)
            signature = sign_approval(keys[approver], spec.name, version.version, content, "approve", at, approver)
            approvals.record(spec.name, version.version, approver, "approve", "benchmark: approved to run every use case",
                             content_sha256=content, at=at, signature=signature, approvers=approvers,
                             tier=spec.risk_tier)
    return defs.resolve_job_def("assembly_training").execute_in_process(
        instance=instance, run_config=QUIET, raise_on_error=False,
        asset_selection=[dg.AssetKey(["assembly", f"{spec.name}_champion"]) for spec in gated])


def _night_dagster(home: Path, night: dt.date) -> dict:
    from layers import RssSampler, layer_profile

    defs, instance = _dagster(home)
    with RssSampler() as sampler:
        started = time.perf_counter()
        result = _chain(defs, instance, night, night)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "layers": layer_profile(instance, [result.run_id], sampler),
            "peak_mb": sampler.peak_mb(), "ok": result.success}


def _night_plain(home: Path, night: dt.date) -> dict:
    import plain_chain
    from layers import RssSampler

    from factory_assets.resources import FactoryStore

    with RssSampler() as sampler:
        started = time.perf_counter()
        plain_chain.run_days(FactoryStore(home=str(home)), night, night)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": sampler.peak_mb(), "ok": True}


def child(mode: str, home: Path, first: dt.date, night: dt.date) -> None:
    sys.path.insert(0, str(BENCH))
    os.environ.update(FACTORY_HOME=str(home), FACTORY_WAREHOUSE_PATH=str(home / "warehouse.duckdb"),
                      DAGSTER_HOME=str(home / "dagster_home"))
    if (home / BENCH_APPROVERS_FILE).is_file():  # the nights check the approvals the rebuild signed
        os.environ["FACTORY_APPROVERS_FILE"] = str(home / BENCH_APPROVERS_FILE)
    run = {"rebuild": lambda: _rebuild(home, first, night), "dagster": lambda: _night_dagster(home, night),
           "plain": lambda: _night_plain(home, night)}[mode]
    print("RESULT " + json.dumps(run()), flush=True)


def _in_child(mode: str, home: Path, first: dt.date, night: dt.date) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(home), first.isoformat(), night.isoformat()],
                         check=False, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    if not result["ok"]:
        raise RuntimeError(f"{mode}: a Dagster run failed in {home}")
    return result


def measure_scale(total: int, days: int, root: Path, night_repeats: int = 2, nights: bool = True,
                  keep: bool = False) -> dict:
    """The rebuild (and, with ``nights``, the night through Dagster and the plain script) at one
    scale; ``keep`` (without ``nights``) leaves the rebuilt home in ``out['home']``."""
    from factory_assets.raw_material.simulator import (
        SimulationConfig,
        generate_demo_data,
    )

    first = NIGHT - dt.timedelta(days=days)
    built = root / f"home-{total}"
    shutil.rmtree(built, ignore_errors=True)
    started = time.perf_counter()
    generate_demo_data(SimulationConfig(start_date=first, days=days + 1, order_lines_per_day=max(1, total // days),
                                        seed=42), built / "landing")
    out = {"lines": total, "days": days, "simulate_s": time.perf_counter() - started}
    rebuild = _in_child("rebuild", built, first, NIGHT)
    out["rebuild"] = {**rebuild, "total_s": sum(rebuild["phases"].values())}
    if nights:
        # Every night runs in the rebuilt home's own folder, as the nightly schedule would: what a
        # home keeps between runs (dbt's last parse is bound to the warehouse path) stays valid.
        rebuilt = built.with_name(built.name + ".rebuilt")
        shutil.rmtree(rebuilt, ignore_errors=True)
        built.rename(rebuilt)
        runs = {"dagster": [], "plain": []}
        for i in range(night_repeats):
            for side in (("dagster", "plain") if i % 2 == 0 else ("plain", "dagster")):
                shutil.rmtree(built, ignore_errors=True)
                shutil.copytree(rebuilt, built)
                runs[side].append(_in_child(side, built, first, NIGHT))
                shutil.rmtree(built, ignore_errors=True)
        shutil.rmtree(rebuilt, ignore_errors=True)
        night = {side: statistics.median(r["seconds"] for r in rs) for side, rs in runs.items()}
        out["night"] = {"dagster_s": night["dagster"], "plain_s": night["plain"], "runs": runs}
        out["overhead_ratio"] = night["dagster"] / night["plain"]
        out["incremental_ratio"] = night["dagster"] / out["rebuild"]["total_s"]
    if keep and not nights:
        out["home"] = str(built)
    else:
        shutil.rmtree(built, ignore_errors=True)
    return out


def measure(lines: list[int], days: int = 365, workdir: str | None = None, night_repeats: int = 2,
            nights_for: list[int] | None = None) -> dict:
    """Every scale in ``lines``; the nights (overhead, incremental) only for ``nights_for`` (all by default)."""
    root = Path(workdir or tempfile.mkdtemp(prefix="bench-chain-"))
    return {str(total): measure_scale(total, days, root, night_repeats, nights_for is None or total in nights_for)
            for total in lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--night-repeats", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "HOME", "FIRST", "NIGHT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, home, first, night = args.child
        child(mode, Path(home), dt.date.fromisoformat(first), dt.date.fromisoformat(night))
        return
    print(json.dumps(measure(args.lines, args.days, args.workdir, args.night_repeats), indent=2))


if __name__ == "__main__":
    main()
