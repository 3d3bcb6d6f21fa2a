"""Run the benchmark suite and write BENCHMARKS.md (figures as ratios to a baseline of the same run).

    python3 tasks.py bench            # full scale; writes BENCHMARKS.md at the project root
    python3 tasks.py bench --smoke    # tiny scale, proves every benchmark still runs (CI does this)

Each benchmark module has a ``measure(...) -> dict`` function; this runner calls them with the
scale chosen, and renders one Markdown table with the machine's description. A benchmark whose
target is missed stays in the table with its figure: the note says what was found and fixed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

#: Each benchmark: its arguments at full scale and at smoke scale (CI proves they still run).
SUITE = {
    "startup": {"full": {"repeats": 5}, "smoke": {"repeats": 1}},
    # One set of chain runs serves three figures: overhead and incremental at 1M and 4M lines,
    # scaling from 1M to 16M (the rebuild of each scale).
    "chain": {"full": {"lines": [1_000_000, 2_000_000, 4_000_000, 8_000_000, 16_000_000], "days": 365,
                       "nights_for": [1_000_000, 4_000_000], "night_repeats": 2},
              "smoke": {"lines": [6_000, 12_000], "days": 95, "nights_for": [6_000], "night_repeats": 1}},
    "gpu": {"full": {"rows": 1_000_000, "rounds": 200, "repeats": 3}, "smoke": {"rows": 20_000, "rounds": 5, "repeats": 1}},
    # The warehouse on the lake against the single DuckDB file (rebuild and night), two locations'
    # runs at once against one after the other, and the raw ingestion rate beside DuckDB's read_csv.
    "lake": {"full": {"lines": [1_000_000, 4_000_000], "days": 365, "pair_lines_per_day": 1000, "pair_days": 60},
             # smoke: the chain's smoke already rebuilds and runs a night on the lake at 6,000 lines;
             # repeating that beside the DuckDB file would add ~6 minutes to CI for no new code path
             "smoke": {"lines": [6_000], "days": 95, "pair_lines_per_day": 40, "pair_days": 10,
                       "only": ["two_at_once", "ingestion"]}},
    # HTTP scoring on Starlette/uvicorn (policy and usage log on) against the first http.server endpoint.
    "services": {"full": {"requests": 1000, "rows": 100, "clients": 8}, "smoke": {"requests": 40, "rows": 20, "clients": 4}},
    # The text-classification template against a plain scikit-learn + LightGBM script on the same tickets.
    "text": {"full": {"rows": 200_000, "repeats": 2}, "smoke": {"rows": 3_000, "repeats": 1}},
}
TARGETS = {"startup": 1.5, "overhead": 1.25, "incremental": 0.10, "scaling": 1.10, "memory_gib": 6.0, "gpu": 1 / 0.9,
           "lake": 1.2, "two_at_once": 1.0, "ingestion": 100.0, "services": 1.0, "text": 1.25}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        memory = f", {kb / 2**20:.0f} GiB memory"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; Python {platform.python_version()}"


def _row(name: str, figure: str, ratio: float | None, target: float, unit: str = "x") -> dict:
    met = None if ratio is None else ratio <= target
    return {"benchmark": name, "figure": figure, "ratio": ratio, "target": target, "unit": unit, "met": met}


def measure_startup(scale: dict) -> dict:
    import bench_startup

    return bench_startup.measure(**scale)


def startup_rows(r: dict) -> list[dict]:
    return [_row("startup", f"`dagster definitions validate`: {r['factory_s']:.1f} s vs {r['empty_s']:.1f} s "
                 "for an empty project", r["ratio"], TARGETS["startup"])]


def measure_chain(scale: dict) -> dict:
    import bench_overhead

    return bench_overhead.measure(**scale)


def chain_rows(result: dict) -> list[dict]:
    rows = []
    with_nights = [r for r in result.values() if "night" in r]
    for r in with_nights:
        n = f"{r['lines']:,} lines"
        rows.append(_row(f"overhead ({n})", f"nightly run through Dagster {r['night']['dagster_s']:.1f} s vs plain "
                         f"script {r['night']['plain_s']:.1f} s", r["overhead_ratio"], TARGETS["overhead"]))
    for r in with_nights:
        rows.append(_row(f"incremental ({r['lines']:,} lines, {r['days']} days)",
                         f"nightly run {r['night']['dagster_s']:.1f} s vs rebuild of all days "
                         f"{r['rebuild']['total_s']:.0f} s", r["incremental_ratio"], TARGETS["incremental"]))
    ordered = sorted(result.values(), key=lambda r: r["lines"])
    steps = [(a, b) for a, b in itertools.pairwise(ordered) if b["lines"] == 2 * a["lines"]]
    if steps:
        worst = max(steps, key=lambda ab: ab[1]["rebuild"]["total_s"] / ab[0]["rebuild"]["total_s"])
        per_doubling = worst[1]["rebuild"]["total_s"] / worst[0]["rebuild"]["total_s"] / 2
        rows.append(_row("scaling", f"rebuild time per doubling of the lines, worst step {worst[0]['lines']:,} -> "
                         f"{worst[1]['lines']:,}: x{2 * per_doubling:.2f} (linear = x2)", per_doubling, TARGETS["scaling"]))
    largest = ordered[-1]
    peak_gib = largest["rebuild"]["peak_mb"] / 1024
    rows.append(_row(f"peak memory ({largest['lines']:,} lines)", "process and dbt, sampled, whole rebuild",
                     peak_gib, TARGETS["memory_gib"], unit=" GiB"))
    return rows


def measure_gpu(scale: dict) -> dict:
    import bench_gpu

    return bench_gpu.measure(**scale)


def gpu_rows(r: dict) -> list[dict]:
    if "skipped" in r:
        return [_row("gpu", f"not measured: {r['skipped']}", None, TARGETS["gpu"])]
    return [_row("gpu", f"training asset's XGBoost on CUDA {r['factory_s']:.1f} s vs plain xgboost.train "
                 f"{r['plain_s']:.1f} s ({r['rows']:,} rows, {r['rounds']} rounds)", r["ratio"], TARGETS["gpu"])]


def measure_lake(scale: dict) -> dict:
    import bench_lake

    return bench_lake.measure(**scale)


def lake_rows(r: dict) -> list[dict]:
    rows = []
    for lines, m in r.get("lake_vs_file", {}).items():
        n = f"{int(lines):,} lines"
        rows.append(_row(f"lake rebuild ({n})", f"whole history, training, promotion on the lake {m['lake']['rebuild_s']:.0f} s "
                         f"vs on the DuckDB file {m['duckdb']['rebuild_s']:.0f} s (peak {m['lake']['peak_mb'] / 1024:.2f} GiB)",
                         m["rebuild_ratio"], TARGETS["lake"]))
        rows.append(_row(f"lake night ({n})", f"nightly run on the lake {m['lake']['night_s']:.1f} s vs on the DuckDB file "
                         f"{m['duckdb']['night_s']:.1f} s", m["night_ratio"], TARGETS["lake"]))
    if "two_at_once" in r:
        t = r["two_at_once"]
        rows.append(_row("two locations at once", "core and business-unit runs on one lake together "
                         f"{t['concurrent']['wall_s']:.0f} s vs one after the other {t['serial']['wall_s']:.0f} s",
                         t["ratio"], TARGETS["two_at_once"]))
    if "ingestion" in r:
        i = r["ingestion"]
        rows.append(_row("raw ingestion", f"{i['raw_rows']:,} rows in {i['files']} files: {i['ingest_rows_per_s']:,.0f} rows/s "
                         f"({i['ms_per_file']:.0f} ms per file) vs DuckDB read_csv {i['duckdb_csv_rows_per_s']:,.0f} rows/s "
                         "(ratio: how many times faster DuckDB reads)",
                         i["duckdb_csv_rows_per_s"] / i["ingest_rows_per_s"], TARGETS["ingestion"]))
    return rows


def measure_text(scale: dict) -> dict:
    import bench_text

    return bench_text.measure(**scale)


def text_rows(r: dict) -> list[dict]:
    t, p = r["template"], r["plain"]
    return [_row("text template training", f"{r['rows']:,} tickets, hashed text + LightGBM + linear baseline: template "
                 f"{t['seconds']:.1f} s vs plain scikit-learn + LightGBM script {p['seconds']:.1f} s (AUC {t['auc']:.3f} "
                 f"vs {p['auc']:.3f}; peak memory {t['peak_rss_gib']:.2f} vs {p['peak_rss_gib']:.2f} GiB)",
                 r["ratio"], TARGETS["text"])]


def measure_services(scale: dict) -> dict:
    import bench_services

    return bench_services.measure(**scale)


def services_rows(r: dict) -> list[dict]:
    a, b = r["asgi"], r["stdlib"]
    what = f"{r['requests']:,} requests of {r['rows']} rows, {r['clients']} clients"
    return [_row("HTTP scoring throughput", f"{what}: Starlette/uvicorn {a['requests_per_s']:.0f} req/s vs http.server "
                 f"{b['requests_per_s']:.0f} req/s (ratio: time per request, ASGI / http.server)",
                 r["throughput_ratio"], TARGETS["services"]),
            _row("HTTP scoring p95 latency",
                 f"{what}: Starlette/uvicorn {a['p95_ms']:.1f} ms vs http.server {b['p95_ms']:.1f} ms",
                 r["p95_ratio"], TARGETS["services"])]


#: name -> (measure at a scale -> raw result, raw result -> report rows)
RUNNERS = {"startup": (measure_startup, startup_rows), "chain": (measure_chain, chain_rows), "gpu": (measure_gpu, gpu_rows),
           "lake": (measure_lake, lake_rows), "services": (measure_services, services_rows),
           "text": (measure_text, text_rows)}


def raw_results(markdown: Path) -> dict:
    """The raw results block of a BENCHMARKS.md written by this runner."""
    text = markdown.read_text()
    return json.loads(text[text.index("```json") + len("```json"):text.rindex("```")])


def scaling_table(chain: dict) -> list[str]:
    """Per layer and scale: wall time and peak memory of the rebuild (history, training and promotion runs)."""
    from layers import LAYERS

    lines = ["", "## Scaling: the rebuild per layer", "",
             "| lines | simulate | " + " | ".join(LAYERS) + " | total | peak |", "|---" * (len(LAYERS) + 4) + "|"]
    for r in sorted(chain.values(), key=lambda r: r["lines"]):
        cells = []
        for layer in LAYERS:
            seconds = sum(phase.get(layer, {}).get("seconds", 0) for phase in r["rebuild"]["layers"].values())
            peak = max((phase.get(layer, {}).get("peak_mb", 0) for phase in r["rebuild"]["layers"].values()), default=0)
            cells.append(f"{seconds:.0f} s / {peak / 1024:.2f} GiB")
        lines.append(f"| {r['lines']:,} | {r['simulate_s']:.0f} s | " + " | ".join(cells)
                     + f" | {r['rebuild']['total_s']:.0f} s | {r['rebuild']['peak_mb'] / 1024:.2f} GiB |")
    lines += ["", "Each cell: wall time of the layer's steps / peak resident memory (this process and dbt) while they ran.",
              "The rebuild runs the history as one Dagster run over every day, then the training job, then "
              "the high-tier challenger's promotion gate once two people approved it (as the README walks through)."]
    return lines


def render(rows: list[dict], raw: dict, smoke: bool) -> str:
    planned = SUITE["chain"]["smoke" if smoke else "full"]["lines"]
    left_out = [n for n in planned if "chain" in raw and str(n) not in raw["chain"]]
    note = f"Chain scales not measured in this run: {', '.join(f'{n:,}' for n in left_out)} order lines." if left_out else ""
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.  ",
        (f"Written by `python3 tasks.py bench{' --smoke' if smoke else ''}` on "
         f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Every figure is a ratio to a baseline measured in the same run."),
        "",
        *([note, ""] if note else []),
        "| benchmark | measured | ratio | target | met |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}{r['unit']}"
        met = "not measured" if r["met"] is None else ("yes" if r["met"] else "no")
        lines.append(f"| {r['benchmark']} | {r['figure']} | {ratio} | <= {r['target']:.2f}{r['unit']} | {met} |")
    if "chain" in raw:
        lines += scaling_table(raw["chain"])
    lines += ["", "Raw results:", "", "```json", json.dumps(raw, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny scale: proves the benchmarks run, measures nothing")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write (default BENCHMARKS.md; "
                        "with --smoke, nothing unless given)")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), help="run only these benchmarks")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a BENCHMARKS.md from an earlier run: benchmarks not run now keep its figures")
    parser.add_argument("--max-lines", type=int, default=None,
                        help="leave out chain scales above this many order lines (the report says so)")
    args = parser.parse_args(argv)
    raw = raw_results(args.keep) if args.keep else {}
    for name in args.only or SUITE:
        started = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        scale = dict(SUITE[name]["smoke" if args.smoke else "full"])
        if name == "chain" and args.max_lines:
            scale["lines"] = [n for n in scale["lines"] if n <= args.max_lines]
        raw[name] = RUNNERS[name][0](scale)
        found = RUNNERS[name][1](raw[name])
        for r in found:
            print(f"[bench]   {r['benchmark']}: {r['figure']} ({r['ratio'] if r['ratio'] is None else round(r['ratio'], 3)})",
                  flush=True)
        print(f"[bench] {name} done in {time.perf_counter() - started:.0f} s", flush=True)
    rows = [row for name in SUITE if name in raw for row in RUNNERS[name][1](raw[name])]
    out = args.out or (None if args.smoke else ROOT / "BENCHMARKS.md")
    text = render(rows, raw, args.smoke)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"[bench] wrote {out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
