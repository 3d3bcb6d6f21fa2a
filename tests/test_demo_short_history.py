"""`python3 tasks.py run --days 60`: too short for one use case's history, which is skipped with the
reason, while the run succeeds and the others train (its own module, so that the test workers
share the demos between them)."""

from __future__ import annotations

import re

import pytest
from factory_cli import factory
from test_demo_dates import SCORED, WAITING


@pytest.mark.e2e
def test_a_demo_too_short_for_a_use_case_says_what_it_skipped_and_succeeds(tmp_path):
    """60 days leave purchase_propensity one weekly cutoff (28 warm-up days, 30-day labels): it is not
    trained, with the reason; the run does not fail for it, and the other use cases train."""
    done = factory(tmp_path / "home", "demo", "--end", "2025-12-31", "--days", 60, "--lines-per-day", 100,
                   "--products", 20, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert re.search(rf"^  {WAITING}\s+skipped: its training set as of \S+ has \d+ rows over 1 distinct time\(s\); "
                     r"a time split into train, validation and test needs at least 3", done.stdout, re.M), out[-4000:]
    for use_case in SCORED:
        assert re.search(rf"^  {use_case}\s+(lightgbm|xgboost): ", done.stdout, re.M)
    assert "purchase_propensity_model beats_baseline (warning)" in out or "check beats_baseline FAILED (warning)" in out
