"""Every declaration file (contract, use case, feature set, policy, approvers, thresholds) is read by
one reader, so a broken file is named the same way everywhere: file, line, column, problem."""

from __future__ import annotations

import pytest

from factory_assets.assembly.catalogue import load_feature_set_file
from factory_assets.assembly.specs import UseCaseSpecError, load_use_case
from factory_assets.feedback.monitoring import MonitoringConfigError, load_monitoring_config
from factory_assets.governance.approvals import ApproversError, load_approvers
from factory_assets.governance.policy import PolicyError, load_policy
from factory_assets.lib.contracts import ContractError, load_contract
from factory_assets.lib.yaml_files import read_yaml_file

BROKEN = "name: orders\nowner: team-a\n  schema: [id\n"


def test_a_syntax_mistake_names_the_file_line_column_and_problem(tmp_path):
    path = tmp_path / "doc.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ValueError) as caught:
        read_yaml_file(path, ValueError)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 3, column 9: cannot read YAML: ")
    assert "mapping values are not allowed" in message and message.endswith("fix the file's syntax")


def test_a_missing_file_says_what_to_do_and_a_valid_one_is_parsed(tmp_path):
    with pytest.raises(KeyError, match="cannot be read .No such file or directory.; declare it"):
        read_yaml_file(tmp_path / "absent.yaml", KeyError, "declare it")
    (tmp_path / "ok.yaml").write_text("a: [1, 2]\nb: {c: x}\n")
    assert read_yaml_file(tmp_path / "ok.yaml", ValueError) == {"a": [1, 2], "b": {"c": "x"}}


@pytest.mark.parametrize(("load", "error"), [
    (load_policy, PolicyError),
    (load_approvers, ApproversError),
    (load_contract, ContractError),
    (load_use_case, UseCaseSpecError),
    (lambda path: load_monitoring_config(path), MonitoringConfigError),
    (lambda path: load_feature_set_file(path, path.parent), UseCaseSpecError),
])
def test_every_declaration_loader_names_a_broken_file_the_same_way(tmp_path, load, error):
    path = tmp_path / "defs.yaml"
    path.write_text(BROKEN)
    with pytest.raises(error, match=r"defs\.yaml, line 3, column 9: cannot read YAML: .*fix the file's syntax"):
        load(path)


def test_a_feature_set_file_that_is_not_a_mapping_is_refused_by_name(tmp_path):
    path = tmp_path / "defs.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(UseCaseSpecError, match=r"defs\.yaml: expected a mapping with 'type' and 'attributes', got list"):
        load_feature_set_file(path, tmp_path)
