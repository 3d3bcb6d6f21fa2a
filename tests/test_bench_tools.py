"""The benchmark suite's own tools: per-layer attribution, memory sampling, the report table.

The benchmarks themselves are not timed here; CI runs them once at a tiny scale
(`python3 tasks.py bench --smoke`, from .ci/run) to prove they still work.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import layers  # noqa: E402 - bench/ is on sys.path only from the line above
import run_all  # noqa: E402


def test_every_step_maps_to_the_layer_of_its_assets():
    """Per-layer figures group steps by name: each step's assets must all be in that layer."""
    from factory_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    steps = 0
    for assets_def in graph.assets_defs:
        if assets_def.is_executable:
            steps += 1
            keys = assets_def.keys or {check.asset_key for check in assets_def.check_keys}  # check-only steps
            groups = {graph.get(key).group_name for key in keys}
            assert groups == {layers.layer_of_step(assets_def.node_def.name)}, (assets_def.node_def.name, groups)
    assert steps > 30


def test_sampler_counts_the_memory_of_child_processes():
    """dbt runs as a child process: its memory must be in the peak, which ru_maxrss cannot give."""
    with layers.RssSampler(interval=0.05) as sampler:
        before = layers.tree_rss_bytes(__import__("os").getpid()) / 2**20
        subprocess.run([sys.executable, "-c", "import time; x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(0.6)"],
                       check=True)
    assert sampler.peak_mb() >= before + 250


def test_report_marks_met_missed_and_unmeasured_targets():
    rows = [run_all._row("startup", "1.2 s vs 1.0 s", 1.2, 1.5),
            run_all._row("overhead (1 lines)", "3 s vs 2 s", 1.5, 1.25),
            run_all._row("gpu", "not measured: no GPU", None, 1 / 0.9)]
    text = run_all.render(rows, {}, smoke=True)
    table = [line for line in text.splitlines() if line.startswith("| ") and "benchmark" not in line]
    assert table == ["| startup | 1.2 s vs 1.0 s | 1.20x | <= 1.50x | yes |",
                     "| overhead (1 lines) | 3 s vs 2 s | 1.50x | <= 1.25x | no |",
                     "| gpu | not measured: no GPU | - | <= 1.11x | not measured |"]
    assert "Machine: " in text and "cores" in text


@pytest.mark.parametrize("lines, worst", [((1, 2, 4), 2.4 / 2), ((1, 2), 2.0 / 2)])
def test_scaling_figure_is_the_worst_doubling(lines, worst):
    seconds = {1: 10.0, 2: 20.0, 4: 48.0}
    fake = {str(n): {"lines": n, "days": 3, "simulate_s": 0.1,
                     "rebuild": {"total_s": seconds[n], "peak_mb": 100.0 * n, "layers": {}}} for n in lines}
    rows = run_all.chain_rows(fake)
    scaling = next(r for r in rows if r["benchmark"] == "scaling")
    assert scaling["ratio"] == pytest.approx(worst)
    memory = next(r for r in rows if r["benchmark"].startswith("peak memory"))
    assert memory["ratio"] == pytest.approx(100.0 * max(lines) / 1024)


@pytest.mark.parametrize("module", sorted(p.stem for p in BENCH.glob("*.py")))
def test_every_benchmark_module_imports(module):
    """A benchmark that no longer imports (a helper it borrowed was renamed) fails here, not at the
    end of CI's benchmark smoke: each module is imported in a fresh interpreter, as run_all does."""
    tests = Path(__file__).resolve().parent
    code = f"import sys; sys.path[:0] = [{str(BENCH)!r}, {str(tests)!r}]; import {module}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
