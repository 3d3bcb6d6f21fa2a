"""``dbt build`` through dbt's own Python entry point, and what its run_results.json says: no
Dagster, no dagster-dbt.

The nightly dbt step runs dbt this way. dagster-dbt's runtime path paid a fixed cost per
invocation before dbt started (a ``dbt --version`` subprocess and an in-process dbt adapter for
row counts), and while dbt ran on DuckDB its event post-processing (``dagster._core.utils.imap``)
polled futures in a loop without sleeping, taking one of two cores from dbt (the figures: README,
"What the benchmarks found").
Here dbt gets the machine to itself; results are read from the run_results.json it writes, and
row counts with one read-only DuckDB connection after dbt is done.

dbt runs in the step's own process (``dbtRunner``), not as a ``dbt`` subprocess: importing dbt and
setting it up (adapter, macros) take seconds, paid once per process instead of once per invocation,
so with the default in-process executor the night's second dbt step (the operations models) reuses
the first one's (README, "What the benchmarks found", has the before and after). Invocations in
one process run one at a time (dbt's global flags and adapter registry are per process); the dbt
steps hold the warehouse's write lock, and a process runs one step at a time, so nothing else has
to keep them apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory_assets.processing.dbt_manifest import tested_node

#: dbt statuses of a test result that count as passing / as a warning (dbt severity ``warn``).
TEST_PASSED = {"pass"}
TEST_WARNED = {"warn"}
MODEL_FAILED = {"error", "runtime error"}

#: What the orchestrated ``dbt build`` leaves out: dbt's unit tests. Their inputs are fixtures in the
#: project, so they prove the SQL, not the night's data; dbt recommends running them in development
#: and CI only. They run with the test suite (tests/test_dbt_project.py) and in a plain ``dbt build``;
#: in every night they would only add nodes that cannot fail on the night's data.
ORCHESTRATED_BUILD_EXCLUDES = ("--exclude-resource-type", "unit_test")


@dataclass(frozen=True)
class ModelResult:
    unique_id: str
    status: str  # success | error | skipped
    seconds: float
    materialized: str  # table | view | incremental | ...
    relation: str  # "schema"."alias", without the database (the file's catalog)
    message: str | None = None


@dataclass(frozen=True)
class TestResult:
    unique_id: str
    name: str
    tested_unique_id: str | None
    status: str  # pass | fail | warn | error | skipped
    failures: int | None
    message: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in TEST_PASSED


@dataclass
class DbtBuild:
    """One finished ``dbt build``: exit code, results by node, where its artifacts and log are."""

    returncode: int
    target_dir: Path
    seconds: float
    models: list[ModelResult] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.target_dir / "dbt_stdout.log"

    def model_errors(self) -> list[str]:
        return model_errors(self.models)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def summary(self) -> str:
        built = sum(m.status == "success" for m in self.models)
        passed = sum(t.passed for t in self.tests)
        failed = [t.name for t in self.tests if t.status not in TEST_PASSED | {"skipped"}]
        return (f"dbt build: {built}/{len(self.models)} models built, {passed}/{len(self.tests)} tests passed"
                + (f", not passing: {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}" if failed else "")
                + f" ({self.seconds:.1f} s)")


def model_errors(models: Sequence[ModelResult]) -> list[str]:
    """Models dbt could not build (failing tests are reported as checks, not as errors)."""
    return [f"{m.unique_id}: {m.message}" for m in models if m.status in MODEL_FAILED]


def build_args(args: Sequence[str], project_dir: Path, profiles_dir: Path, target_dir: Path,
               target: str | None = None) -> list[str]:
    """dbt's arguments: artifacts and dbt's own log in ``target_dir``, one per invocation."""
    command = [*args, "--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir),
               "--target-path", str(target_dir), "--log-path", str(target_dir)]
    return command + (["--target", target] if target else [])


#: dbt's parse result: read from ``--partial-parse-file-path``, written to the target folder.
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def partial_parse_file(state_folder: Path, target: str | None, session_file: bool = False) -> Path:
    """One saved parse per profile: the profile is part of what dbt checks. Its target, and on the
    lake where dbt's session database is (in memory on the nightly path, a file on dagster-dbt's):
    sharing one file, every night after a column-lineage step parsed the whole project again."""
    return state_folder / f"partial_parse.{target or 'default'}{'.session_file' if session_file else ''}.msgpack"


def saved_parse(state_folder: Path, target: str | None, session_file: bool = False) -> Path:
    """The saved parse an invocation starts from: its own profile's, else the other path's (the same
    profile on a DuckDB file; on the lake dbt sees another profile and parses in full, once)."""
    own = partial_parse_file(state_folder, target, session_file)
    return own if own.is_file() else partial_parse_file(state_folder, target, not session_file)


def partial_parse_args(state_file: Path) -> list[str]:
    """Where dbt reads its last parse from, so an invocation in a fresh target folder re-parses only
    the files that changed (a full parse costs seconds per invocation: README, "What the benchmarks found").
    dbt itself checks the saved parse against the project's files, its version, the profile
    (warehouse path included) and the env vars used, and parses in full when any differ, or when
    the file does not load. No saved parse yet: nothing to point at (dbt refuses a missing file)."""
    return ["--partial-parse-file-path", str(state_file)] if state_file.is_file() else []


def seed_partial_parse(target_dir: Path, state_file: Path) -> None:
    """Before an invocation through dagster-dbt: put this home's last parse in its target folder.

    dagster-dbt copies the project's ``target/partial_parse.msgpack`` (the set-up parse, made for
    another warehouse path) into an invocation's target folder that has none. A dbt that reuses the
    saved parse unchanged writes none of its own, so :func:`keep_partial_parse` kept that set-up
    parse, and the next invocation found "profile has changed" and parsed in full (README, "What the
    benchmarks found"). With the folder seeded, dagster-dbt copies nothing."""
    if not state_file.is_file():
        return
    with contextlib.suppress(OSError):  # a cache: without the seed, dbt still reads the saved parse
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(state_file, target_dir / PARTIAL_PARSE_FILE)


def keep_partial_parse(target_dir: Path, state_file: Path) -> None:
    """After an invocation: keep the parse it wrote (dbt writes none when nothing changed) for the
    next one. Replaced atomically, so a reader never sees half a file. It is a cache: a copy that
    fails (a full disk) leaves the last one, and the next invocation parses what changed since."""
    written = target_dir / PARTIAL_PARSE_FILE
    if not written.is_file():
        return
    partial = state_file.with_name(f".{state_file.name}.{os.getpid()}")
    try:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(written, partial)
        os.replace(partial, state_file)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def parse_run_results(results: Mapping[str, Any], manifest: Mapping[str, Any]) -> tuple[list[ModelResult], list[TestResult]]:
    """Models (and seeds, snapshots) and data tests from run_results.json; unit tests are dbt's own
    business (a failing one makes dbt skip its model, which shows as a model not built)."""
    models, tests = [], []
    for r in results.get("results", []):
        uid = r["unique_id"]
        node = manifest["nodes"].get(uid, {})
        kind = uid.split(".", 1)[0]
        if kind in ("model", "seed", "snapshot"):
            config = node.get("config") or {}
            models.append(ModelResult(uid, r["status"], float(r.get("execution_time") or 0.0),
                                      config.get("materialized", "table"),
                                      f'"{node.get("schema")}"."{node.get("alias") or node.get("name")}"',
                                      r.get("message")))
        elif kind == "test":
            tests.append(TestResult(uid, node.get("name", uid.split(".")[2]), tested_node(manifest, node) if node else None,
                                    r["status"], r.get("failures"), r.get("message")))
    return models, tests


def run_build(args: Sequence[str], target_dir: Path, manifest: Mapping[str, Any]) -> DbtBuild:
    """Run dbt to completion in this process (what it would print to ``dbt_stdout.log``, its
    debug log to ``dbt.log``) and read back what it did.

    A dbt that ends without writing run_results.json (bad profile, project that does not parse)
    is an error naming the log, not an empty success."""
    from dbt.cli.main import dbtRunner  # a slow import: only when a step builds

    target_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (target_dir / "dbt_stdout.log").open("w") as log:
        def echo(event) -> None:  # what the dbt command prints, without the debug lines of dbt.log
            if event.info.level in ("info", "warn", "error"):
                log.write(event.info.msg + "\n")

        try:
            result = dbtRunner(callbacks=[echo]).invoke([*args, "--quiet", "--no-use-colors"])
        finally:
            release_duckdb()
    if result.exception is not None:
        with (target_dir / "dbt_stdout.log").open("a") as log:
            log.write(f"{type(result.exception).__name__}: {result.exception}\n")
    returncode = 0 if result.success else (2 if result.exception is not None else 1)  # dbt's exit codes
    build = DbtBuild(returncode, target_dir, time.perf_counter() - started)
    results_path = target_dir / "run_results.json"
    if not results_path.exists():
        # dbt's exception first: with a full disk, its log may be empty (the first line then says
        # "No space left on device" and the file, which the CLI shows)
        cause = f"{type(result.exception).__name__}: {' '.join(str(result.exception).split())[:400]}; " \
            if result.exception is not None else ""
        raise RuntimeError(f"dbt ended (exit code {returncode}) without writing run_results.json: {cause}"
                           f"see {build.log_path}:\n{build.log_tail()}")
    build.models, build.tests = parse_run_results(json.loads(results_path.read_text()), manifest)
    return build


def prepare_manifest(project_dir: Path, profiles_dir: Path | None = None) -> Path:
    """``project_dir``'s ``target/manifest.json``, parsed first when it is missing or older than one
    of the project's files: ``dbt parse`` in this process (no network, no warehouse connection).

    What a business unit's location does on load for its own dbt project (the core's is parsed by
    ``tasks.py setup`` instead). dbt writes into a folder of its own and the manifest is then moved
    into place, so a location loading in two processes at once never reads half a file."""
    from factory_assets.processing.dbt_manifest import newer_dbt_sources

    project_dir = Path(project_dir).resolve()
    manifest = project_dir / "target" / "manifest.json"
    if manifest.is_file() and not newer_dbt_sources(manifest, project_dir):
        return manifest
    from dbt.cli.main import dbtRunner

    parse_dir = project_dir / "target" / f".parse.{os.getpid()}.{time.monotonic_ns()}"
    args = build_args(["parse"], project_dir, Path(profiles_dir or project_dir), parse_dir)
    try:
        result = dbtRunner().invoke([*args, "--quiet", "--no-use-colors"])
    finally:
        release_duckdb()
    parsed = parse_dir / "manifest.json"
    if not result.success or not parsed.is_file():  # the folder stays, with dbt's log
        raise RuntimeError(f"dbt parse of {project_dir} failed: {result.exception or 'no manifest written'} "
                           f"(dbt's log: {parse_dir / 'dbt.log'})")
    os.replace(parsed, manifest)
    shutil.rmtree(parse_dir, ignore_errors=True)
    return manifest


def release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open for the whole process.

    Left open, it holds the warehouse file's write lock after dbt is done: this process's read-only
    connections fail ("different configuration") and other processes cannot write. It takes dbt-duckdb's
    private state: factory_assets.compat.close_dbt_duckdb_environment."""
    from factory_assets.compat import close_dbt_duckdb_environment

    close_dbt_duckdb_environment()


def table_row_counts(conn, models: Sequence[ModelResult]) -> dict[str, int]:
    """Row counts of the models dbt built as tables, one query each on an open DuckDB connection.
    Views are left out: counting one runs its whole query (dagster-dbt leaves them out too)."""
    return {m.unique_id: int(conn.execute(f"select count(*) from {m.relation}").fetchall()[0][0])
            for m in models if m.status == "success" and m.materialized != "view"}
