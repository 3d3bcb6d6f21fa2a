"""The demo's default path (generate, history, training and gates, live nights, monitoring) ends the
same way whatever day it ends on: every use case that is not waiting for approvals is promoted and
scores, and the one that waits says so, with the gate's own reason in the log.

Three end dates in different seasons (winter holidays, spring, late autumn), at a small scale
(`--lines-per-day 300 --products 40`, one live night) so the three demos take minutes together.
"""

from __future__ import annotations

import re

import pytest
from factory_cli import factory

END_DATES = ("2025-12-31", "2026-04-15", "2026-12-01")  # the last: the day the issue saw demand fail
SCORED = ("demand_forecast", "late_delivery")  # low and medium tier: promoted by the rules alone
WAITING = "purchase_propensity"  # high tier: two approvals


@pytest.mark.e2e
@pytest.mark.parametrize("end", END_DATES)
def test_the_demo_scores_every_use_case_not_waiting_for_approvals(tmp_path, end):
    done = factory(tmp_path / "home", "demo", "--end", end, "--lines-per-day", 300, "--products", 40,
                   "--live-days", 1, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    rows = dict(re.findall(r"^  (\w+_predictions)\s+(\d+)$", done.stdout, re.M))
    for use_case in SCORED:
        assert int(rows[f"{use_case}_predictions"]) > 0, out[-4000:]
        assert re.search(rf"^  {use_case}\s+promoted", done.stdout, re.M), out[-4000:]
    assert int(rows[f"{WAITING}_predictions"]) == 0
    assert re.search(rf"^  {WAITING}\s+stays challenger: .*0 distinct approval\(s\) < required 2", done.stdout, re.M)
    # the nightly log gives the gate's reason, not "no champion yet"
    assert re.search(rf"warning: {WAITING} has no champion: its last promotion gate \(run \w+\) kept the challenger, "
                     r"not promoted by policy [\d.]+ on holdout", out), out[-4000:]  # progress lines are cut to a width
    assert "no champion yet" not in out

