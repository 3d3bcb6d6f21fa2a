"""The test tiers (tests/conftest.py): every test has exactly one, and the unit lists name real tests."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import TIERS, UNIT_MODULES, UNIT_TESTS

TESTS = Path(__file__).resolve().parent


def _test_functions(module: str) -> set[str]:
    tree = ast.parse((TESTS / module).read_text())
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")}


def test_every_collected_test_has_exactly_one_tier(request):
    """Whatever this session collected (all tests under `python3 tasks.py test`, the unit tier under
    --fast): one tier marker each."""
    wrong = [(item.nodeid, names) for item in request.session.items
             if len(names := [m.name for m in item.iter_markers() if m.name in TIERS]) != 1]
    assert request.session.items and not wrong, wrong


def test_the_unit_lists_name_modules_and_functions_that_exist():
    """A renamed or removed test must not linger in the lists (its replacement would silently turn
    integration)."""
    missing = [m for m in UNIT_MODULES | set(UNIT_TESTS) if not (TESTS / m).is_file()]
    assert not missing, f"tests/conftest.py lists modules that do not exist: {missing}"
    stale = {m: sorted(names - _test_functions(m)) for m, names in UNIT_TESTS.items()}
    assert not {m: n for m, n in stale.items() if n}, f"tests/conftest.py UNIT_TESTS names no such test: {stale}"
    assert not UNIT_MODULES & set(UNIT_TESTS), "a module is listed whole and by function"


def test_a_module_listed_by_function_is_not_all_unit():
    """When every test of a module is unit, list the module whole (UNIT_MODULES): its new tests join the tier."""
    whole = [m for m, names in UNIT_TESTS.items() if names == _test_functions(m)]
    assert not whole, f"list these modules in UNIT_MODULES instead: {whole}"
