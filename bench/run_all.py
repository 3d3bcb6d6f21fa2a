"""Run the benchmark suite and write BENCHMARKS.md (figures as ratios to a baseline of the same run).

    python3 tasks.py bench            # full scale; writes BENCHMARKS.md at the project root
    python3 tasks.py bench --smoke    # tiny scale, proves every benchmark still runs (CI does this)

Each benchmark module has a ``measure(...) -> dict`` function; this runner calls them with the
scale chosen, and renders one Markdown table with the machine's description. A benchmark whose
target is missed stays in the table with its figure: the note says what was found and fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

#: (benchmark, target as a ratio, full-scale arguments, smoke arguments)
SUITE = {
    "startup": {"target": 1.5, "full": {"repeats": 5}, "smoke": {"repeats": 1}},
    "overhead": {"target": 1.25, "full": {"lines": [1_000_000, 4_000_000], "days": 365},
                 "smoke": {"lines": [38_000], "days": 95}},
}


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


def run_startup(scale: dict) -> dict:
    import bench_startup

    result = bench_startup.measure(**scale)
    return {"figure": f"{result['factory_s']:.1f} s vs {result['empty_s']:.1f} s (empty project)",
            "ratio": result["ratio"], "raw": result}


def run_overhead(scale: dict) -> dict:
    import bench_overhead

    result = bench_overhead.measure(**scale)
    largest = result[str(max(scale["lines"]))]
    figures = "; ".join(f"{int(n):,} lines: {r['dagster']['total_s']:.0f} s vs {r['plain']['total_s']:.0f} s "
                        f"({r['ratio']:.2f}x)" for n, r in result.items())
    return {"figure": f"Dagster chain vs plain script: {figures}", "ratio": largest["ratio"], "raw": result}


RUNNERS = {"startup": run_startup, "overhead": run_overhead}


def render(results: dict, smoke: bool) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.  ",
        f"Written by `python3 tasks.py bench{' --smoke' if smoke else ''}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Every figure is a ratio to a baseline measured in the same run.",
        "",
        "| benchmark | measured | ratio | target | met |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        target = SUITE[name]["target"]
        lines.append(f"| {name} | {r['figure']} | {r['ratio']:.2f}x | <= {target}x | {'yes' if r['ratio'] <= target else 'no'} |")
    lines += ["", "Raw results:", "", "```json", json.dumps({k: v["raw"] for k, v in results.items()}, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny scale: proves the benchmarks run, measures nothing")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to write (default BENCHMARKS.md; "
                        "with --smoke, nothing unless given)")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), help="run only these benchmarks")
    args = parser.parse_args(argv)
    results = {}
    for name in args.only or SUITE:
        started = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        results[name] = RUNNERS[name](SUITE[name]["smoke" if args.smoke else "full"])
        print(f"[bench] {name}: {results[name]['figure']} ({results[name]['ratio']:.2f}x) in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    out = args.out or (None if args.smoke else ROOT / "BENCHMARKS.md")
    text = render(results, args.smoke)
    if out:
        out.write_text(text)
        print(f"[bench] wrote {out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
