"""Where the factory keeps its state, in one place.

Every piece of state (landing zone, raw store, quarantine, archive, the warehouse's lake, Dagster
instance, model artifacts) lives under one folder, ``FACTORY_HOME`` (default: ``.factory`` in the
project). Moving that one variable moves everything; nothing is written elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
CONTRACTS_DIR = PROJECT_ROOT / "data_contracts"

#: The first day of the daily partitions, where nothing says otherwise.
DEFAULT_PARTITIONS_START = "2024-01-01"
#: File under FACTORY_HOME holding the first day of the data (``factory data generate`` and the demo
#: write it), so that the partitions of an embedded home start where its data starts.
PARTITIONS_START_FILE = "partitions_start"


def partitions_start_setting() -> tuple[str, str]:
    """(first partition day as written, where it comes from): FACTORY_PARTITIONS_START if set, else
    FACTORY_HOME/partitions_start, else DEFAULT_PARTITIONS_START. Read where the partitions are
    defined (the code location, the daemon, the CLI), so all of them agree."""
    if os.environ.get("FACTORY_PARTITIONS_START"):
        return os.environ["FACTORY_PARTITIONS_START"].strip(), "FACTORY_PARTITIONS_START"
    recorded = factory_home() / PARTITIONS_START_FILE
    try:
        return recorded.read_text().strip(), str(recorded)
    except (FileNotFoundError, NotADirectoryError):
        return DEFAULT_PARTITIONS_START, "the default"


def partitions_start() -> date:
    """The first partition day; a malformed value is an error naming the setting or file."""
    value, where = partitions_start_setting()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"the first partition day {value!r} (from {where}) is not a day: give it as YYYY-MM-DD, e.g. "
            "FACTORY_PARTITIONS_START=2024-01-01"
        ) from None


def record_partitions_start(first_day: date) -> date:
    """Record ``first_day`` as the first partition day of this FACTORY_HOME unless FACTORY_PARTITIONS_START
    is set or an earlier day is recorded already (data of that day may be there). Returns the day in force."""
    if os.environ.get("FACTORY_PARTITIONS_START"):
        return partitions_start()
    recorded = factory_home() / PARTITIONS_START_FILE
    if recorded.is_file():
        try:
            if date.fromisoformat(recorded.read_text().strip()) <= first_day:
                return partitions_start()
        except ValueError:
            pass  # a damaged record is replaced
    recorded.parent.mkdir(parents=True, exist_ok=True)
    recorded.write_text(first_day.isoformat() + "\n")
    return first_day


def raw_sources() -> dict[str, str]:
    """The core's raw sources by kind, one per contract in data_contracts/raw (``sourceKind``)."""
    from factory_assets.lib.contracts import raw_source_kinds

    return raw_source_kinds()


#: Raw sources by kind (``raw_sources()``), derived from the contracts on first use (module
#: ``__getattr__``) so that importing settings parses no contract.
RAW_SOURCES: dict[str, str]


def __getattr__(name: str):
    if name == "RAW_SOURCES":
        return raw_sources()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Tag put on every run that writes to the warehouse. On the lake such runs go at once; a warehouse
#: kept as one DuckDB file (FACTORY_WAREHOUSE=duckdb) has dagster.yaml limit them to one at a time.
WAREHOUSE_WRITER_TAG = "factory/warehouse_writer"


#: Where the UI's links to HTML artifacts (Evidently reports, audit bundles) point. `factory ui`
#: serves FACTORY_HOME/artifacts read-only on this address; in production, set it to the URL of
#: the bucket or web server that publishes the artifacts folder.
DEFAULT_ARTIFACTS_URL = "http://127.0.0.1:3001"


#: Owners of the factory's shared machinery (asset owners come from contracts and use-case specs).
PLATFORM_TEAM = "team:data-platform"
ML_TEAM = "team:ml-platform"
RISK_TEAM = "team:model-risk"


def dbt_column_metadata() -> bool:
    """Record each dbt model's column schema and column-level lineage (the UI's column table and its
    ``column_lineage`` entry)? On by default; FACTORY_DBT_COLUMN_METADATA=0 skips it (row counts are always recorded)."""
    return os.environ.get("FACTORY_DBT_COLUMN_METADATA", "1") != "0"


#: Where the warehouse lives (FACTORY_WAREHOUSE): ``lake``, a DuckLake lakehouse many processes
#: write at once (the default), or ``duckdb``, the single DuckDB file of earlier releases.
WAREHOUSE_KINDS = ("lake", "duckdb")


def warehouse_kind() -> str:
    value = os.environ.get("FACTORY_WAREHOUSE", "lake").strip().lower() or "lake"
    if value not in WAREHOUSE_KINDS:
        raise ValueError(f"FACTORY_WAREHOUSE={value!r}: give lake (DuckLake, the default) or duckdb (one DuckDB file)")
    return value


def duckdb_memory_limit() -> str:
    """DuckDB's memory limit in this project's processes and in dbt (FACTORY_DUCKDB_MEMORY_LIMIT,
    e.g. 2GB): queries over more data than this spill to disk instead of growing the process."""
    value = os.environ.get("FACTORY_DUCKDB_MEMORY_LIMIT", "2GB").strip()
    if not value or not all(c.isalnum() or c in ". " for c in value):
        raise ValueError(f"FACTORY_DUCKDB_MEMORY_LIMIT={value!r}: give a size such as 2GB or 512MB")
    return value


def artifacts_url() -> str:
    return os.environ.get("FACTORY_ARTIFACTS_URL", DEFAULT_ARTIFACTS_URL).rstrip("/")


def factory_home() -> Path:
    return Path(os.environ.get("FACTORY_HOME", PROJECT_ROOT / ".factory")).resolve()


@dataclass(frozen=True)
class FactoryPaths:
    """The layout of FACTORY_HOME."""

    home: Path

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def raw(self) -> Path:
        return self.home / "raw"

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def dbt_state(self) -> Path:
        """What dbt keeps between invocations on this home's warehouse (its last parse)."""
        return self.home / "dbt_state"

    def create(self) -> "FactoryPaths":
        for p in (self.landing, self.raw, self.archive, self.quarantine, self.dagster_home, self.artifacts):
            p.mkdir(parents=True, exist_ok=True)
        return self


def default_paths() -> FactoryPaths:
    return FactoryPaths(factory_home())


#: What earlier versions wrote as dagster.yaml (no run monitoring, no run retries): an unedited
#: copy is brought up to date; a file the user changed is kept as it is.
_EARLIER_DAGSTER_YAML = """\
# Dagster instance for the embedded defaults (written by factory_assets.settings).
# SQLite storage under this folder (Dagster's files and schema, with pooled connections:
# factory_assets/instance_storage.py); runs that write the DuckDB warehouse run one at a time.
storage:
  custom:
    module: factory_assets.instance_storage
    class: PooledSqliteStorage
    config:
      base_dir:
        env: DAGSTER_HOME
telemetry:
  enabled: false
nux:
  enabled: false
run_queue:
  max_concurrent_runs: 4
  tag_concurrency_limits:
    - key: "{tag}"
      limit: 1
"""

DAGSTER_YAML = _EARLIER_DAGSTER_YAML + """\
# A run whose process died (kill -9, out of memory, a closed terminal) is marked failed by the
# daemon's run monitoring within about poll_interval_seconds: the launcher checks the process that
# started the run (factory_assets/execution.py, FactoryRunLauncher). That frees the warehouse-writer
# slot above. Runs launched by the daemon or the UI (schedules, sensors) are then retried, at most
# twice; their steps are idempotent (files ingest once by checksum, partitions are replaced). A run
# that failed on its own (a failing step or check) is not retried blindly.
run_launcher:
  module: factory_assets.execution
  class: FactoryRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: {poll}
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
"""

#: Seconds between two checks of the running runs' processes (FACTORY_RUN_MONITORING_POLL_S).
RUN_MONITORING_POLL_S = 5


#: Environment for the Dagster processes that create runs (CLI, webserver, daemon). A run over a
#: range of daily partitions (a history backfill) otherwise writes one "materialization planned"
#: event per asset and partition before its first step: one single-row SQLite write each, so a year of
#: history waited minutes before doing any work (bench/bench_overhead.py; the figures: README, "What
#: the benchmarks found"). One event per asset carries the whole
#: partition range instead. The trade Dagster documents: a failed range run leaves its partitions
#: "missing" rather than "failed" in the UI; the run itself still shows as failed.
DAGSTER_RUNTIME_ENV = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}


def apply_dagster_runtime_env(env: dict | None = None) -> dict:
    """Set DAGSTER_RUNTIME_ENV's defaults in ``env`` (this process's environment by default)."""
    target = os.environ if env is None else env
    for key, value in DAGSTER_RUNTIME_ENV.items():
        target.setdefault(key, value)
    return target


def ensure_dagster_home(paths: FactoryPaths) -> Path:
    """Create DAGSTER_HOME with its dagster.yaml (kept if the user edited it)."""
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    config = paths.dagster_home / "dagster.yaml"
    generated = {_EARLIER_DAGSTER_YAML.format(tag=WAREHOUSE_WRITER_TAG), dagster_yaml("lake"), dagster_yaml("duckdb")}
    if not config.exists() or config.read_text() in generated:
        config.write_text(dagster_yaml())
    return paths.dagster_home


#: The run queue's limit on runs writing a DuckDB file warehouse (one writer per file); the lake
#: takes writers at once, so its dagster.yaml has none.
_ONE_FILE_WRITER = """  tag_concurrency_limits:
    - key: "{tag}"
      limit: 1
"""


def dagster_yaml(kind: str | None = None) -> str:
    """The embedded instance's dagster.yaml (see DAGSTER_YAML) for the warehouse ``kind`` (default:
    the one in use)."""
    poll = os.environ.get("FACTORY_RUN_MONITORING_POLL_S", str(RUN_MONITORING_POLL_S)).strip()
    if not poll.isdigit() or int(poll) < 1:
        raise ValueError(f"FACTORY_RUN_MONITORING_POLL_S={poll!r}: give whole seconds, at least 1")
    text = DAGSTER_YAML.format(tag=WAREHOUSE_WRITER_TAG, poll=int(poll))
    if (kind or warehouse_kind()) == "lake":
        text = text.replace(_ONE_FILE_WRITER.format(tag=WAREHOUSE_WRITER_TAG), "").replace(
            "runs that write the DuckDB warehouse run one at a time.",
            "runs write the DuckLake warehouse at once.").replace(
            "FactoryRunLauncher). That frees the warehouse-writer\n# slot above. ", "FactoryRunLauncher).\n# ")
    return text
