"""Use-case specs: the shipped YAML files load; every kind of mistake names the file and the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from factory_assets.assembly.features import FEATURE_SETS
from factory_assets.assembly.specs import USE_CASES_DIR, UseCaseSpecError, load_use_case, load_use_cases


def test_shipped_use_cases_load():
    specs = load_use_cases()
    assert set(specs) == {"late_delivery", "demand_forecast", "purchase_propensity"}
    late, demand, prop = specs["late_delivery"], specs["demand_forecast"], specs["purchase_propensity"]
    assert (late.template, late.target, late.risk_tier, late.business_unit, late.metric, late.engine) == (
        "binary_classification", "is_late", "medium", "logistics", "auc", "both")
    assert late.engines == ("lightgbm", "xgboost")
    assert (demand.template, demand.horizon_days, demand.target, demand.risk_tier, demand.business_unit,
            demand.metric, demand.engine) == ("forecasting", 7, "units", "low", "supply_planning", "wape", "lightgbm")
    assert demand.entity == ("product_id", "warehouse_id")
    assert (prop.template, prop.horizon_days, prop.risk_tier, prop.business_unit, prop.metric, prop.engine) == (
        "binary_classification", 30, "high", "marketing", "auc", "xgboost")
    # customer_activity is reused by two use cases
    assert "customer_activity" in late.feature_sets and "customer_activity" in prop.feature_sets
    for spec in specs.values():
        assert set(spec.feature_sets) <= set(FEATURE_SETS)


def _write(folder: Path, name: str, **changes) -> Path:
    raw = yaml.safe_load((USE_CASES_DIR / "late_delivery.yaml").read_text())
    raw["name"] = name
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"template": "clustering"}, "template", "binary_classification"),
        ({"feature_sets": ["customer_activity", "nope"]}, "feature_sets", "nope"),
        ({"risk_tier": "extreme"}, "risk_tier", "'low', 'medium', 'high'"),
        ({"target": None}, "target", "Field required"),
        ({"metric": "accuracy"}, "metric", "wape"),
        ({"metric": "wape"}, "metric", "does not fit template"),
        ({"engine": "catboost"}, "engine", "lightgbm"),
        ({"owner": "bob"}, "owner", "team:<name>"),
        ({"horizon_days": -1}, "horizon_days", "greater than or equal"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"uses": ["Retention Campaigns"]}, "uses", "snake_case"),
        # any snake_case builder name loads; whether it is known is checked when the assets are built
        # (tests/test_business_unit.py)
        ({"training_set": "Order Lines"}, "training_set", "snake_case"),
        ({"max_training_rows": 10}, "max_training_rows", "greater than or equal to 1000"),
    ],
)
def test_broken_spec_names_file_and_field(tmp_path, changes, field, fragment):
    path = _write(tmp_path, "broken_case", **changes)
    with pytest.raises(UseCaseSpecError) as info:
        load_use_cases(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert f"'{field}'" in message
    assert fragment in message


def test_name_must_equal_file_stem(tmp_path):
    path = _write(tmp_path, "some_case")
    path.rename(tmp_path / "other_case.yaml")
    with pytest.raises(UseCaseSpecError, match=r"other_case\.yaml.*'name'"):
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
    assert specs["no_value_case"].value is None and len(specs) == 4
