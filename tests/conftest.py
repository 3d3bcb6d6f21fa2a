"""Shared fixtures: every test gets its own FACTORY_HOME under tmp_path; nothing touches ./.factory."""

from __future__ import annotations

import os

import pytest

# dbt steps that fail to start retry after FACTORY_DBT_RETRY_DELAY_S (10 s in production); read when
# factory_assets.processing.dbt_assets is imported, so set before any test imports it.
os.environ.setdefault("FACTORY_DBT_RETRY_DELAY_S", "0.5")

from factory_assets.settings import FactoryPaths


@pytest.fixture(scope="session", autouse=True)
def _no_dbt_column_metadata():
    """dbt column schema and lineage cost about 1 s per model per run; only the module that tests
    them (test_foundation_e2e) turns them back on. Subprocesses (CLI, UI) inherit the setting."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_DBT_COLUMN_METADATA", "0")
    yield
    patch.undo()


@pytest.fixture
def paths(tmp_path, monkeypatch) -> FactoryPaths:
    home = tmp_path / "factory"
    monkeypatch.setenv("FACTORY_HOME", str(home))
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    return FactoryPaths(home).create()


@pytest.fixture
def warehouse(paths):
    """A connection to the test's warehouse (the lake under its FACTORY_HOME by default)."""
    from factory_assets.lib.warehouse import open_warehouse

    with open_warehouse(paths) as conn:
        yield conn


# ---- Test tiers (issue 23, item 6) ----------------------------------------------------------------
# Every test has exactly one tier marker; this hook gives it (pyproject.toml lists the markers):
#   unit         pure: no Dagster run, no dbt, no subprocess (CLI, Chromium, PostgreSQL, Dask), each test
#                well under 2 s, so the whole tier runs in under a minute on 2 cores:
#                `python3 tasks.py test --fast` (ruff, then `pytest -m unit`);
#   integration  the rest of what is not e2e: a few assets through Dagster, dbt builds, the CLI in a
#                subprocess, servers, model training;
#   e2e          marked on the test itself (@pytest.mark.e2e or a module's pytestmark): the chain end to end.
# Only unit tests are listed here, by module or by test function; a new test is integration until it is
# listed. Which tests are pure was measured per test (subprocesses, Dagster runs and dbt invocations
# recorded by a probe, durations by pytest --durations). tests/test_test_tiers.py keeps the lists true.
TIERS = ("unit", "integration", "e2e")

#: modules whose every test is a unit test
UNIT_MODULES = frozenset({
    "test_approvals.py",
    "test_artifact_server.py",
    "test_asset_spec_snapshot.py",
    "test_compat.py",
    "test_contracts.py",
    "test_landing_sensor.py",
    "test_policy.py",
    "test_scoring_features.py",
    "test_test_tiers.py",
    "test_use_case_specs.py",
    "test_yaml_files.py",
})

#: the unit tests of modules that also hold integration or e2e tests, by test function (all its parameters)
UNIT_TESTS: dict[str, frozenset[str]] = {
    "test_asset_metadata.py": frozenset({
        "test_a_dbt_test_is_named_by_its_test_and_columns_not_by_dbts_truncated_name",
        "test_a_subset_of_several_models_is_one_select_value_that_dagster_dbt_passes_whole",
        "test_catalog_types_are_spelled_as_duckdb_and_the_contracts_spell_them",
        "test_column_lineage_table_traces_each_column_through_the_models_to_raw_columns",
        "test_dagster_dbt_metadata_keys_take_the_factorys_one_name_per_quantity",
        "test_every_dbt_check_has_a_whole_readable_name_unique_on_its_asset_and_selects_its_dbt_test",
        "test_floats_are_rounded_to_four_significant_digits_or_three_decimals_and_seconds_to_hundredths",
        "test_the_asset_definition_shows_each_columns_contract_description_classification_and_type",
        "test_two_tests_that_would_share_a_name_on_one_asset_keep_their_arguments",
    }),
    "test_audit.py": frozenset({
        "test_a_version_whose_manifest_was_edited_is_audited_with_the_problem",
        "test_alias_resolves_and_champion_flag",
        "test_broken_bundle_fails_naming_the_path",
        "test_changed_report_is_refused",
        "test_every_violation_is_listed_and_nothing_is_written",
        "test_html_escapes_every_value",
        "test_policy_version_falls_back_to_the_evaluation",
        "test_schema_documents_every_property",
        "test_unknown_use_case_or_version_names_what_exists",
        "test_written_bundle_is_self_contained",
    }),
    "test_bench_tools.py": frozenset({
        "test_every_step_maps_to_the_layer_of_its_assets",
        "test_scaling_figure_is_the_worst_doubling",
    }),
    "test_business_unit.py": frozenset({
        "test_business_unit_imports_only_the_public_api",
        "test_scoring_set_has_the_training_features_and_no_label",
        "test_training_set_does_not_change_when_later_data_arrives_or_is_rewritten",
        "test_training_set_rows_are_point_in_time_exact",
        "test_unknown_training_set_fails_at_definition_time_naming_the_file_and_the_fix",
        "test_use_case_is_governed_like_a_core_one",
        "test_workspace_declares_the_core_then_the_business_unit_location",
    }),
    "test_text_template.py": frozenset({
        "test_hashing_is_stateless_and_sees_words_and_pairs",
        "test_template_and_declaration_refuse_text_where_it_does_not_belong",
        "test_the_tier_decides_whether_text_may_be_a_feature",
    }),
    "test_cli.py": frozenset({
        "test_a_contract_error_reaching_the_command_line_is_its_message",
        "test_every_option_has_help_text",
        "test_run_plans_default_to_the_last_landed_day",
        "test_tables_align_their_columns",
    }),
    "test_code_location.py": frozenset({
        "test_a_manifest_older_than_the_dbt_sources_is_reported",
        "test_dbt_models_keep_their_layer_keys_lineage_and_test_checks",
        "test_every_asset_is_in_its_layer_group_with_an_owner_and_a_description",
        "test_every_check_sensor_schedule_and_job_says_what_it_does_and_who_owns_it",
        "test_old_dbt_run_folders_are_pruned",
        "test_the_nightly_chain_runs_landing_to_monitoring_and_training_is_weekly_and_on_request",
    }),
    "test_datacontract_cli.py": frozenset({
        "test_the_committed_contracts_are_all_tested",
    }),
    "test_dbt_cli.py": frozenset({
        "test_a_manifest_parsed_for_another_warehouse_file_is_retargeted_to_this_one",
        "test_a_subset_selects_its_models_and_the_whole_step_selects_the_folder",
        "test_artifacts_and_dbt_log_go_to_the_invocation_folder",
        "test_keeping_the_parse_replaces_it_whole_and_a_failed_copy_keeps_the_last_one",
        "test_row_counts_are_exact_for_tables_and_leave_views_out",
        "test_run_results_become_model_and_test_results_with_their_tested_model",
        "test_summary_names_tests_that_did_not_pass",
    }),
    "test_dbt_project.py": frozenset({
        "test_a_product_contract_with_a_pii_column_is_rejected",
        "test_an_edited_contract_is_reported_as_drift",
        "test_committed_mart_yaml_equals_what_the_contracts_generate",
        "test_every_mart_has_a_product_contract",
        "test_generated_yaml_carries_contract_metadata_constraints_and_tests",
    }),
    "test_execution.py": frozenset({
        "test_a_wrong_setting_says_what_to_choose",
        "test_in_process_by_default_and_the_named_executors_otherwise",
        "test_the_embedded_profile_watches_runs_and_retries_them",
    }),
    "test_ingest.py": frozenset({
        "test_jsonl_errors_name_the_line",
    }),
    "test_instance_storage.py": frozenset({
        "test_engine_cache_reuses_evicts_and_drops_a_forked_parents_engines",
    }),
    "test_monitoring.py": frozenset({
        "test_a_partition_is_replaced_atomically",
        "test_limits_come_from_the_policy_and_a_bad_method_file_names_the_field",
        "test_override_feedback_joins_entities_of_any_type",
        "test_relative_drop_respects_the_metric_direction",
        "test_the_sensor_reads_recorded_breaches_and_requests_one_run_per_use_case",
    }),
    "test_raw_faults.py": frozenset({
        "test_a_future_dated_name_does_not_stop_the_default_run",
        "test_a_raw_contract_states_its_window_and_file_pattern_correctly",
    }),
    "test_raw_sources.py": frozenset({
        "test_a_new_raw_contract_gets_its_dbt_source_and_a_removed_one_loses_it",
        "test_a_raw_contract_says_what_ingestion_needs",
        "test_a_source_name_declared_in_two_folders_fails_naming_both_files",
        "test_committed_dbt_sources_equal_what_the_raw_contracts_generate",
        "test_the_core_assets_and_raw_sources_are_the_contract_files",
        "test_the_generator_command_checks_sources_and_says_which_file_drifted",
    }),
    "test_registry.py": frozenset({
        "test_a_deleted_model_file_is_a_clear_error_not_a_bare_file_not_found",
        "test_a_torn_history_line_from_a_kill_mid_append_is_ignored_and_cut_off",
        "test_an_alias_change_and_its_history_line_are_one_atomic_step",
        "test_an_edited_manifest_is_refused_naming_the_version_the_file_and_the_fix",
        "test_every_file_of_a_version_is_covered",
        "test_gate_first_model",
        "test_gate_lower_is_better",
        "test_gate_never_promotes_below_baseline",
        "test_gate_refuses_within_margin_and_accepts_beyond",
        "test_gate_refuses_worse_than_champion",
        "test_orphan_temporary_folders_of_a_crashed_register_are_removed_by_the_next",
        "test_register_is_idempotent",
        "test_tampered_model_is_detected",
        "test_unknown_names_raise_key_errors",
        "test_versions_registered_before_content_hashes_are_sealed_once_then_a_stripped_hash_is_refused",
    }),
    "test_run_faults.py": frozenset({
        "test_a_full_disk_outside_a_run_exits_1_naming_the_file",
        "test_the_back_off_doubles_up_to_two_seconds_and_stops_at_the_timeout",
    }),
    "test_scoring_service.py": frozenset({
        "test_a_model_without_a_recorded_schema_still_scores_with_names_and_categories",
        "test_describe_and_list_models_tell_a_caller_what_to_send",
        "test_empty_input_and_unknown_models_are_clear_errors",
        "test_good_input_gets_the_models_predictions_and_recovers_the_signal",
        "test_http_bad_requests_get_per_column_errors_without_a_traceback",
        "test_http_scores_good_rows_like_the_python_api",
        "test_http_unexpected_failures_are_a_generic_500_logged_on_the_server",
        "test_http_unknown_models_paths_and_big_bodies",
        "test_missing_column_and_unreadable_values_are_errors_naming_column_and_rows",
        "test_unknown_category_out_of_range_and_unexpected_nulls_are_warnings",
    }),
    "test_services.py": frozenset({
        "test_every_service_is_called_over_http_from_its_openapi_document",
        "test_http_refuses_callers_the_policy_does_not_allow_bad_rows_and_big_bodies",
        "test_python_calls_follow_the_policy_and_are_recorded_as_usage_without_values",
        "test_the_catalogue_lists_champions_and_function_services_with_owners_tiers_and_contracts",
        "test_the_sentiment_service_scores_with_the_dbt_projects_lexicon",
    }),
    "test_setup_gpu.py": frozenset({
        "test_the_cuda_wheel_has_the_locked_version_and_a_machine_change_reinstalls",
    }),
    "test_signed_approvals.py": frozenset({
        "test_a_log_written_before_signatures_keeps_its_lines_which_no_longer_count",
        "test_a_replayed_old_approval_does_not_undo_a_later_rejection",
        "test_a_tampered_log_blocks_promotion_and_refuses_new_lines",
        "test_a_valid_two_person_approval_passes_the_high_tier_and_lets_the_model_score",
        "test_an_edited_and_rehashed_manifest_withdraws_the_approvals_signed_before",
        "test_an_invalid_approvers_file_names_the_file_and_the_field",
        "test_an_unsigned_or_wrongly_signed_decision_does_not_count",
        "test_factory_approve_signs_with_the_key_and_refuses_what_would_not_count",
        "test_keygen_writes_a_private_key_only_its_owner_reads_and_prints_the_entry_to_declare",
        "test_one_key_under_two_names_counts_once",
        "test_the_trainers_own_approval_does_not_count",
    }),
    "test_simulator.py": frozenset({
        "test_deliveries_match_order_lines",
        "test_drift_scenario",
        "test_file_layout_names_and_columns",
        "test_holiday_publications_cover_next_14_days",
        "test_invalid_config_is_rejected",
        "test_late_deliveries_cause_tickets",
        "test_late_rate_and_supplier_reliability",
        "test_lateness_is_learnable_from_observable_features",
        "test_negative_tickets_cut_future_purchases",
        "test_no_drift_means_no_marketplace_and_stable_prices",
        "test_no_hidden_truth_in_landing_files",
        "test_operators_override_3pct_of_dispatched_lines_mostly_right",
        "test_promotions_set_discount_and_lift_demand",
        "test_rewriting_into_same_folder_is_idempotent",
        "test_rfm_predicts_next_30_days",
        "test_same_seed_gives_identical_files_and_other_seed_differs",
        "test_storms_and_delay_events_raise_lateness",
        "test_telemetry_one_reading_per_shipment_on_dispatch_day",
        "test_ticket_text_carries_sentiment",
        "test_unit_auc_helper",
        "test_value_formats_in_files",
        "test_volume_matches_config",
        "test_weather_rows_and_storm_rate",
        "test_weekly_seasonality",
    }),
    "test_ui_stop.py": frozenset({
        "test_tasks_py_ui_becomes_factory_ui_so_that_signals_reach_it",
    }),
    "test_value.py": frozenset({
        "test_compute_per_night_counts_only_the_use_cases_steps_of_nights_that_ran_them",
        "test_live_lift_is_relative_to_the_baseline_in_the_metrics_direction",
    }),
}


def listed_tier(module: str, function: str) -> str:
    """The tier these lists give a test of ``module`` (a file name) named ``function``."""
    return "unit" if module in UNIT_MODULES or function in UNIT_TESTS.get(module, ()) else "integration"


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers it adds
def pytest_collection_modifyitems(config, items):
    wrong = []
    for item in items:
        marked = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        listed = listed_tier(item.path.name, getattr(item, "originalname", item.name))
        if not marked:
            item.add_marker(listed)
        elif len(marked) > 1 or (listed == "unit" and marked != {"unit"}):
            wrong.append(f"{item.nodeid}: marked {sorted(marked)}, listed {listed}")
    if wrong:
        raise pytest.UsageError("every test has exactly one tier (tests/conftest.py, 'Test tiers'):\n"
                                + "\n".join(wrong))
