"""What a dbt model and its tests show in the open-source Dagster UI.

* **Columns** (``dagster/column_schema``): each column's contract description, classification (a
  column tag) and contract type (the product's ``physicalType``, e.g. VARCHAR, where DuckDB's
  catalog says ``character varying(256)``). Models without a contract (staging, intermediate) keep
  their dbt YAML's descriptions and the warehouse's types, in DuckDB's spelling. The same schema is
  on the asset's definition, so the UI shows it before anything ran.
* **Column lineage**: dagster-dbt records ``dagster/column_lineage``, which only Dagster+ draws.
  :func:`lineage_markdown` writes it as a table (``column_lineage``), one row per column: the
  upstream columns it is computed from, and what those trace back to through the other dbt models
  (a raw asset's column, marked when its raw contract classifies it as personal data).
* **Check names**: dbt names a generic test ``<test>_<model>_<column>_<arguments>`` (131
  characters for one accepted_values test here), which the UI cuts in the middle.
  :func:`dbt_check_names` names each check ``<test>__<column(s)>`` on its asset instead (e.g.
  ``accepted_values__channel``, ``unique__order_id__line_number``), unique per
  asset; the dbt test's own name is in the check's description and metadata.

No dagster-dbt or dbt import: the code location builds the specs from manifest.json alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from factory_assets.processing.dbt_manifest import asset_key_path, tests_by_node

#: Column tag holding a column's classification (the contract's: public, internal, pii).
CLASSIFICATION_TAG = "classification"
#: Materialization metadata key of the column-lineage table (``dagster/column_lineage`` stays too).
LINEAGE_TABLE = "column_lineage"

#: DuckDB's catalog as dbt-duckdb reads it -> DuckDB's own type names (what contracts use).
_TYPE_SPELLINGS = (
    (re.compile(r"^(character varying|varchar|text|string)(\s*\(\d+\))?$", re.I), "VARCHAR"),
    (re.compile(r"^double precision$", re.I), "DOUBLE"),
    (re.compile(r"^timestamp without time zone$", re.I), "TIMESTAMP"),
    (re.compile(r"^timestamp with time zone$", re.I), "TIMESTAMPTZ"),
)


def duckdb_type(spelling: str | None) -> str | None:
    """A column type as DuckDB (and the contracts) spell it: ``character varying(256)`` -> VARCHAR."""
    if not spelling or spelling == "?":
        return None
    text = " ".join(spelling.split())
    for pattern, name in _TYPE_SPELLINGS:
        if pattern.match(text):
            return name
    return text.upper()


@dataclass(frozen=True)
class ColumnDoc:
    """What a model's definition says about one column; ``type`` None: the warehouse's type."""

    description: str | None = None
    type: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def column_docs(node: Mapping[str, Any], contract=None) -> dict[str, ColumnDoc]:
    """A dbt model's columns, by name, in definition order: from its product contract (name,
    description, classification, physicalType), else from the dbt YAML in the manifest."""
    if contract is not None:
        return {c.name: ColumnDoc(c.description or None, c.physical_type, {CLASSIFICATION_TAG: c.classification})
                for c in contract.columns}
    docs = {}
    for name, column in (node.get("columns") or {}).items():
        meta = {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}
        tags = {tag: "" for tag in column.get("tags") or []}
        if meta.get("classification"):
            tags[CLASSIFICATION_TAG] = str(meta["classification"])
        docs[name] = ColumnDoc(column.get("description") or None, duckdb_type(column.get("data_type")), tags)
    return docs


def definition_schema(docs: Mapping[str, ColumnDoc]) -> dg.TableSchema | None:
    """The asset spec's ``dagster/column_schema``: the documented columns (none: no schema)."""
    if not docs:
        return None
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=doc.type or "?", description=doc.description,
                                                  tags=dict(doc.tags) or None)
                                   for name, doc in docs.items()])


def enrich_schema(schema: dg.TableSchema | None, docs: Mapping[str, ColumnDoc]) -> dg.TableSchema | None:
    """A materialization's column schema (the warehouse's columns, in table order) with each
    column's description, tags and contract type from ``docs``; a column the definition does not
    document keeps what the warehouse says, its type in DuckDB's spelling. Idempotent, so a schema
    carried from an earlier run gets today's descriptions."""
    if schema is None:
        return None
    columns = []
    for column in schema.columns:
        doc = docs.get(column.name, ColumnDoc())
        columns.append(dg.TableColumn(
            name=column.name,
            type=doc.type or duckdb_type(column.type) or column.type,
            description=doc.description or column.description,
            constraints=column.constraints,
            tags={**(column.tags or {}), **doc.tags} or None,
        ))
    return dg.TableSchema(columns=columns, constraints=schema.constraints)


# --------------------------------------------------------------------------------------------------
# Column lineage as a table
# --------------------------------------------------------------------------------------------------

Column = tuple[dg.AssetKey, str]


class LineageTracer:
    """Column lineage of the dbt assets, to follow a column back through several models.

    ``lookup(key)`` gives an asset's recorded lineage (a TableColumnLineage, or None: a raw asset,
    or a model never materialized with lineage); what this run records comes first (:meth:`record`).
    ``pii``: raw columns classified as personal data, marked where a column traces back to one."""

    def __init__(self, lookup: Callable[[dg.AssetKey], dg.TableColumnLineage | None] = lambda key: None,
                 pii: Iterable[Column] = ()):
        self._lookup = lookup
        self._known: dict[dg.AssetKey, dg.TableColumnLineage | None] = {}
        self.pii = frozenset(pii)

    def record(self, key: dg.AssetKey, lineage: dg.TableColumnLineage | None) -> None:
        self._known[key] = lineage

    def lineage(self, key: dg.AssetKey) -> dg.TableColumnLineage | None:
        if key not in self._known:
            self._known[key] = self._lookup(key)
        return self._known[key]

    def origins(self, key: dg.AssetKey, column: str, seen: frozenset = frozenset()) -> set[Column]:
        """The columns ``key.column`` traces back to: those with no recorded lineage further up."""
        lineage = self.lineage(key)
        deps = lineage.deps_by_column.get(column) if lineage is not None else None
        if not deps or (key, column) in seen:
            return {(key, column)}
        out: set[Column] = set()
        for dep in deps:
            out |= self.origins(dep.asset_key, dep.column_name, seen | {(key, column)})
        return out


def _name(column: Column) -> str:
    return f"{column[0].to_user_string()}.{column[1]}"


def _cell(columns: Iterable[Column], pii: frozenset = frozenset()) -> str:
    names = sorted(_name(c) + (" (pii)" if c in pii else "") for c in columns)
    return ", ".join(names).replace("|", "/") if names else "(no input column)"


def lineage_markdown(key: dg.AssetKey, lineage: dg.TableColumnLineage, columns: Sequence[str],
                     tracer: LineageTracer) -> str:
    """One row per column of ``key`` (``columns`` order, then any other with lineage): the upstream
    asset columns it is computed from, and the columns those trace back to (raw, or as far as
    lineage is recorded; ``(pii)``: a raw column its contract classifies as personal data)."""
    tracer.record(key, lineage)
    names = list(dict.fromkeys([*columns, *lineage.deps_by_column]))
    lines = ["| column | computed from | traces back to |", "|---|---|---|"]
    for name in names:
        deps = [(d.asset_key, d.column_name) for d in lineage.deps_by_column.get(name, [])]
        origins = set().union(*(tracer.origins(*dep) for dep in deps)) if deps else set()
        lines.append(f"| {name} | {_cell(deps)} | {_cell(origins, tracer.pii) if deps else ''} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Check names
# --------------------------------------------------------------------------------------------------

#: Arguments of a generic test that name the columns it checks.
_COLUMN_ARGUMENTS = ("column_name", "combination_of_columns", "columns", "column_names")
#: Shorter words for long test names: ``unique__order_id__line_number`` says the combination is unique.
_TEST_WORDS = {"unique_combination_of_columns": "unique"}


def _identifier(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_")


def _ref_name(value: Any) -> str | None:
    """``ref('dim_customers')`` / ``source('erp', 'x')`` -> the last name in it."""
    names = re.findall(r"""['"]([^'"]+)['"]""", str(value))
    return names[-1] if names else None


def readable_check_name(test: Mapping[str, Any], model: str) -> str:
    """A dbt test's check name on its model's asset: ``<test>__<column(s)>`` (``accepted_values__channel``,
    ``unique__order_id__line_number`` for unique_combination_of_columns, ``relationships__customer_key__to__dim``);
    a test without column arguments is ``<test>``. Tests dbt did not name itself keep their name:
    singular tests, and generic tests given an explicit ``name:``."""
    meta = test.get("test_metadata") or {}
    if not meta.get("name"):
        return test["name"]  # a singular test: its file name
    kind = meta["name"]
    synthesized = f"{meta['namespace']}_{kind}" if meta.get("namespace") else kind
    if not test["name"].startswith(f"{synthesized}_{model}"):
        return test["name"]  # named in the YAML
    kwargs = meta.get("kwargs") or {}
    parts = [_TEST_WORDS.get(kind, kind)]
    for argument in _COLUMN_ARGUMENTS:
        value = kwargs.get(argument)
        if value:
            parts += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    if kind == "relationships" and _ref_name(kwargs.get("to")):
        parts += ["to", _ref_name(kwargs["to"])]
    return "__".join(_identifier(p) for p in parts if _identifier(p))


def _without_model(test: Mapping[str, Any], model: str) -> str:
    """dbt's whole name without the model's (``accepted_range_days_late__3650__0``)."""
    return _identifier(test["name"].replace(f"_{model}_", "_", 1))


def check_names_for_model(tests: Sequence[Mapping[str, Any]], model: str) -> dict[str, str]:
    """Check name by dbt test unique_id, for the tests of one model: :func:`readable_check_name`;
    where two of its tests would share one, each of those is named by dbt's whole name without the
    model's (it carries the arguments), and, should that collide too, by dbt's name itself."""
    preferred = {t["unique_id"]: readable_check_name(t, model) for t in tests}
    names: dict[str, str] = {}
    for test in tests:
        uid = test["unique_id"]
        if list(preferred.values()).count(preferred[uid]) == 1:
            names[uid] = preferred[uid]
        else:
            names[uid] = _without_model(test, model)
    taken = list(names.values())
    for test in tests:  # last resort: dbt's own names are unique in a project
        if taken.count(names[test["unique_id"]]) > 1:
            names[test["unique_id"]] = test["name"]
    return names


def dbt_check_names(manifest: Mapping[str, Any], unique_ids: Iterable[str]) -> dict[str, dg.AssetCheckKey]:
    """The asset check key of every dbt test on the models ``unique_ids``, by the test's unique_id."""
    tests = tests_by_node(manifest)
    out: dict[str, dg.AssetCheckKey] = {}
    for uid in unique_ids:
        node = manifest["nodes"][uid]
        key = dg.AssetKey(asset_key_path(node))
        for test_uid, name in check_names_for_model(sorted(tests.get(uid, []), key=lambda t: t["unique_id"]),
                                                    node["name"]).items():
            out[test_uid] = dg.AssetCheckKey(key, name)
    return out
