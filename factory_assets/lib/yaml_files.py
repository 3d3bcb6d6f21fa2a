"""YAML parsing with libyaml's C parser when PyYAML has it (the PyPI wheels do), and the one way a
declaration file (contract, use case, policy, approvers, thresholds) is read and its mistakes named.

Contracts, use cases and the policy are parsed when the code location loads, so the parser's speed
is start-up time (bench/bench_startup.py; the figures: README, "What the benchmarks found").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load``, faster: the same safe constructors over the C scanner and parser."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # a safe loader


def read_yaml_file(path: str | Path, error: type[Exception], missing_hint: str = "") -> Any:
    """The parsed document of ``path``. A file that cannot be read or is not YAML raises ``error``
    naming the file, and for a syntax mistake its line and column (1-based) and the problem: the
    reader of the message goes straight to the spot. ``missing_hint`` says what to do when the file
    is absent or unreadable."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        hint = f"; {missing_hint}" if missing_hint else ""
        raise error(f"{path}: cannot read YAML: the file cannot be read ({exc.strerror or exc}){hint}") from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}{_where(exc)}: cannot read YAML: {_problem(exc)}; fix the file's syntax") from None


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _problem(exc: yaml.YAMLError) -> str:
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p)
    return text or str(exc).splitlines()[0]
