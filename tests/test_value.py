"""What the portfolio measures per use case (issue 22, item 3), from the pure functions of
governance/value.py: lead time from a real git history, compute from step statistics, live lift."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone

import pytest

from factory_assets.governance.value import (
    compute_seconds_per_night,
    first_commit_at,
    first_promotion_at,
    lead_time_days,
    live_lift,
)


def test_lead_time_runs_from_the_declarations_first_commit_to_the_first_promotion(tmp_path):
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@example.com"}

    def git(*args, when: str | None = None):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                       env={**env, **({"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when} if when else {})})

    git("init", "-q")
    declaration = tmp_path / "defs" / "churn" / "defs.yaml"
    declaration.parent.mkdir(parents=True)
    declaration.write_text("name: churn\n")
    assert first_commit_at(declaration) is None  # not committed yet
    git("add", "-A")
    git("commit", "-qm", "declare churn", when="2026-03-01T09:00:00+00:00")
    declaration.write_text("name: churn\nowner: x\n")
    git("commit", "-qam", "edit", when="2026-03-05T09:00:00+00:00")
    declared = first_commit_at(declaration)
    assert declared == datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
    history = [{"alias": "challenger", "version": "v1", "time": "2026-03-02T10:00:00+00:00"},
               {"alias": "champion", "version": "v1", "time": "2026-03-04T21:00:00+00:00"},
               {"alias": "champion", "version": None, "time": "2026-03-06T09:00:00+00:00"},
               {"alias": "champion", "version": "v2", "time": "2026-03-08T09:00:00+00:00"}]
    promoted = first_promotion_at(history)
    assert promoted == datetime(2026, 3, 4, 21, tzinfo=timezone.utc)
    assert lead_time_days(declared, promoted) == pytest.approx(3.5)
    assert lead_time_days(declared, None) is None and first_promotion_at(history[:1]) is None
    assert first_commit_at(tmp_path / "nowhere" / "defs.yaml") is None


def test_compute_per_night_counts_only_the_use_cases_steps_of_nights_that_ran_them():
    nights = [{"distribution__late_delivery_predictions": 12.0, "feedback__late_delivery_monitoring": 8.0,
               "processing_dbt_models": 100.0, "distribution__demand_forecast_predictions": 5.0},
              {"distribution__late_delivery_predictions": 10.0, "feedback__late_delivery_monitoring": 10.0},
              {"processing_dbt_models": 90.0}]
    assert compute_seconds_per_night(nights, "late_delivery") == pytest.approx(20.0)
    assert compute_seconds_per_night(nights, "demand_forecast") == pytest.approx(5.0)
    assert compute_seconds_per_night(nights, "purchase_propensity") is None


def test_live_lift_is_relative_to_the_baseline_in_the_metrics_direction():
    assert live_lift(0.80, 0.64, higher_is_better=True) == pytest.approx(0.25)
    assert live_lift(0.30, 0.40, higher_is_better=False) == pytest.approx(0.25)  # wape: lower is better
    assert live_lift(0.50, 0.40, higher_is_better=False) == pytest.approx(-0.25)
    assert live_lift(None, 0.4, True) is None and live_lift(0.4, 0.0, True) is None
