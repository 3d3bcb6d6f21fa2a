"""Use-case declarations: the shipped ones load, and every kind of mistake fails at load, naming the
file, the field and the fix (the same checks `dg check defs` reports, through the code location)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from factory_assets.assembly.catalogue import feature_sets
from factory_assets.assembly.specs import (
    USE_CASES_DIR,
    UseCaseSpecError,
    declaration_files,
    load_use_case,
    load_use_cases,
)
from factory_assets.components.use_case import use_case_builder
from factory_assets.lib.locations import workspace_locations


def _declared_names() -> set[str]:
    """The use cases declared in every location's defs folder, by their folder names."""
    return {p.parent.name for loc in workspace_locations() if loc.defs_folder.is_dir()
            for p in declaration_files(loc.defs_folder)}


def test_every_declaration_of_every_location_loads_and_names_known_feature_sets(monkeypatch):
    for location in workspace_locations():  # a unit's own builders import from its folder, as in its location
        monkeypatch.syspath_prepend(str(location.root))
    files = {p.parent.name: p for loc in workspace_locations() if loc.defs_folder.is_dir()
             for p in declaration_files(loc.defs_folder)}
    specs = load_use_cases()
    assert set(specs) == _declared_names() and len(specs) >= 4
    assert {"late_delivery", "demand_forecast", "purchase_propensity", "complaint_risk"} <= set(specs)
    known = feature_sets()
    for name, spec in specs.items():
        assert set(spec.feature_sets) <= set(known), name
        assert spec.label_delay_days >= 0
        use_case_builder(spec, files[name], known)  # every load-time check passes
    late = specs["late_delivery"]
    assert late.engines == ("lightgbm", "xgboost") and late.entity == ("order_line_id",)
    assert specs["demand_forecast"].entity == ("product_id", "warehouse_id")


def _base() -> dict:
    return yaml.safe_load((USE_CASES_DIR / "late_delivery" / "defs.yaml").read_text())


def _write(folder: Path, name: str, **changes) -> Path:
    doc = _base()
    raw = doc["attributes"]
    raw["name"] = name
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    path = folder / name / "defs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"template": "clustering"}, "template", "binary_classification"),
        ({"risk_tier": "extreme"}, "risk_tier", "'low', 'medium', 'high'"),
        ({"target": None}, "target", "Field required"),
        ({"label_delay_days": None}, "label_delay_days", "Field required"),
        ({"metric": "accuracy"}, "metric", "wape"),
        ({"metric": "wape"}, "metric", "does not fit template"),
        ({"engine": "catboost"}, "engine", "lightgbm"),
        ({"owner": "bob"}, "owner", "team:<name>"),
        ({"horizon_days": -1}, "horizon_days", "greater than or equal"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"uses": ["Retention Campaigns"]}, "uses", "snake_case"),
        ({"training_set": "Order Lines"}, "training_set", "package.module:NAME"),
        ({"training_set": {"spine": "select 1"}}, "training_set", "'products'"),
        ({"target": "order_line_id"}, "target", "must be a column of its own"),
        ({"max_training_rows": 10}, "max_training_rows", "greater than or equal to 1000"),
    ],
)
def test_broken_declaration_names_file_and_field(tmp_path, changes, field, fragment):
    path = _write(tmp_path, "broken_case", **changes)
    with pytest.raises(UseCaseSpecError) as info:
        load_use_cases(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert f"'{field}" in message
    assert fragment in message


DECLARED = {
    "training_set": {"products": ["fct_order_lines"],
                     "spine": "select order_line_id, customer_key, ordered_at, region, quantity, is_late "
                              "from {{ fct_order_lines }}"},
    "target": "is_late", "entity": ["order_line_id"], "time_column": "ordered_at",
    "feature_sets": ["customer_activity"], "drift_exclude": [],
}


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"feature_sets": ["customer_activity", "nope"]}, "feature_sets", "unknown feature set(s) ['nope']"),
        ({"training_set": {**DECLARED["training_set"], "products": ["no_such_product"]}}, "training_set.products",
         "unknown data product(s) ['no_such_product']"),
        ({"training_set": {**DECLARED["training_set"], "spine": "select * from {{ calendar }}"}},
         "training_set.spine", "'calendar' is undefined"),
        ({"entity": ["no_such_column"]}, "entity", "['no_such_column'] are not given by the spine"),
        ({"time_column": "region"}, "time_column", "not a DATE or TIMESTAMP"),
        ({"target": "region"}, "target", "cannot learn"),
        ({"target": "nope"}, "target", "is not a column of training_set.spine"),
        ({"training_set": {**DECLARED["training_set"], "spine": "select order_line_id, ordered_at, is_late "
                                                                 "from {{ fct_order_lines }}"}},
         "feature_sets", "spine gives no ['customer_key']"),
        ({"target": "orders_30d", "training_set": {**DECLARED["training_set"], "spine":
            "select order_line_id, customer_key, ordered_at, 1 as orders_30d from {{ fct_order_lines }}"},
          "template": "regression", "metric": "mae"}, "target", "also a feature of feature set 'customer_activity'"),
        ({"uses": ["credit_scoring"]}, "uses", "prohibited by the policy"),
        ({"uses": ["retention_campaigns"]}, "uses", "not allowed for the medium tier"),
        ({"training_set": "factory_assets.assembly.training_sets:NOPE"}, "training_set", "cannot import"),
    ],
)
def test_declaration_checked_against_products_feature_sets_and_policy(tmp_path, changes, field, fragment):
    path = _write(tmp_path, "checked_case", **{**DECLARED, **changes})
    spec = load_use_case(path)
    with pytest.raises(UseCaseSpecError) as info:
        use_case_builder(spec, path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and fragment in message


def test_a_declared_spine_over_a_product_with_integer_keys_builds(tmp_path):
    path = _write(tmp_path, "ok_case", **DECLARED)
    builder = use_case_builder(load_use_case(path), path)
    assert builder.labels == frozenset({"is_late"}) and builder.products == ("fct_order_lines",)


def test_duplicate_name_across_locations_names_both_files(tmp_path):
    first = _write(tmp_path / "core", "same_case")
    second = _write(tmp_path / "unit", "same_case")
    with pytest.raises(UseCaseSpecError) as info:
        load_use_cases([tmp_path / "core", tmp_path / "unit"])
    assert str(first) in str(info.value) and str(second) in str(info.value) and "unique across" in str(info.value)


def test_name_must_equal_folder_name(tmp_path):
    path = _write(tmp_path, "some_case")
    path.parent.rename(tmp_path / "other_case")
    with pytest.raises(UseCaseSpecError, match=r"other_case/defs\.yaml.*'name'"):
        load_use_cases(tmp_path)


def test_unreadable_yaml_and_non_mapping(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(UseCaseSpecError, match=r"bad\.yaml"):
        load_use_case(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(UseCaseSpecError, match=r"bad\.yaml.*mapping"):
        load_use_case(tmp_path / "bad.yaml")


def test_copy_of_shipped_folder_loads_and_value_is_optional(tmp_path):
    shutil.copytree(USE_CASES_DIR, tmp_path / "uc")
    _write(tmp_path / "uc", "no_value_case", value=None)
    specs = load_use_cases(tmp_path / "uc")
    assert specs["no_value_case"].value is None and len(specs) == len(declaration_files(USE_CASES_DIR)) + 1
