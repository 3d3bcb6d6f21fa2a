"""Per-layer wall time and peak memory of Dagster runs, for the benchmarks.

Peak memory is sampled, not read from ``ru_maxrss``: the chain runs in one process, and dbt runs
as a child process, whose ``ru_maxrss`` after a fork reports the parent's size. A thread reads the
resident set of this process and all its descendants from /proc every ``interval`` seconds; each
sample is attributed to the layer whose step was running at that moment (steps run one at a time
with the in-process executor).
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
LAYERS = ("raw_material", "processing", "assembly", "distribution", "feedback")


def layer_of_step(step_key: str) -> str:
    """The layer of a step of the factory's jobs (dbt multi-assets are named after their layer)."""
    if step_key.startswith("operations_dbt"):
        return "distribution"
    if step_key.startswith("processing"):
        return "processing"
    return step_key.split("__")[0]


def _children(pid: int) -> list[int]:
    try:
        found = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
        return found
    except OSError:
        return []


def tree_rss_bytes(pid: int) -> int:
    """Resident set of ``pid`` and every descendant (dbt, its threads' children)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        stack += _children(current)
    return total


class RssSampler(threading.Thread):
    """Samples (time, RSS of this process tree) until stopped; use as a context manager."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval, self.samples, self._stop_event = interval, [], threading.Event()

    def run(self) -> None:
        pid = os.getpid()
        while not self._stop_event.is_set():
            self.samples.append((time.time(), tree_rss_bytes(pid)))
            self._stop_event.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_event.set()
        self.join()

    def peak_mb(self, start: float = 0.0, end: float = float("inf")) -> float:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside, default=0) / 2**20


def layer_profile(instance, run_ids: list[str], sampler: RssSampler | None = None) -> dict[str, dict[str, float]]:
    """``{layer: {"seconds": wall time of its steps, "peak_mb": peak RSS while they ran}}``."""
    seconds, peaks, starts = defaultdict(float), defaultdict(float), {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
                begun = starts.pop(event.step_key)
                layer = layer_of_step(event.step_key)
                seconds[layer] += entry.timestamp - begun
                if sampler is not None:
                    peaks[layer] = max(peaks[layer], sampler.peak_mb(begun, entry.timestamp))
    return {layer: {"seconds": round(seconds[layer], 2), "peak_mb": round(peaks[layer], 1)}
            for layer in LAYERS if layer in seconds}
