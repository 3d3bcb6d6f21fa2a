"""Metadata as the open-source Dagster UI shows it: rounded numbers, and one name per quantity.

The UI prints a float's full repr (``44.852945507000186``) and plots each metadata key of an
asset's materializations over time, so a quantity recorded under two names (dagster-dbt's
``Execution Duration``, ours ``execution_duration``) is two half-empty plots. Every asset that
builds metadata passes it through :func:`round_metadata`; the dbt step also through
:func:`unify_names`, which renames what dagster-dbt records to the factory's names.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import dagster as dg

#: The factory's one name per quantity (dagster-dbt's names are renamed to these).
EXECUTION_DURATION = "execution_duration"  # seconds a dbt node ran
FAILING_ROWS = "failing_rows"  # rows a check found in breach
DBT_STATUS = "dbt_status"  # dbt's status of the node (success, pass, fail, warn, ...)

#: dagster-dbt's metadata keys -> the factory's.
RENAMED = {
    "Execution Duration": EXECUTION_DURATION,
    "dagster_dbt/failed_row_count": FAILING_ROWS,
    "status": DBT_STATUS,
}

#: Significant digits of a float below 1 in magnitude; larger ones keep their integer digits and
#: at most ``DECIMALS`` decimals. Durations in seconds keep ``SECONDS_DECIMALS``.
SIGNIFICANT = 4
DECIMALS = 3
SECONDS_DECIMALS = 2


def round_float(value: float, significant: int = SIGNIFICANT, decimals: int = DECIMALS) -> float:
    """``value`` to ``significant`` significant digits when below 1 in magnitude (0.000123456 ->
    0.0001235), else to ``decimals`` decimals (44.852945507000186 -> 44.853; integer digits are
    never rounded away, so 123456.789 stays 123456.789). NaN and infinities are kept."""
    value = float(value)
    if not math.isfinite(value) or value == 0:
        return value
    magnitude = abs(value)
    if magnitude >= 1:
        return round(value, decimals)
    return round(value, significant - 1 - math.floor(math.log10(magnitude)))


def round_seconds(value: float) -> float:
    """A duration in seconds, to hundredths (a second's hundredth is the clock's noise)."""
    value = float(value)
    return round(value, SECONDS_DECIMALS) if math.isfinite(value) else value


def is_duration(key: str) -> bool:
    """A key whose value is seconds: ``execution_duration``, ``training_seconds``, ``*_duration``."""
    lowered = key.lower()
    return "duration" in lowered or lowered.endswith(("_seconds", "_s"))


def _is_float(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (numbers.Integral, bool))


def rounded(key: str, value: Any) -> Any:
    """One metadata value with its float rounded (a plain float or a ``MetadataValue.float``);
    anything else as it is (text, ints, JSON, tables: a JSON sample shows the data's own values)."""
    if isinstance(value, dg.FloatMetadataValue):
        if value.value is None:
            return value
        return dg.MetadataValue.float(rounded(key, value.value))
    if _is_float(value):
        return round_seconds(value) if is_duration(key) else round_float(value)
    return value


def round_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` with every float rounded (see :func:`round_float`, :func:`round_seconds`)."""
    return {key: rounded(key, value) for key, value in metadata.items()}


def unify_names(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` with dagster-dbt's keys under the factory's names (``RENAMED``); a key the
    factory already set wins over dagster-dbt's."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        name = RENAMED.get(key, key)
        if name != key and name in metadata:
            continue
        out[name] = value
    return out
