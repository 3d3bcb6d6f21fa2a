"""Onboarding a second domain (issue 18, "Done when"): a business unit in a domain the simulator
knows nothing about goes from landing files to a governed, scored and monitored use case with
files under ``business_units/<unit>/`` and one entry in ``workspace.yaml``, and no core change.

The domain is a clinic's emergency department: one raw feed of visits (integer ids, days in 2019),
the clinic's own dbt project turning it into a contracted data product, a declared feature set (a
patient's earlier visits) and a declared use case: will the patient come back within 30 days
(``label_delay_days: 30``), scored the night after the visit.

The test copies the working tree into a temporary git repository, writes the unit there, generates
121 days of visits (~40 a day) with a learnable signal (frail patients come back more often, and
come more often before), and runs, in a fresh interpreter whose ``factory_assets`` is the copy's
(FACTORY_PARTITIONS_START and FACTORY_WORKSPACE are read at import): the unit's nightly job over
the first 90 days (raw -> dbt products -> feature set), its training job (training set, model,
promotion gate), the nightly job of the next day (scores: exactly the visits whose 30 days are
still open), the following days' products, and the night 30 days after the scored day (monitoring
with every score labelled). Then the portfolio lists the use case and ``factory audit`` writes its
bundle, and ``git status`` in the copy shows nothing changed outside the unit and workspace.yaml.
Real dbt, DuckDB, LightGBM and Evidently throughout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]

UNIT, USE_CASE, SOURCE, PRODUCT, FEATURE_SET = "clinic", "ed_return_30d", "ed_visits", "clinic_visits", "patient_history"
START = date(2019, 3, 1)
TRAINED_ON_DAYS = 90  # landed and built before training
SCORED = START + timedelta(days=TRAINED_ON_DAYS)  # the night after training: first scored day
LABEL_DELAY = 30
LABELLED = SCORED + timedelta(days=LABEL_DELAY)  # the night whose monitoring sees SCORED's outcomes
LAST = LABELLED
PATIENTS, VISITS_PER_DAY, SEED = 2000, 40, 18
DEPARTMENTS = ("emergency", "cardiology", "respiratory", "general")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

# ------------------------------------------------------------------------------------------------
# The business unit: every file it needs, as its team would write them
# ------------------------------------------------------------------------------------------------

_OWNER_TEAM = """\
team:
  name: clinic-data
  members:
    - username: clinic-data@clinic.example
      role: owner
"""

_VISIT_COLUMNS = """\
      - name: visit_id
        logicalType: integer
        physicalType: INTEGER
        required: true
        unique: true
        description: Visit number.
        classification: internal
      - name: patient_id
        logicalType: integer
        physicalType: INTEGER
        required: true
        description: Pseudonymous patient number.
        classification: internal
      - name: visit_date
        logicalType: date
        physicalType: DATE
        required: true
        description: Day of the visit.
        classification: internal
      - name: department
        logicalType: string
        physicalType: VARCHAR
        required: true
        description: Department that saw the patient.
        classification: internal
        quality:
          - type: library
            metric: invalidValues
            arguments: {validValues: [emergency, cardiology, respiratory, general]}
            mustBe: 0
      - name: age
        logicalType: integer
        physicalType: INTEGER
        required: true
        description: Age of the patient in years at the visit.
        classification: internal
        logicalTypeOptions: {minimum: 0, maximum: 110}
      - name: triage_level
        logicalType: integer
        physicalType: INTEGER
        required: true
        description: Triage level at arrival (1 most urgent, 5 least).
        classification: internal
        logicalTypeOptions: {minimum: 1, maximum: 5}
      - name: chronic_conditions
        logicalType: integer
        physicalType: INTEGER
        required: true
        description: Chronic conditions on the patient's record.
        classification: internal
        logicalTypeOptions: {minimum: 0}
"""

FILES: dict[str, str] = {
    "pyproject.toml": f"""\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{UNIT}-location"
version = "0.1.0"
description = "The clinic's Dagster code location: emergency-department visits and 30-day returns."
requires-python = ">=3.11,<3.14"
dependencies = ["ai-factory"]

[tool.setuptools.packages.find]
include = ["{UNIT}*"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "{UNIT}"
code_location_target_module = "{UNIT}.definitions"
code_location_name = "{UNIT}"
""",
    ".gitignore": "dbt_project/target/\ndbt_project/logs/\n",
    f"{UNIT}/__init__.py": "",
    f"{UNIT}/definitions.py": f'''\
"""The clinic's code location (workspace.yaml: location ``{UNIT}``)."""

from factory_assets.public import business_unit_definitions
from factory_assets.lib.warehouse import open_warehouse

defs = business_unit_definitions(__file__)
''',
    # -- contracts ---------------------------------------------------------------------------------
    f"data_contracts/raw/{SOURCE}.odcs.yaml": f"""\
apiVersion: v3.1.0
kind: DataContract
id: urn:clinic:raw:{SOURCE}
name: raw_{SOURCE}
version: 1.0.0
status: active
domain: clinic
dataProduct: {SOURCE}
description:
  purpose: Emergency-department visits from the clinic's patient system, one CSV file per day of visits.
  usage: Landing contract of the visit feed.
{_OWNER_TEAM}slaProperties:
  - property: frequency
    value: 1
    unit: d
customProperties:
  - property: landingFormat
    value: csv
  - property: filePattern
    value: "{SOURCE}_{{date}}.csv"
  - property: sourceKind
    value: transactions
  - property: dbtSource
    value: clinic
schema:
  - name: {SOURCE}
    physicalName: raw.{SOURCE}
    physicalType: table
    description: One row per visit.
    properties:
{_VISIT_COLUMNS}""",
    f"data_contracts/products/{PRODUCT}.odcs.yaml": f"""\
apiVersion: v3.1.0
kind: DataContract
id: urn:clinic:product:{PRODUCT}
name: {PRODUCT}
version: 1.0.0
status: active
domain: clinic
dataProduct: {PRODUCT}
description:
  purpose: Every emergency-department visit, typed and deduplicated.
  usage: Follow-up planning and the 30-day return model.
{_OWNER_TEAM}slaProperties:
  - property: latency
    value: 1
    unit: d
    element: {PRODUCT}.visit_date
customProperties:
  - property: dbtModel
    value: {PRODUCT}
schema:
  - name: {PRODUCT}
    physicalName: clinic.{PRODUCT}
    physicalType: table
    description: One row per visit.
    properties:
{_VISIT_COLUMNS}""",
    f"data_contracts/features/{FEATURE_SET}.odcs.yaml": f"""\
apiVersion: v3.1.0
kind: DataContract
id: urn:clinic:feature-set:{FEATURE_SET}
name: {FEATURE_SET}
version: 1.0.0
status: active
domain: feature_store
dataProduct: feature_set_{FEATURE_SET}
description:
  purpose: A patient's visits known at the end of feature_date.
{_OWNER_TEAM}schema:
  - name: {FEATURE_SET}
    physicalName: features.{FEATURE_SET}
    physicalType: table
    description: One row per patient and feature_date.
    properties:
      - name: patient_id
        logicalType: integer
        physicalType: INTEGER
        required: true
        description: Entity key.
        classification: internal
      - name: feature_date
        logicalType: date
        physicalType: DATE
        required: true
        description: The day the features are known at (end of day).
        classification: internal
      - name: prior_visits_90d
        logicalType: integer
        physicalType: INTEGER
        required: true
        description: Visits in the 90 days ending on feature_date.
        classification: internal
        logicalTypeOptions: {{minimum: 0}}
      - name: prior_visits_total
        logicalType: integer
        physicalType: INTEGER
        required: true
        description: Visits up to feature_date.
        classification: internal
        logicalTypeOptions: {{minimum: 0}}
      - name: days_since_last_visit
        logicalType: integer
        physicalType: INTEGER
        required: false
        description: "Days from the last visit to feature_date (null: none yet)."
        classification: internal
        logicalTypeOptions: {{minimum: 0}}
""",
    # -- the unit's dbt project ----------------------------------------------------------------------
    "dbt_project/dbt_project.yml": f"""\
name: {UNIT}
version: "1.0.0"
config-version: 2
profile: ai_factory  # the factory's warehouse profile (no profiles.yml of its own): dbt writes the lake
model-paths: ["models"]
macro-paths: ["macros"]
target-path: "target"
clean-targets: ["target", "logs"]
flags:
  send_anonymous_usage_stats: false
models:
  {UNIT}:
    staging:
      +schema: clinic_staging
      +materialized: view
    marts:
      +schema: clinic
      +materialized: table
""",
    "dbt_project/macros/generate_schema_name.sql": """\
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
""",
    "dbt_project/models/staging/_clinic__sources.yml": f"""\
version: 2
sources:
  - name: clinic
    description: The clinic's raw tables, landed by the ingestion assets into schema raw.
    schema: raw
    tables:
      - name: {SOURCE}
""",
    f"dbt_project/models/staging/stg_clinic__{SOURCE}.sql": f"""\
select visit_id, patient_id, visit_date, department, age, triage_level, chronic_conditions
from {{{{ source('clinic', '{SOURCE}') }}}}
""",
    f"dbt_project/models/marts/{PRODUCT}.sql": f"""\
select
    cast(visit_id as integer) as visit_id,
    cast(patient_id as integer) as patient_id,
    cast(visit_date as date) as visit_date,
    department,
    cast(age as integer) as age,
    cast(triage_level as integer) as triage_level,
    cast(chronic_conditions as integer) as chronic_conditions
from {{{{ ref('stg_clinic__{SOURCE}') }}}}
""",
    f"dbt_project/models/marts/{PRODUCT}.yml": f"""\
version: 2
models:
  - name: {PRODUCT}
    description: Every emergency-department visit (contract data_contracts/products/{PRODUCT}.odcs.yaml).
    columns:
      - name: visit_id
        data_tests: [unique, not_null]
""",
    # -- declarations --------------------------------------------------------------------------------
    f"{UNIT}/defs/feature_sets/{FEATURE_SET}/defs.yaml": f"""\
type: factory_assets.components.FeatureSet
attributes:
  name: {FEATURE_SET}
  version: 1.0.0
  description: A patient's emergency-department visits known at the end of feature_date.
  entity: patient_id
  products: [{PRODUCT}]
  sql: >
    select s.patient_id, s.feature_date,
      cast(count(v.visit_id) filter (where v.visit_date > s.feature_date - 90) as integer) as prior_visits_90d,
      cast(count(v.visit_id) as integer) as prior_visits_total,
      cast(s.feature_date - max(v.visit_date) as integer) as days_since_last_visit
    from (select distinct patient_id, feature_date from {{{{ spine }}}}) s
    left join {{{{ {PRODUCT} }}}} v on v.patient_id = s.patient_id and v.visit_date <= s.feature_date
    group by s.patient_id, s.feature_date
  entities: select distinct patient_id from {{{{ {PRODUCT} }}}}
  clock: visit_date
""",
    f"{UNIT}/defs/use_cases/{USE_CASE}/defs.yaml": f"""\
type: factory_assets.components.UseCase
attributes:
  name: {USE_CASE}
  description: >
    Probability that a patient seen in the emergency department comes back within 30 days, scored the
    night after the visit so the clinic can plan follow-up calls and staff the department.
  template: binary_classification
  training_set:
    products: [{PRODUCT}]
    spine: >
      select visit_id, patient_id, visit_date, department, age, triage_level, chronic_conditions
      from {{{{ {PRODUCT} }}}}
    outcome: >
      select v.visit_id, exists (select 1 from {{{{ {PRODUCT} }}}} w where w.patient_id = v.patient_id
      and w.visit_date > v.visit_date and w.visit_date <= v.visit_date + {LABEL_DELAY}) as returned_30d
      from {{{{ {PRODUCT} }}}} v
  entity: visit_id
  identifiers: [patient_id]      # the feature set's join key: an id, never a feature
  time_column: visit_date
  target: returned_30d
  label_delay_days: {LABEL_DELAY}
  feature_sets: [{FEATURE_SET}]
  metric: auc
  risk_tier: low
  business_unit: {UNIT}
  owner: team:clinic-analytics
  engine: lightgbm
  uses: [staffing]
  value: {{estimated_hours_saved_per_week: 3}}
""",
}

WORKSPACE_ENTRY = f"""\
  - python_module:
      module_name: {UNIT}.definitions
      attribute: defs
      location_name: {UNIT}
      working_directory: business_units/{UNIT}
"""


# ------------------------------------------------------------------------------------------------
# The domain's data: a small generator with a learnable signal
# ------------------------------------------------------------------------------------------------

def generate_visits(start: date, days: int, seed: int = SEED) -> list[tuple]:
    """(visit_id, patient_id, visit_date, department, age, triage_level, chronic_conditions), by day.

    Each patient has a frailty (log-normal): their daily chance of a visit is proportional to it,
    so frail patients come back within 30 days more often and have more visits before; their
    chronic conditions and triage level follow it too. Visit ids increase with time."""
    rng = np.random.default_rng(seed)
    frailty = rng.lognormal(0.0, 1.0, PATIENTS)
    rate = np.minimum(frailty / frailty.sum() * VISITS_PER_DAY, 0.5)
    age = np.clip(rng.normal(45 + 8 * np.log(frailty), 15), 0, 100).astype(int)
    chronic = rng.poisson(np.clip(frailty, 0.1, 5.0))
    visits, visit_id = [], 1
    for offset in range(days):
        day = start + timedelta(days=offset)
        for patient in np.flatnonzero(rng.random(PATIENTS) < rate):
            triage = int(np.clip(round(4 - np.log(frailty[patient]) + rng.normal(0, 0.8)), 1, 5))
            visits.append((visit_id, int(patient) + 1, day, DEPARTMENTS[int(rng.integers(len(DEPARTMENTS)))],
                           int(age[patient]), triage, int(chronic[patient])))
            visit_id += 1
    return visits


def land(landing: Path, visits: list[tuple]) -> dict[date, int]:
    """One CSV per day in the landing zone (``landing/<source>/<source>_<day>.csv``); rows per day."""
    folder = landing / SOURCE
    folder.mkdir(parents=True, exist_ok=True)
    header = "visit_id,patient_id,visit_date,department,age,triage_level,chronic_conditions"
    by_day: dict[date, list[str]] = {}
    for v in visits:
        by_day.setdefault(v[2], []).append(",".join(str(x) for x in v))
    for day, rows in by_day.items():
        (folder / f"{SOURCE}_{day.isoformat()}.csv").write_text("\n".join([header, *rows]) + "\n")
    return {day: len(rows) for day, rows in by_day.items()}


def returned(visits: list[tuple]) -> dict[int, bool]:
    """visit_id -> the patient came back within LABEL_DELAY days (the label, from the data itself)."""
    by_patient: dict[int, list[date]] = {}
    for v in visits:
        by_patient.setdefault(v[1], []).append(v[2])
    return {v[0]: any(v[2] < d <= v[2] + timedelta(days=LABEL_DELAY) for d in by_patient[v[1]]) for v in visits}


# ------------------------------------------------------------------------------------------------
# The copy of the repository
# ------------------------------------------------------------------------------------------------

GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV},
                          check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def copy_repository(target: Path) -> Path:
    """The working tree as git would track it (committed, changed and untracked-but-not-ignored
    files) in a fresh repository with one commit; plus the core's dbt manifest (ignored: made by
    ``tasks.py setup``, parsed here when this checkout has none), which the audit bundle records."""
    files = [f for f in git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0") if f]
    for name in files:
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "the factory before onboarding")
    manifest = Path("dbt_project/target/manifest.json")
    if (REPO / manifest).is_file():
        (target / manifest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / manifest, target / manifest)
    else:
        from factory_assets.processing import dbt_assets  # noqa: F401 - defaults the warehouse path dbt's profile reads
        from factory_assets.processing.dbt_cli import prepare_manifest

        prepare_manifest(target / "dbt_project")
    return target


def onboard(repo: Path) -> Path:
    """What the unit's team commits: its folder and one workspace entry."""
    unit = repo / "business_units" / UNIT
    for name, text in FILES.items():
        (unit / name).parent.mkdir(parents=True, exist_ok=True)
        (unit / name).write_text(text)
    workspace = repo / "workspace.yaml"
    workspace.write_text(workspace.read_text().rstrip("\n") + "\n" + WORKSPACE_ENTRY)
    return unit


# ------------------------------------------------------------------------------------------------
# The factory's side, in a fresh interpreter
# ------------------------------------------------------------------------------------------------

def _range_tags(first: date, last: date) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}


def _plain(value):
    """A metadata value as JSON can hold it (tables, schemas and lineage as their text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if type(value) in (list, tuple):  # not records (NamedTuples such as TableSchema)
        return [_plain(v) for v in value]
    if type(value) is dict:
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def _summary(result) -> dict:
    """A run as JSON: success, failures, materialization metadata by key, checks by key."""
    materialized: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        key = mat.asset_key.to_user_string() + (f"@{mat.partition}" if mat.partition else "")
        materialized[key] = {k: _plain(getattr(v, "value", v)) for k, v in mat.metadata.items()}
    checks = {f"{e.event_specific_data.asset_key.to_user_string()}:{e.event_specific_data.check_name}":
              e.event_specific_data.passed for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    failures = [e.event_specific_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    steps = {e.step_key: round(e.event_specific_data.duration_ms / 1000, 1) for e in result.all_events
             if e.event_type_value == "STEP_SUCCESS"}
    return json.loads(json.dumps({"success": result.success, "failures": failures, "materialized": materialized,
                                  "checks": checks, "steps": steps}, default=str))


def drive(out: str) -> None:
    """Everything the factory does for the unit; runs in the subprocess the test starts (its env
    names FACTORY_HOME, FACTORY_WORKSPACE, FACTORY_PARTITIONS_START and ONBOARD_UNIT_DIR)."""
    import contextlib
    import importlib
    import io

    import dagster as dg

    from factory_assets.lib.warehouse import open_warehouse
    from factory_assets.public import FactoryStore, business_unit_definitions

    home, unit = Path(os.environ["FACTORY_HOME"]), Path(os.environ["ONBOARD_UNIT_DIR"])
    sys.path.insert(0, str(unit))  # what workspace.yaml's working_directory does for the location
    report: dict = {"seconds": {}}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        report["seconds"][name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    store = FactoryStore(home=str(home))
    defs = business_unit_definitions(unit / UNIT / "definitions.py", store)
    graph = defs.resolve_asset_graph()
    report["keys"] = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    report["parents"] = {k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
                         for k in graph.get_all_asset_keys()}
    report["owners"] = {k.to_user_string(): list(graph.get(k).owners) for k in graph.get_all_asset_keys()}
    report["groups"] = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    report["check_names"] = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys)
    report["jobs"] = sorted(j.name for j in defs.resolve_all_job_defs())
    # the location as workspace.yaml declares it (module + attribute, default store) defines the same keys
    workspace_defs = importlib.import_module(f"{UNIT}.definitions").defs
    report["workspace_keys"] = sorted(k.to_user_string() for k in workspace_defs.resolve_asset_graph().get_all_asset_keys())
    lap("load")

    instance = dg.DagsterInstance.ephemeral()
    nightly, training = defs.resolve_job_def(f"{UNIT}_nightly"), defs.resolve_job_def(f"{UNIT}_training")
    last_trained_day = SCORED - timedelta(days=1)
    report["history"] = _summary(nightly.execute_in_process(
        instance=instance, tags=_range_tags(START, last_trained_day), run_config=QUIET, raise_on_error=False))
    lap("nightly_history")
    report["training"] = _summary(training.execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={**QUIET, "ops": {f"assembly__{USE_CASE}_model": {"config": {"device": "cpu"}}}}))
    registry = store.registry()
    report["aliases"] = registry.aliases(USE_CASE) if USE_CASE in registry.use_cases() else {}
    report["features"] = list(registry.get(USE_CASE, "challenger").feature_names) if report["aliases"] else []
    lap("training")
    report["scored_night"] = _summary(nightly.execute_in_process(
        instance=instance, partition_key=SCORED.isoformat(), run_config=QUIET, raise_on_error=False))
    lap("scored_night")
    # the days in between: land and build the products (their outcomes), without scoring each day
    products = [k for k in graph.get_all_asset_keys() if k.path[0] in ("raw_material", "processing")]
    report["between"] = _summary(nightly.execute_in_process(
        instance=instance, tags=_range_tags(SCORED + timedelta(days=1), LABELLED - timedelta(days=1)),
        asset_selection=products, run_config=QUIET, raise_on_error=False))
    lap("nightly_between")
    report["labelled_night"] = _summary(nightly.execute_in_process(
        instance=instance, partition_key=LABELLED.isoformat(), run_config=QUIET, raise_on_error=False))
    lap("labelled_night")

    with open_warehouse(store.paths) as conn:
        def rows(sql: str):
            return conn.execute(sql).fetchall()

        report["warehouse"] = {
            "raw": rows(f"select count(*) from raw.{SOURCE}")[0][0],
            "product": rows(f"select count(*), min(visit_date)::varchar, max(visit_date)::varchar from clinic.{PRODUCT}")[0],
            "features": rows(f"select count(*), max(feature_date)::varchar from features.{FEATURE_SET}")[0],
            "predictions": rows(f"select scored_date::varchar, count(*), count(distinct visit_id), min(visit_date)::varchar, "
                                f"max(visit_date)::varchar, min(prediction), max(prediction) from predictions.{USE_CASE} "
                                "group by all order by 1"),
            "scored_visits": [r[0] for r in rows(f"select visit_id from predictions.{USE_CASE} where scored_date = "
                                                  f"DATE '{SCORED.isoformat()}' order by 1")],
        }

    from factory_assets.assembly.specs import load_use_cases
    from factory_assets.governance.facts import approvals_log, current_policy
    from factory_assets.governance.portfolio import compliance_reports, portfolio_rows

    specs = load_use_cases()  # every location of FACTORY_WORKSPACE
    compliance = compliance_reports(specs, registry, approvals_log(store.paths.artifacts), current_policy(), {})
    report["portfolio"] = json.loads(json.dumps(portfolio_rows(specs, registry, compliance, {}, set()), default=str))

    from factory_assets.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report["audit_exit"] = main(["audit", USE_CASE])
    report["audit_out"] = printed.getvalue()
    lap("governance")
    Path(out).write_text(json.dumps(report, default=str))


# ------------------------------------------------------------------------------------------------
# The test
# ------------------------------------------------------------------------------------------------

def test_onboarding_a_second_domain_touches_only_its_folder_and_the_workspace(tmp_path):
    started = time.perf_counter()
    repo = copy_repository(tmp_path / "repo")
    unit = onboard(repo)
    home = tmp_path / "home"
    visits = generate_visits(START, (LAST - START).days + 1)
    per_day = land(home / "landing", visits)
    assert len(per_day) == (LAST - START).days + 1 and 2_000 < len(visits) < 8_000

    out = tmp_path / "report.json"
    env = {**os.environ, "FACTORY_HOME": str(home), "FACTORY_WAREHOUSE_PATH": str(home / "warehouse.duckdb"),
           "FACTORY_WORKSPACE": str(repo / "workspace.yaml"), "FACTORY_PARTITIONS_START": START.isoformat(),
           "ONBOARD_UNIT_DIR": str(unit), "PYTHONPATH": str(repo), "DO_NOT_TRACK": "1",
           "DAGSTER_HOME": str(home / "dagster_home")}
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    code = f"import sys; sys.path.insert(0, {str(repo / 'tests')!r}); import test_onboard_domain as t; t.drive({str(out)!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=unit, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0 and out.is_file(), f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    report = json.loads(out.read_text())
    print(json.dumps({"seconds": report["seconds"], "visits": len(visits),
                      "steps": {run: report[run]["steps"] for run in ("history", "training", "scored_night")},
                      "warehouse": {
        k: v for k, v in report["warehouse"].items() if k != "scored_visits"}}, indent=1))

    # -- the location: raw source, the unit's dbt models, feature set and the use case's slice ------
    assert set(report["keys"]) == {
        f"raw_material/{SOURCE}", f"processing/stg_clinic__{SOURCE}", f"processing/{PRODUCT}",
        f"assembly/{FEATURE_SET}", f"assembly/{USE_CASE}_training_set", f"assembly/{USE_CASE}_model",
        f"assembly/{USE_CASE}_champion", f"distribution/{USE_CASE}_predictions", f"feedback/{USE_CASE}_monitoring"}
    assert report["workspace_keys"] == report["keys"]
    assert report["parents"][f"processing/stg_clinic__{SOURCE}"] == [f"raw_material/{SOURCE}"]  # dbt source -> raw asset
    assert report["parents"][f"assembly/{FEATURE_SET}"] == [f"processing/{PRODUCT}"]
    assert report["groups"][f"processing/{PRODUCT}"] == "processing"
    assert report["owners"][f"processing/{PRODUCT}"] == ["clinic-data@clinic.example"]  # from the product contract
    assert {f"processing/{PRODUCT}:contract", f"processing/{PRODUCT}:freshness",
            f"processing/{PRODUCT}:unique__visit_id"} <= set(report["check_names"])
    assert {f"{UNIT}_nightly", f"{UNIT}_training"} <= set(report["jobs"])

    # -- the first 90 nights: raw -> products -> feature set ---------------------------------------
    history = report["history"]
    assert history["success"], history["failures"]
    history_rows = sum(n for day, n in per_day.items() if day < SCORED)
    assert history["materialized"][f"processing/{PRODUCT}"]["dagster/row_count"] == history_rows
    assert history["checks"][f"processing/{PRODUCT}:contract"] is True
    assert history["checks"][f"processing/{PRODUCT}:unique__visit_id"] is True  # the unit's dbt test
    assert history["checks"][f"assembly/{FEATURE_SET}:contract"] is True
    patients_seen = len({v[1] for v in visits if v[2] < SCORED})
    assert history["materialized"][f"assembly/{FEATURE_SET}"]["dagster/row_count"] == patients_seen

    # -- training: the rows whose 30 days are over, a model that beats the baseline, a champion -----
    training = report["training"]
    assert training["success"], training["failures"]
    as_of = SCORED  # the day after the last landed day
    labelled = [v for v in visits if v[2] + timedelta(days=LABEL_DELAY) < as_of]
    meta = training["materialized"]
    assert meta[f"assembly/{USE_CASE}_training_set"]["dagster/row_count"] == len(labelled)
    labels = returned(visits)
    assert meta[f"assembly/{USE_CASE}_training_set"]["target_mean"] == pytest.approx(
        np.mean([labels[v[0]] for v in labelled]), abs=5e-5)  # metadata floats: 4 significant digits
    model = meta[f"assembly/{USE_CASE}_model"]
    assert model["metric/auc"] > model["baseline/auc"] + 0.05, model
    assert training["checks"] == {f"assembly/{USE_CASE}_model:beats_baseline": True,
                                  f"assembly/{USE_CASE}_champion:policy": True}
    assert meta[f"assembly/{USE_CASE}_champion"]["promoted"] is True
    assert report["aliases"]["champion"] == model["version"]
    # the feature set's columns and the spine's context are features; ids (entity, identifiers) never are
    assert {"prior_visits_90d", "triage_level", "age"} <= set(report["features"])
    assert not {"visit_id", "patient_id", "returned_30d"} & set(report["features"])

    # -- the night after: exactly the visits whose 30 days are still open are scored --------------
    scored_night = report["scored_night"]
    assert scored_night["success"], scored_night["failures"]
    open_visits = sorted(v[0] for v in visits if SCORED - timedelta(days=LABEL_DELAY) < v[2] <= SCORED)
    assert report["warehouse"]["scored_visits"] == open_visits
    predictions = {row[0]: row for row in report["warehouse"]["predictions"]}
    first_open = (SCORED - timedelta(days=LABEL_DELAY - 1)).isoformat()
    assert predictions[SCORED.isoformat()][1:5] == [len(open_visits), len(open_visits), first_open, SCORED.isoformat()]
    assert 0 <= predictions[SCORED.isoformat()][5] < predictions[SCORED.isoformat()][6] <= 1
    scores = scored_night["materialized"][f"distribution/{USE_CASE}_predictions@{SCORED}"]
    assert scores["dagster/row_count"] == len(open_visits)
    # no prediction contract written by the unit: one is generated from the declaration and checked
    assert Path(scores["contract"]).is_file() and scores["table"] == f"predictions.{USE_CASE}"

    # -- 30 days later: every score of SCORED has its outcome, and monitoring judges them ----------
    assert report["between"]["success"], report["between"]["failures"]
    labelled_night = report["labelled_night"]
    assert labelled_night["success"], labelled_night["failures"]
    monitoring = labelled_night["materialized"][f"feedback/{USE_CASE}_monitoring@{LABELLED}"]
    assert monitoring["labels_for_scored_date"] == SCORED.isoformat()
    assert monitoring["labelled_rows"] == len(open_visits)
    assert monitoring["quality/auc"] > 0.6 and "drift_share" in monitoring
    assert report["warehouse"]["raw"] == len(visits)
    assert report["warehouse"]["product"] == [len(visits), START.isoformat(), LAST.isoformat()]

    # -- governance: the portfolio lists it, the audit bundle is written --------------------------
    row = next(r for r in report["portfolio"] if r["use_case"] == USE_CASE)
    assert (row["business_unit"], row["owner"], row["status"], row["champion_version"]) == (
        UNIT, "team:clinic-analytics", "champion", model["version"])
    assert {"late_delivery", "complaint_risk"} <= {r["use_case"] for r in report["portfolio"]}  # beside the others
    assert report["audit_exit"] == 0, report["audit_out"]
    bundle = json.loads(Path(json.loads(report["audit_out"].strip().splitlines()[-1])["bundle"]).read_text())
    assert bundle["use_case"]["name"] == USE_CASE and bundle["model"]["version"] == model["version"]

    # -- and nothing outside the unit's folder and workspace.yaml changed -------------------------
    changed = [line[3:] for line in git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()]
    assert "workspace.yaml" in changed
    assert [c for c in changed if c != "workspace.yaml" and not c.startswith(f"business_units/{UNIT}/")] == []
    print(f"onboarding test: {time.perf_counter() - started:.0f} s")
