"""dbt models as Dagster assets: staging -> intermediate -> data products (marts).

The manifest is prepared at setup time (``python3 tasks.py setup`` runs ``dbt parse``), never
at code-location load. The asset specs are built from that manifest.json directly
(``dbt_manifest``): dagster-dbt, and the dbt-core it imports, load only inside the step that runs
``dbt build``, which keeps the code location's start-up near an empty project's. dbt sources carry
``meta.dagster.asset_key`` pointing at the raw ingestion assets, so lineage runs unbroken from
landing file to data product.
"""


import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from factory_assets.lib.contracts import DataContract, core_raw_contracts, product_contract, product_contract_names
from factory_assets.lib.metadata import DBT_STATUS, EXECUTION_DURATION, FAILING_ROWS, round_metadata, unify_names
from factory_assets.lib.lake import ddl
from factory_assets.lib.warehouse import database_name, prepare_dbt, writer_lock
from factory_assets.processing.dbt_cli import (
    ORCHESTRATED_BUILD_EXCLUDES,
    TEST_WARNED,
    build_args,
    keep_partial_parse,
    model_errors,
    parse_run_results,
    partial_parse_args,
    partial_parse_file,
    saved_parse,
    release_duckdb,
    run_build,
    seed_partial_parse,
    table_row_counts,
)
from factory_assets.processing.dbt_manifest import (
    MANIFEST_PATH,
    OPERATIONS_FOLDER,
    asset_key_path,
    dbt_folder,
    describe_dbt_test,
    layer_of,
    load_manifest,
    retarget_manifest,
    model_nodes,
    resource_props,
)
from factory_assets.processing.dbt_metadata import (
    LINEAGE_TABLE,
    ColumnDoc,
    LineageTracer,
    column_docs,
    dbt_check_names,
    definition_schema,
    enrich_schema,
    lineage_markdown,
)
from factory_assets.raw_material.ingest import ensure_raw_tables
from factory_assets.resources import DbtRunner, FactoryStore
from factory_assets.settings import DBT_PROJECT_DIR, RAW_SOURCES, dbt_column_metadata, default_paths

PLATFORM_OWNER = "team:data-platform"
OPERATIONS_OWNER = "team:customer-service"

# dbt's profile reads the warehouse path from the environment; default it to FACTORY_HOME's so
# `dg dev` / `dg check defs` work without set-up.
os.environ.setdefault("FACTORY_WAREHOUSE_PATH", str(default_paths().warehouse))

__all__ = ["MANIFEST_PATH", "OPERATIONS_FOLDER", "dbt_multi_asset", "describe_dbt_test", "operations_dbt_models",
           "processing_dbt_models"]


def _description(node: Mapping[str, Any]) -> str:
    return node.get("description") or f"dbt {node['resource_type']} {node['name']} ({dbt_folder(node)})."


def core_product_contracts() -> dict[str, DataContract]:
    """The core's data products by dbt model name (``data_contracts/products/<model>.odcs.yaml``)."""
    return {name: product_contract(name) for name in product_contract_names()}


def dbt_asset_spec(manifest: Mapping[str, Any], unique_id: str, products: Mapping[str, DataContract] | None = None,
                   owner: str | None = None) -> dg.AssetSpec:
    """A dbt model as the UI shows it: layer key and group, contract owner, dbt folder tag, and its
    columns (``dagster/column_schema``: the contract's descriptions, classifications and types, else
    the dbt YAML's; see ``dbt_metadata``).

    ``products``: the data products' contracts by model name (default: the core's); ``owner``: the
    owner of the project's other models (default: the core's platform and operations teams)."""
    node = manifest["nodes"][unique_id]
    name, group, folder = node["name"], layer_of(node), dbt_folder(node)
    products = core_product_contracts() if products is None else products
    owners, metadata = [owner or PLATFORM_OWNER], {
        "dbt_unique_id": unique_id, "dagster/table_name": f"{node['database']}.{node['schema']}.{node['alias']}"}
    if name in products:
        contract = products[name]
        owners = [contract.owner]
        metadata.update(contract=contract.path.name, contract_version=contract.version,
                        data_product=contract.data_product)
    schema = definition_schema(column_docs(node, products.get(name)))
    if schema is not None:
        metadata["dagster/column_schema"] = schema
    if group == "distribution":
        owners = [owner or OPERATIONS_OWNER]
    deps = [dg.AssetKey(asset_key_path(resource_props(manifest, parent)))
            for parent in dict.fromkeys(node["depends_on"]["nodes"])
            if parent.split(".")[0] in ("model", "seed", "snapshot", "source")]
    return dg.AssetSpec(
        key=dg.AssetKey(asset_key_path(node)),
        deps=deps,
        description=_description(node),
        group_name=group,
        owners=owners,
        kinds={"dbt", manifest["metadata"].get("adapter_type", "duckdb")},
        tags={**{tag: "" for tag in node.get("tags", [])}, "layer": group, "dbt_layer": folder},
        code_version=node["checksum"]["checksum"][:16],
        metadata=metadata,
        skippable=True,  # dbt skips models downstream of a failed test or model
    )


def dbt_check_specs(manifest: Mapping[str, Any], unique_ids: list[str],
                    names: Mapping[str, dg.AssetCheckKey] | None = None) -> list[dg.AssetCheckSpec]:
    """dbt tests stay visible as checks, but are not Dagster-blocking.

    dbt itself skips models downstream of a failing test inside ``dbt build``; the Dagster-level
    gate is each product's ``contract`` check, which must run after a failure to show the failing
    rows. If dbt tests were blocking, the dbt step would fail first and that check would never run.
    Checks are named ``<test>__<column(s)>`` (``dbt_metadata.dbt_check_names``; ``names``: those,
    by test unique_id), not by dbt's long test names, which the UI cuts in the middle.
    """
    names = dbt_check_names(manifest, unique_ids) if names is None else names
    tests = manifest["nodes"]
    return [
        dg.AssetCheckSpec(name=key.name, asset=key.asset_key, description=describe_dbt_test(tests[test_uid]),
                          blocking=False, metadata={"dbt_test": tests[test_uid]["name"]})
        for test_uid, key in names.items()
    ]


def _runtime_translator():
    """dagster-dbt's translator mapping dbt events to the same keys as the specs (imported lazily)."""
    from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

    class FactoryDbtTranslator(DagsterDbtTranslator):
        def get_asset_spec(self, manifest, unique_id, project):
            spec = super().get_asset_spec(manifest, unique_id, project)
            return spec.replace_attributes(key=dg.AssetKey(asset_key_path(resource_props(manifest, unique_id))))

    return FactoryDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def _release_duckdb(invocation) -> None:
    """Close the warehouse connection dagster-dbt's in-process adapter opened for the metadata."""
    if invocation.adapter is not None:
        invocation.adapter.cleanup_connections()
    release_duckdb()


@dataclass(frozen=True)
class DbtStep:
    """What one dbt multi-asset covers: its dbt selector, and its models and tests by Dagster key.

    The core's project by default; a business unit's names its manifest, the raw contracts its
    sources read (created empty when never landed) and a folder of its own for dbt's saved parse."""

    whole: list[str]  # the dbt arguments that select all of it
    model_by_key: Mapping[dg.AssetKey, str]
    check_keys: frozenset
    manifest_path: Path = MANIFEST_PATH
    project_dir: Path = DBT_PROJECT_DIR
    raw_contracts: tuple[DataContract, ...] | None = None  # None: the core's raw sources
    state_folder: str | None = None  # under FACTORY_HOME/dbt_state; None: dbt_state itself (the core's)
    #: the checks' dbt tests: check key -> dbt test name (what ``--select`` takes), and test unique_id -> check key
    dbt_tests: Mapping[dg.AssetCheckKey, str] = field(default_factory=dict)
    check_by_test: Mapping[str, dg.AssetCheckKey] = field(default_factory=dict)
    #: each model's documented columns (contract or dbt YAML), for the materializations' column schema
    column_docs: Mapping[dg.AssetKey, Mapping[str, ColumnDoc]] = field(default_factory=dict)

    def raw_pii(self) -> set[tuple[dg.AssetKey, str]]:
        """Raw columns their contracts classify as personal data, as (raw asset key, column)."""
        contracts = core_raw_contracts().values() if self.raw_contracts is None else self.raw_contracts
        return {(dg.AssetKey(["raw_material", c.table]), column) for c in contracts for column in c.pii_columns}


def dbt_selection(step: DbtStep, selected_keys, selected_checks) -> list[str]:
    """``--select`` for the models (and tests) this step was asked for; ``step.whole`` when it is all.

    Compared with the multi-asset's full key set: in a subset run, ``context.assets_def`` is
    itself the subset, so comparing with it would always select everything.
    dbt's default (eager) indirect selection adds the tests of every selected model."""
    if set(selected_keys) == set(step.model_by_key) and set(selected_checks) == set(step.check_keys):
        return step.whole
    names = sorted(step.model_by_key[key] for key in selected_keys)
    names += sorted(step.dbt_tests.get(check, check.name) for check in selected_checks
                    if check.asset_key not in set(selected_keys))
    # one value, names separated by spaces (a union, to dbt): dagster-dbt reads one value after
    # --select, so further names would reach dbt as stray arguments ("unexpected extra arguments")
    return ["--select", " ".join(names)]


COLUMN_METADATA = ("dagster/column_schema", "dagster/column_lineage")

#: dbt that could not start or connect (a warehouse restarting, a lock held past its timeout) is
#: tried again after 10 s, then 20 s, with jitter; models whose SQL fails are not (see
#: ``_raise_on_model_errors``). Each try is a whole ``dbt build``: its writes are transactions, so a
#: failed try leaves tables as they were and a retry never doubles rows.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=float(os.environ.get("FACTORY_DBT_RETRY_DELAY_S", 10)),
                                 backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def recorded_column_metadata(context: dg.AssetExecutionContext) -> dict[dg.AssetKey, dict] | None:
    """Column schema and lineage already recorded for every selected model at its current code
    version, to carry onto tonight's materializations; None when any model needs them fetched.

    Column lineage changes only when a model's SQL does, but fetching it reads every model's and
    parent's columns (a query per model, most of a nightly dbt step's overhead). So it is fetched
    on the first run and whenever a model's code version (its SQL checksum) changes, and carried
    forward otherwise: the latest materialization always shows it."""
    versions, carried = context.assets_def.code_versions_by_key, {}
    for key in context.selected_asset_keys:
        event = context.instance.get_latest_materialization_event(key)
        materialization = event.asset_materialization if event else None
        if (materialization is None or "dagster/column_schema" not in materialization.metadata
                or materialization.tags.get("dagster/code_version") != versions.get(key)):
            return None
        carried[key] = {k: materialization.metadata[k] for k in COLUMN_METADATA if k in materialization.metadata}
    return carried


def _recorded_lineage(instance: dg.DagsterInstance):
    """An asset's column lineage as its latest materialization recorded it (None: none recorded)."""
    def lookup(key: dg.AssetKey) -> dg.TableColumnLineage | None:
        event = instance.get_latest_materialization_event(key)
        value = event.asset_materialization.metadata.get("dagster/column_lineage") \
            if event and event.asset_materialization else None
        return getattr(value, "value", value)
    return lookup


def model_metadata(key: dg.AssetKey, metadata: Mapping[str, Any], step: DbtStep, tracer: LineageTracer) -> dict:
    """A model's materialization metadata as the UI shows it: dagster-dbt's keys under the factory's
    names, floats rounded, the column schema with the definition's descriptions, classifications and
    contract types, and the column lineage as a table (``column_lineage``) next to
    ``dagster/column_lineage`` (which only Dagster+ draws)."""
    out = unify_names(metadata)
    schema = getattr(out.get("dagster/column_schema"), "value", out.get("dagster/column_schema"))
    if schema is not None:
        schema = enrich_schema(schema, step.column_docs.get(key, {}))
        out["dagster/column_schema"] = dg.MetadataValue.table_schema(schema)
    lineage = getattr(out.get("dagster/column_lineage"), "value", out.get("dagster/column_lineage"))
    if lineage is not None:
        columns = [c.name for c in schema.columns] if schema is not None else []
        out[LINEAGE_TABLE] = dg.MetadataValue.md(lineage_markdown(key, lineage, columns, tracer))
    return round_metadata(out)


def _record_carried(tracer: LineageTracer, carried: Mapping[dg.AssetKey, dict]) -> None:
    """The lineage carried onto tonight's materializations, known before any of them is shown."""
    for key, recorded in carried.items():
        lineage = recorded.get("dagster/column_lineage")
        tracer.record(key, getattr(lineage, "value", lineage))


def _check_key(step: DbtStep, test_unique_id: str | None, asset_key: dg.AssetKey, dbt_name: str) -> dg.AssetCheckKey:
    return step.check_by_test.get(test_unique_id or "") or dg.AssetCheckKey(asset_key, dbt_name)


def _as_asset_results(events, selected_checks, carried: Mapping[dg.AssetKey, dict], step: DbtStep,
                      tracer: LineageTracer) -> Iterator[Any]:
    """dagster-dbt's op-style events (run without a Dagster context) as this multi-asset's results."""
    for event in events:
        if isinstance(event, dg.AssetMaterialization):
            yield dg.MaterializeResult(asset_key=event.asset_key, metadata=model_metadata(
                event.asset_key, {**carried.get(event.asset_key, {}), **event.metadata}, step, tracer))
        elif isinstance(event, dg.AssetCheckEvaluation):
            uid = getattr(event.metadata.get("unique_id"), "value", None)
            key = _check_key(step, uid, event.asset_key, event.check_name)
            if key in selected_checks:  # eager selection also runs tests of neighbouring models
                yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=event.passed,
                                          severity=event.severity,
                                          metadata=round_metadata(unify_names(event.metadata)))
        else:
            yield event


def _dbt_build(context: dg.AssetExecutionContext, dbt: DbtRunner, store: FactoryStore, step: DbtStep):
    from factory_assets.lib.prediction_tables import ensure_prediction_tables

    # The dbt profile reads where the warehouse is from the environment; the store resource owns it.
    prepare_dbt(store.paths)
    manifest = retarget_manifest(load_manifest(step.manifest_path, step.project_dir), database_name(store.paths))
    with store.warehouse() as conn:
        # a source that never landed is an empty table
        ensure_raw_tables(conn, list(RAW_SOURCES) if step.raw_contracts is None else list(step.raw_contracts))
        ensure_prediction_tables(conn)  # likewise a prediction product never scored (no champion yet)
        # the schemas dbt writes, made first: two locations' first runs creating one schema at once
        # would conflict inside dbt's transaction; here the loser retries and finds it made
        for schema in sorted({n["schema"] for n in manifest["nodes"].values()
                              if n.get("resource_type") in ("model", "seed", "snapshot") and n.get("schema")}):
            ddl(conn, f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    carried = recorded_column_metadata(context) if dbt_column_metadata() else {}
    # Column lineage to (re)compute, or a warehouse other than the embedded DuckDB file:
    # dagster-dbt's in-process adapter reads columns, lineage and row counts from the warehouse.
    through_dagster_dbt = carried is None or bool(dbt.target)
    state = store.paths.dbt_state if step.state_folder is None else store.paths.dbt_state / step.state_folder
    parsed = partial_parse_file(state, dbt.target, session_file=through_dagster_dbt)
    start_from = saved_parse(state, dbt.target, session_file=through_dagster_dbt)
    args = ["build", *dbt_selection(step, context.selected_asset_keys, context.selected_asset_check_keys),
            *ORCHESTRATED_BUILD_EXCLUDES, *partial_parse_args(start_from)]
    target = dbt.target_path(f"{context.op.name}-{context.run.run_id[:7]}")
    context.log.info(f"dbt {' '.join(args)} (artifacts and dbt's log in {Path(dbt.project_dir) / target})")
    tracer = LineageTracer(_recorded_lineage(context.instance), step.raw_pii())
    # dbt writes the warehouse: on the DuckDB file, hold its write lock (other processes wait) for all of it.
    with writer_lock(store.paths, holder=f"dbt step of run {context.run.run_id}"):
        try:
            if through_dagster_dbt:
                seed_partial_parse(Path(dbt.project_dir) / target, start_from)
                yield from _build_through_dagster_dbt(context, dbt, manifest, args, target, carried, step, tracer,
                                                      session=state / "session.duckdb")
            else:
                yield from _build_in_process(context, dbt, store, manifest, args, target, carried, step, tracer)
        finally:
            keep_partial_parse(Path(dbt.project_dir) / target, parsed)


#: Builds of one dbt step when every model that failed lost a race for the lake's catalog (a SQLite
#: catalog refuses a commit while another process commits; PostgreSQL rarely loses one).
DBT_RACE_ATTEMPTS = 8


def _build_until_no_race(context, build_once):
    """``build_once()`` again, with jittered back-off, while every model error is a lost race for the
    lake (another process committed first, or held the SQLite catalog): each model is one
    transaction that replaces its table or its incremental slice, so building again adds nothing twice."""
    import random
    import time

    from factory_assets.lib.lake import is_conflict_message

    for attempt in range(1, DBT_RACE_ATTEMPTS + 1):
        build = build_once()
        errors = build.model_errors()
        if not errors or attempt == DBT_RACE_ATTEMPTS or not all(is_conflict_message(e) for e in errors):
            return build
        delay = min(10.0, 0.5 * 2 ** attempt) * (0.5 + random.random())
        context.log.warning(f"dbt lost a race for the lake ({errors[0][:300]}); building again in {delay:.1f} s "
                            f"(attempt {attempt + 1} of {DBT_RACE_ATTEMPTS})")
        time.sleep(delay)
    return build


def _build_in_process(context, dbt: DbtRunner, store: FactoryStore, manifest, args, target, carried, step: DbtStep,
                      tracer: LineageTracer):
    """The nightly path: dbt alone on the machine, results from run_results.json (``dbt_cli``)."""
    target_dir = Path(dbt.project_dir) / target
    build = _build_until_no_race(context, lambda: run_build(
        build_args(args, Path(dbt.project_dir), Path(dbt.profiles_dir), target_dir, dbt.target), target_dir, manifest))
    context.log.info(build.summary())
    with store.warehouse(read_only=True) as conn:
        rows = table_row_counts(conn, build.models)
    if carried:
        context.log.info("column schema and lineage: carried from the last materialization (no model's SQL changed)")
    selected, selected_checks = set(context.selected_asset_keys), set(context.selected_asset_check_keys)
    _record_carried(tracer, carried)
    for model in build.models:
        key = dg.AssetKey(asset_key_path(manifest["nodes"][model.unique_id]))
        if model.status != "success" or key not in selected:
            continue  # skipped by dbt (an upstream failure) or built by eager selection only
        metadata = {**carried.get(key, {}), "unique_id": model.unique_id, DBT_STATUS: model.status,
                    EXECUTION_DURATION: dg.MetadataValue.float(model.seconds)}
        if model.unique_id in rows:
            metadata["dagster/row_count"] = dg.MetadataValue.int(rows[model.unique_id])
        yield dg.MaterializeResult(asset_key=key, metadata=model_metadata(key, metadata, step, tracer))
    for test in build.tests:
        if test.status == "skipped" or test.tested_unique_id is None:
            continue
        key = _check_key(step, test.unique_id, dg.AssetKey(asset_key_path(manifest["nodes"][test.tested_unique_id])),
                         test.name)
        if key not in selected_checks:  # eager selection also runs tests of neighbouring models
            continue
        yield dg.AssetCheckResult(
            asset_key=key.asset_key, check_name=key.name, passed=test.passed,
            severity=dg.AssetCheckSeverity.WARN if test.status in TEST_WARNED else dg.AssetCheckSeverity.ERROR,
            metadata={DBT_STATUS: test.status, FAILING_ROWS: dg.MetadataValue.int(test.failures or 0),
                      "unique_id": test.unique_id, **({"message": test.message} if test.message else {})})
    _raise_on_model_errors(build.model_errors(), f"see dbt's log {build.log_path}")


def _build_through_dagster_dbt(context, dbt: DbtRunner, manifest, args, target, carried, step: DbtStep,
                               tracer: LineageTracer, session: Path):
    # dagster-dbt reopens the profile's database read-only to read row counts and columns, which an
    # in-memory database cannot be: the lake's session is an empty file beside the step's saved parse,
    # at one path per home and step (the profile's values are part of what keeps dbt's parse valid).
    session.parent.mkdir(parents=True, exist_ok=True)
    os.environ["FACTORY_DBT_SESSION_DB"] = str(session)
    try:
        invocation = dbt.cli_resource().cli(
            args, manifest=manifest, dagster_dbt_translator=_runtime_translator(), raise_on_error=False,
            target_path=target)
        yield from _stream_dagster_dbt(context, invocation, manifest, carried, step, tracer)
    finally:
        os.environ.pop("FACTORY_DBT_SESSION_DB", None)


def _stream_dagster_dbt(context, invocation, manifest, carried, step: DbtStep, tracer: LineageTracer):
    # Row counts, column schema and column-level lineage (sqlglot over the compiled SQL) for the UI.
    # With DuckDB, dagster-dbt reads them once dbt has exited and released the file's write lock.
    events = invocation.stream().fetch_row_counts()
    if carried is None:
        context.log.info("column schema and lineage: fetched (first run, or a model's SQL changed)")
        events, carried = events.fetch_column_metadata(with_column_lineage=True), {}
    _record_carried(tracer, carried)
    try:
        yield from _as_asset_results(events, set(context.selected_asset_check_keys), carried, step, tracer)
    finally:
        _release_duckdb(invocation)
    errors = model_errors(parse_run_results(invocation.get_artifact("run_results.json"), manifest)[0])
    _retry_if_lost_race(context, errors)
    _raise_on_model_errors(errors, "see the dbt log above")


def _retry_if_lost_race(context, errors: list[str]) -> None:
    """This path streams dbt's results as they come, so it cannot build again inside the step as the
    nightly path does (``_build_until_no_race``): when every model error is a lost race for the lake,
    Dagster runs the step again instead (each model replaces its table or slice: nothing twice)."""
    import random

    from factory_assets.lib.lake import is_conflict_message

    if errors and all(is_conflict_message(e) for e in errors):
        delay = min(10.0, 0.5 * 2 ** (getattr(context, "retry_number", 0) + 1)) * (0.5 + random.random())
        context.log.warning(f"dbt lost a race for the lake ({errors[0][:300]}); the step runs again in {delay:.1f} s")
        raise dg.RetryRequested(max_retries=DBT_RACE_ATTEMPTS - 1, seconds_to_wait=delay)


#: ENOSPC as DuckDB and dbt report it (a model's error, a line of dbt's log).
DISK_FULL = "No space left on device"


def _disk_full_cause(errors: list[str]) -> str:
    """' (No space left on device: ...)' naming the file, for the first error that says so; else ''."""
    for error in errors:
        for line in error.splitlines():
            if DISK_FULL in line:
                return f" ({' '.join(line.split())[:400]})"
    return ""


def _raise_on_model_errors(errors: list[str], where: str) -> None:
    """A model's SQL failing is not transient: the step fails at once, without retries. A full disk
    is named in the description itself, with the file DuckDB could not write, not only in the log."""
    if errors:
        raise dg.Failure(
            description=f"dbt could not build some models{_disk_full_cause(errors)}; {where}.",
            metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors))},
            allow_retries=False,
        )


def dbt_multi_asset(name: str, operations: bool, description: str, *, project_dir: Path = DBT_PROJECT_DIR,
                    manifest_path: Path = MANIFEST_PATH, products: Mapping[str, DataContract] | None = None,
                    owner: str | None = None, raw_contracts: tuple[DataContract, ...] | None = None,
                    state_folder: str | None = None) -> dg.AssetsDefinition | None:
    """The models of a dbt project (the core's by default) outside, or inside, its operations folder
    as one subsettable multi-asset run by the ``dbt`` resource (a ``DbtRunner`` on that project);
    None when there are no such models. See ``DbtStep`` for the other arguments."""
    manifest = load_manifest(manifest_path, project_dir)
    unique_ids = sorted(model_nodes(manifest, operations=operations))
    if not unique_ids:
        return None
    products = core_product_contracts() if products is None else products
    specs = [dbt_asset_spec(manifest, uid, products, owner) for uid in unique_ids]
    check_names = dbt_check_names(manifest, unique_ids)
    check_specs = dbt_check_specs(manifest, unique_ids, check_names)
    step = DbtStep(whole=["--select" if operations else "--exclude", f"path:models/{OPERATIONS_FOLDER}"],
                   model_by_key={spec.key: manifest["nodes"][uid]["name"] for spec, uid in zip(specs, unique_ids)},
                   check_keys=frozenset(check.key for check in check_specs), manifest_path=manifest_path,
                   project_dir=project_dir, raw_contracts=raw_contracts, state_folder=state_folder,
                   dbt_tests={key: manifest["nodes"][uid]["name"] for uid, key in check_names.items()},
                   check_by_test=check_names,
                   column_docs={spec.key: column_docs(node, products.get(node["name"]))
                                for spec, node in zip(specs, (manifest["nodes"][uid] for uid in unique_ids))})

    @dg.multi_asset(
        name=name,
        specs=specs,
        check_specs=check_specs,
        can_subset=True,
        description=description,
        op_tags={"kind": "dbt"},
        retry_policy=TRANSIENT_RETRY,
    )
    def _dbt_models(context: dg.AssetExecutionContext, dbt: DbtRunner, store: FactoryStore):
        yield from _dbt_build(context, dbt, store, step)

    return _dbt_models


#: The core's two dbt multi-assets, built from its manifest on first use (``processing/defs.py`` and
#: ``distribution/defs.py`` import them when the core location loads), so that a business unit's
#: location, which uses this module for its own dbt project, never reads the core's manifest.
_CORE_DBT_ASSETS = {
    "processing_dbt_models": {
        "operations": False,
        "description": "dbt build of staging, intermediate and mart models (the data products), with their tests."},
    "operations_dbt_models": {
        "operations": True,
        "description": "dbt models that read prediction products (e.g. service_priority); they run after scoring."},
}
processing_dbt_models: dg.AssetsDefinition
operations_dbt_models: dg.AssetsDefinition


def __getattr__(name: str):
    if name in _CORE_DBT_ASSETS:
        globals()[name] = dbt_multi_asset(name, **_CORE_DBT_ASSETS[name])
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
