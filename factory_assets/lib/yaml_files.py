"""YAML parsing with libyaml's C parser when PyYAML has it (the PyPI wheels do).

Contracts, use cases and the policy are parsed when the code location loads, so the parser's speed
is start-up time (bench/bench_startup.py; the figures: README, "What the benchmarks found").
"""

from __future__ import annotations

from typing import Any

import yaml

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load``, faster: the same safe constructors over the C scanner and parser."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # a safe loader
