"""What a use case is measured to deliver, beside the value its declaration estimates.

- lead time: from the first commit of the use case's declaration to its first promotion;
- compute: seconds of the nightly run's steps that belong to the use case, per night;
- live lift: the champion's live metric (monitoring, on outcomes) against the naive baseline's
  metric on the champion's test window;
- usage: calls and callers of the use case's service (feedback.service_usage_daily).

Pure apart from ``first_commit_at``, which asks git (offline; None outside a git checkout).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path


def first_commit_at(path: Path) -> datetime | None:
    """When ``path`` was first committed (git, following renames), or None if it never was."""
    try:
        done = subprocess.run(["git", "log", "--follow", "--format=%aI", "--", path.name], cwd=path.parent,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    stamps = [line for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []
    return datetime.fromisoformat(stamps[-1]) if stamps else None


def first_promotion_at(history: Iterable[dict]) -> datetime | None:
    """The first time a version became champion (the registry's alias history)."""
    times = [datetime.fromisoformat(r["time"]) for r in history if r.get("alias") == "champion" and r.get("version")]
    return min(times) if times else None


def lead_time_days(declared: datetime | None, promoted: datetime | None) -> float | None:
    if declared is None or promoted is None:
        return None
    return max(0.0, (promoted - declared).total_seconds() / 86400)


def live_lift(live: float | None, baseline: float | None, higher_is_better: bool) -> float | None:
    """How much better than the naive baseline the champion is live, relative to the baseline."""
    if live is None or baseline is None or baseline == 0:
        return None
    return (live - baseline) / abs(baseline) if higher_is_better else (baseline - live) / abs(baseline)


def compute_seconds_per_night(step_seconds: list[dict[str, float]], use_case: str) -> float | None:
    """Mean over nights of the seconds of the steps named for ``use_case`` (one dict step key ->
    seconds per nightly run); None when no night ran any of its steps."""
    nights = [sum(s for key, s in steps.items() if use_case in key) for steps in step_seconds]
    nights = [n for n in nights if n > 0]
    return sum(nights) / len(nights) if nights else None
