"""Values made plain for strict JSON: the audit bundle, HTTP answers and recorded parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any


def jsonable(obj: Any) -> Any:
    """NaN/inf -> null (strict JSON has no NaN, and clients' parsers reject it), tuples -> lists,
    numpy scalars -> Python numbers, dates -> ISO text, anything else -> its text."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        return jsonable(obj.item())
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    return str(obj)
