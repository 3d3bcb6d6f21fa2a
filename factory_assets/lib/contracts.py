"""Data contracts: load Open Data Contract Standard (ODCS v3) YAML into typed objects.

The contract is the single source of truth for a dataset's schema, quality rules, owner, SLA and
per-column classification. Everything else (pandera schemas for landing files, dbt model
contracts and tests, the blocking product checks) is derived from these objects, so a change
in one YAML file changes every enforcement point at once.

Only the subset of ODCS v3 that the factory enforces is modelled; unknown top-level keys are
kept in ``extra`` so contracts can carry more than we read. Mistakes in the keys we *do* read
raise ``ContractError`` naming the file and the offending field.

Where a table lives: a contract of a warehouse table (data product, feature set, prediction product)
declares the warehouse as an ODCS ``servers`` entry of type ``duckdb`` (``database``: the DuckDB
file, ``schema``: the table's schema) and its ``physicalName`` is the table's name alone, as the
Data Contract CLI (``datacontract test``) expects. ``DataContract.physical_name`` is always the
relation the factory queries, ``<schema>.<table>``. A contract without a duckdb server may still
write the schema into ``physicalName`` (``raw.weather``; the raw landing contracts do).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any


from factory_assets.lib.yaml_files import read_yaml_file

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = PROJECT_ROOT / "data_contracts"
#: One contract per raw source; the file name (``<source>.odcs.yaml``) is the source's name.
RAW_CONTRACTS_DIR = CONTRACTS_DIR / "raw"
RAW_CONTRACT_SUFFIX = ".odcs.yaml"

#: customProperties a raw contract reads: ``sourceKind`` (one of SOURCE_KINDS, the asset's
#: ``source_kind`` tag), ``landingFormat`` (one of LANDING_FORMATS), ``dbtSource`` (the dbt source
#: the table belongs to; default: the source's name), ``filePattern`` (the landing file's name,
#: ``{date}`` standing for its day; default ``<source>_{date}.<landingFormat>``), and the delivery
#: window: ``eventDateColumn`` (a DATE or TIMESTAMP column dating each row), ``eventDateLagDays``
#: and ``eventDateLeadDays`` (how many days before / after the file's day a row may be dated; 0).
SOURCE_KINDS = ("transactions", "iot", "documents", "external", "feedback")
LANDING_FORMATS = ("csv", "jsonl")

#: Columns the ingestion adds to every raw table after the contract's own (provenance of each row).
PROVENANCE_COLUMNS = {
    "_source_file": "VARCHAR",
    "_checksum": "VARCHAR",
    "_row_number": "INTEGER",
    "_partition_date": "DATE",
    "_ingested_at": "TIMESTAMP",
}

#: physicalType (DuckDB) accepted in contracts -> logicalType it must agree with.
PHYSICAL_TO_LOGICAL = {
    "VARCHAR": "string",
    "INTEGER": "integer",
    "BIGINT": "integer",
    "DOUBLE": "number",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "BOOLEAN": "boolean",
}
#: ``pseudonymised``: a key derived from personal data (a salted hash of a customer number), not
#: personal data itself, but never to be joined back to it.
CLASSIFICATIONS = {"public", "internal", "pseudonymised", "pii"}

#: The ODCS server of the factory's warehouse in a contract of a warehouse table: the DuckDB file
#: relative to the project root (FACTORY_HOME's default, ``.factory``). The file is per installation:
#: ``datacontract test`` reads another one from DATACONTRACT_DUCKDB_DATABASE (data_contracts/README.md).
WAREHOUSE_SERVER = "warehouse"
WAREHOUSE_SERVER_DATABASE = ".factory/warehouse.duckdb"
WAREHOUSE_SERVER_DESCRIPTION = (
    "The factory's DuckDB warehouse; the path is relative to the project root (FACTORY_HOME defaults to .factory). "
    "Another installation's warehouse (its FACTORY_WAREHOUSE_PATH) is given to `datacontract test` as "
    "DATACONTRACT_DUCKDB_DATABASE (data_contracts/README.md).")


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Column:
    name: str
    logical_type: str
    physical_type: str
    required: bool
    unique: bool
    description: str
    classification: str
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    valid_values: tuple[Any, ...] | None = None
    tags: tuple[str, ...] = ()

    @property
    def is_pii_derived(self) -> bool:
        """Not personal data itself, but computed from it (e.g. sentiment read from ticket text)."""
        return "pii_derived" in self.tags

    @property
    def is_pii(self) -> bool:
        return self.classification == "pii"


@dataclass(frozen=True)
class Server:
    """One entry of the contract's ODCS ``servers``: where the data can be read."""

    name: str
    type: str
    database: str | None = None
    schema: str | None = None
    description: str = ""


@dataclass(frozen=True)
class DataContract:
    path: Path
    id: str
    name: str
    version: str
    status: str
    domain: str
    data_product: str
    description: str
    owner: str
    team: str
    table: str
    #: The relation in the warehouse, ``<schema>.<table>``: the ODCS physicalName (the table's name)
    #: qualified by the schema of the contract's duckdb server.
    physical_name: str
    columns: tuple[Column, ...]
    table_description: str = ""
    unique_together: tuple[tuple[str, ...], ...] = ()
    freshness_days: float | None = None
    freshness_column: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    servers: tuple[Server, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.is_pii]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no column {name!r} in contract {self.path.name}")

    @property
    def source_kind(self) -> str | None:
        """Raw contracts: the kind of source (``customProperties`` sourceKind)."""
        return self.custom.get("sourceKind")

    @property
    def landing_format(self) -> str:
        return self.custom.get("landingFormat") or "csv"

    @property
    def dbt_source(self) -> str:
        """Raw contracts: the dbt source declaring this table (``customProperties`` dbtSource)."""
        return self.custom.get("dbtSource") or self.table

    @property
    def file_pattern(self) -> str:
        """Raw contracts: the landing file's name with ``{date}`` for its day."""
        return self.custom.get("filePattern") or f"{self.table}_{{date}}.{self.landing_format}"

    @property
    def event_date_column(self) -> str | None:
        """Raw contracts: the column dating each row, checked against the file's day."""
        return self.custom.get("eventDateColumn") or None

    @property
    def event_date_window(self) -> tuple[int, int]:
        """Raw contracts: (lag, lead) days a row's date may lie before / after the file's day."""
        return int(self.custom.get("eventDateLagDays") or 0), int(self.custom.get("eventDateLeadDays") or 0)

    @property
    def checksum(self) -> str:
        """Short hash of the contract file, recorded with every check so results are traceable."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]


def _require(doc: dict, key: str, where: str, path: Path) -> Any:
    if key not in doc or doc[key] in (None, ""):
        raise ContractError(f"{path}: missing required field '{where}{key}'")
    return doc[key]


def _parse_column(prop: dict, where: str, path: Path) -> Column:
    name = _require(prop, "name", where, path)
    where = f"{where}{name}."
    physical = str(_require(prop, "physicalType", where, path)).upper()
    logical = _require(prop, "logicalType", where, path)
    if physical not in PHYSICAL_TO_LOGICAL:
        raise ContractError(
            f"{path}: {where}physicalType {physical!r} is not one of {sorted(PHYSICAL_TO_LOGICAL)}"
        )
    if PHYSICAL_TO_LOGICAL[physical] != logical:
        raise ContractError(
            f"{path}: {where}logicalType {logical!r} does not match physicalType {physical} "
            f"(expected {PHYSICAL_TO_LOGICAL[physical]!r})"
        )
    classification = prop.get("classification", "internal")
    if classification not in CLASSIFICATIONS:
        raise ContractError(
            f"{path}: {where}classification {classification!r} is not one of {sorted(CLASSIFICATIONS)}"
        )
    options = prop.get("logicalTypeOptions") or {}
    valid_values = None
    for rule in prop.get("quality") or []:
        metric = rule.get("metric")
        if metric == "invalidValues":
            values = (rule.get("arguments") or {}).get("validValues")
            if not values:
                raise ContractError(f"{path}: {where}quality invalidValues needs arguments.validValues")
            valid_values = tuple(values)
        elif metric not in ("nullValues", "duplicateValues"):
            raise ContractError(
                f"{path}: {where}quality metric {metric!r} is not supported "
                "(use invalidValues, nullValues or duplicateValues)"
            )
    return Column(
        name=name,
        logical_type=logical,
        physical_type=physical,
        required=bool(prop.get("required", False)),
        unique=bool(prop.get("unique", False)),
        description=str(prop.get("description", "")).strip(),
        classification=classification,
        minimum=options.get("minimum"),
        maximum=options.get("maximum"),
        pattern=options.get("pattern"),
        valid_values=valid_values,
        tags=tuple(str(t) for t in prop.get("tags") or ()),
    )


def _parse_servers(doc: dict, path: Path) -> tuple[Server, ...]:
    servers = doc.get("servers")
    if servers is None:
        return ()
    if not isinstance(servers, list):
        raise ContractError(f"{path}: 'servers' must be a list of servers (ODCS v3), each with 'server' and 'type'")
    parsed = []
    for index, entry in enumerate(servers):
        where = f"servers[{index}]."
        if not isinstance(entry, dict):
            raise ContractError(f"{path}: {where.rstrip('.')} must be a mapping with 'server' and 'type'")
        server = Server(name=str(_require(entry, "server", where, path)), type=str(_require(entry, "type", where, path)),
                        database=entry.get("database"), schema=entry.get("schema"),
                        description=str(entry.get("description") or "").strip())
        if server.type == "duckdb":
            _require(entry, "database", where, path)  # ODCS: the path of the DuckDB file
        parsed.append(server)
    names = [s.name for s in parsed]
    if len(set(names)) != len(names):
        raise ContractError(f"{path}: servers name the same server twice ({names})")
    return tuple(parsed)


def _relation(table: dict, table_name: str, servers: tuple[Server, ...], path: Path) -> str:
    """``<schema>.<table>``: physicalName qualified by the duckdb server's schema (see the module doc)."""
    physical = str(table.get("physicalName") or table_name)
    schemas = sorted({s.schema for s in servers if s.type == "duckdb" and s.schema})
    if not schemas:
        return physical
    if len(schemas) > 1:
        raise ContractError(f"{path}: the duckdb servers name different schemas {schemas}; the table lives in one")
    if "." in physical:
        raise ContractError(
            f"{path}: schema.{table_name}.physicalName {physical!r} must be the table's name alone: its schema is "
            f"the duckdb server's ({schemas[0]!r}), and `datacontract test` reads physicalName as one table name"
        )
    return f"{schemas[0]}.{physical}"


def parse_contract(doc: Any, path: Path) -> DataContract:
    if not isinstance(doc, dict):
        raise ContractError(f"{path}: a contract must be a YAML mapping")
    if doc.get("kind") != "DataContract":
        raise ContractError(f"{path}: 'kind' must be DataContract")
    if not str(doc.get("apiVersion", "")).startswith("v3"):
        raise ContractError(f"{path}: 'apiVersion' must be an ODCS v3 version such as v3.1.0")
    schema = _require(doc, "schema", "", path)
    if not isinstance(schema, list) or len(schema) != 1:
        raise ContractError(f"{path}: 'schema' must list exactly one table")
    table = schema[0]
    table_name = _require(table, "name", "schema[0].", path)
    props = _require(table, "properties", f"schema.{table_name}.", path)
    columns = tuple(_parse_column(p, f"schema.{table_name}.", path) for p in props)
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ContractError(f"{path}: duplicate column names in schema.{table_name}")
    unique_together = []
    for rule in table.get("quality") or []:
        if rule.get("metric") == "duplicateValues":
            cols = tuple((rule.get("arguments") or {}).get("properties") or [])
            missing = [c for c in cols if c not in names]
            if not cols or missing:
                raise ContractError(
                    f"{path}: schema.{table_name}.quality duplicateValues names unknown columns {missing}"
                )
            unique_together.append(cols)
    team = _require(doc, "team", "", path)
    members = team.get("members") or []
    owners = [m.get("username") for m in members if m.get("role") == "owner"]
    if not owners:
        raise ContractError(f"{path}: team.members needs one member with role: owner")
    freshness, freshness_column = None, None
    for sla in doc.get("slaProperties") or []:
        if sla.get("property") in ("latency", "freshness") and sla.get("unit") in ("d", "day", "days"):
            freshness = float(sla["value"])
            element = str(sla.get("element") or "").rpartition(".")[2]
            if element and element not in names:
                raise ContractError(f"{path}: slaProperties {sla['property']} element names unknown column {element!r}")
            freshness_column = element or None
    description = doc.get("description") or {}
    servers = _parse_servers(doc, path)
    return DataContract(
        path=path,
        id=_require(doc, "id", "", path),
        name=_require(doc, "name", "", path),
        version=str(_require(doc, "version", "", path)),
        status=_require(doc, "status", "", path),
        domain=doc.get("domain", ""),
        data_product=doc.get("dataProduct", ""),
        description=str(description.get("purpose", "")).strip() if isinstance(description, dict) else str(description),
        owner=owners[0],
        team=team.get("name", ""),
        table=table_name,
        physical_name=_relation(table, table_name, servers, path),
        columns=columns,
        table_description=str(table.get("description") or "").strip(),
        unique_together=tuple(unique_together),
        freshness_days=freshness,
        freshness_column=freshness_column,
        custom={p["property"]: p.get("value") for p in doc.get("customProperties") or []},
        servers=servers,
    )


def load_contract(path: Path | str) -> DataContract:
    path = Path(path)
    return parse_contract(read_yaml_file(path, ContractError), path)


def raw_source_name(path: Path) -> str:
    return Path(path).name.removesuffix(RAW_CONTRACT_SUFFIX)


def raw_contract_dirs() -> list[Path]:
    """Every raw-contract folder of this project: the core's and each business unit's. They share
    one landing zone and one ``raw`` schema, so a source name may be declared only once."""
    return [RAW_CONTRACTS_DIR, *sorted(PROJECT_ROOT.glob("business_units/*/data_contracts/raw"))]


def raw_contract_files(folders: Iterable[Path]) -> dict[str, Path]:
    """Source name -> contract file over ``folders``; the same name in two files is an error."""
    found: dict[str, Path] = {}
    for folder in dict.fromkeys(Path(f).resolve() for f in folders):
        for path in sorted(folder.glob(f"*{RAW_CONTRACT_SUFFIX}")):
            name = raw_source_name(path)
            if name in found:
                raise ContractError(
                    f"raw source {name!r} is declared twice: {found[name]} and {path}. Sources share one "
                    "landing zone and one raw schema, so each name is declared once; rename one of them "
                    "(file name, schema name and physicalName)."
                )
            found[name] = path
    return found


def check_raw_contract(contract: DataContract) -> DataContract:
    """What ingestion relies on: the file, table and ``raw.<table>`` agree; kind and format known."""
    path, source = contract.path, raw_source_name(contract.path)
    if contract.table != source:
        raise ContractError(f"{path}: schema[0].name {contract.table!r} must equal the file's source name {source!r}")
    if contract.physical_name != f"raw.{source}":
        raise ContractError(f"{path}: physicalName {contract.physical_name!r} must be 'raw.{source}'")
    if contract.source_kind not in SOURCE_KINDS:
        raise ContractError(
            f"{path}: customProperties sourceKind {contract.source_kind!r} must be one of {list(SOURCE_KINDS)}"
        )
    if contract.landing_format not in LANDING_FORMATS:
        raise ContractError(
            f"{path}: customProperties landingFormat {contract.landing_format!r} must be one of {list(LANDING_FORMATS)}"
        )
    clash = sorted(set(contract.column_names) & set(PROVENANCE_COLUMNS))
    if clash:
        raise ContractError(f"{path}: columns {clash} are reserved for the provenance ingestion adds")
    pattern = contract.file_pattern
    if pattern.count("{date}") != 1 or not pattern.endswith(f".{contract.landing_format}") or "/" in pattern:
        raise ContractError(
            f"{path}: customProperties filePattern {pattern!r} must hold {{date}} once and end with "
            f".{contract.landing_format} (the landingFormat), e.g. '{source}_{{date}}.{contract.landing_format}'"
        )
    column = contract.event_date_column
    if column is not None:
        if column not in contract.column_names:
            raise ContractError(f"{path}: customProperties eventDateColumn {column!r} is not a column of schema.{source}")
        if contract.column(column).physical_type not in ("DATE", "TIMESTAMP"):
            raise ContractError(f"{path}: customProperties eventDateColumn {column!r} must be a DATE or TIMESTAMP column")
    for key in ("eventDateLagDays", "eventDateLeadDays"):
        value = contract.custom.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ContractError(f"{path}: customProperties {key} {value!r} must be a whole number of days >= 0")
        if value is not None and column is None:
            raise ContractError(f"{path}: customProperties {key} needs eventDateColumn (the column it applies to)")
    return contract


def load_raw_contracts(folder: Path | str, others: Iterable[Path] = ()) -> dict[str, DataContract]:
    """The raw contracts of ``folder`` by source name, checked; a name also declared in one of
    ``others`` (folders sharing the landing zone) is an error naming both files."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ContractError(f"{folder}: no such folder of raw contracts")
    files = raw_contract_files([folder, *others])
    return {name: check_raw_contract(load_contract(path)) for name, path in files.items() if path.parent == folder}


@cache
def core_raw_contracts() -> dict[str, DataContract]:
    """The core's raw contracts (``data_contracts/raw``), checked against the business units'."""
    return load_raw_contracts(RAW_CONTRACTS_DIR, raw_contract_dirs())


def raw_contract(source: str) -> DataContract:
    """The landing contract of a core raw source, e.g. ``raw_contract("transactions")``."""
    contracts = core_raw_contracts()
    if source not in contracts:
        raise ContractError(
            f"no raw contract for source {source!r} in {RAW_CONTRACTS_DIR} (known: {', '.join(sorted(contracts))})"
        )
    return contracts[source]


def raw_source_kinds(contracts: Mapping[str, DataContract] | None = None) -> dict[str, str]:
    """Source name -> kind, for the core's raw contracts by default."""
    return {name: c.source_kind for name, c in (core_raw_contracts() if contracts is None else contracts).items()}


@cache
def product_contract(name: str) -> DataContract:
    """The contract of a data product, e.g. ``product_contract("fct_order_lines")``."""
    return load_contract(CONTRACTS_DIR / "products" / f"{name}.odcs.yaml")


def product_contract_names() -> list[str]:
    return sorted(p.name.removesuffix(".odcs.yaml") for p in (CONTRACTS_DIR / "products").glob("*.odcs.yaml"))


@cache
def feature_contract(name: str) -> DataContract:
    """The contract of a feature set, e.g. ``feature_contract("customer_activity")``."""
    return load_contract(CONTRACTS_DIR / "features" / f"{name}.odcs.yaml")


def prediction_contract_path(use_case: str) -> Path:
    return CONTRACTS_DIR / "predictions" / f"{use_case}.odcs.yaml"


@cache
def prediction_contract(use_case: str) -> DataContract:
    """The contract of a use case's prediction product, e.g. ``prediction_contract("late_delivery")``."""
    path = prediction_contract_path(use_case)
    if not path.is_file():
        raise ContractError(
            f"{path}: use case {use_case!r} has no prediction contract; write one (copy "
            "data_contracts/predictions/late_delivery.odcs.yaml and adapt its key columns) before scoring"
        )
    return load_contract(path)


def pii_derived_feature_columns() -> set[str]:
    """Columns of the feature-set contracts tagged ``pii_derived`` (e.g. ticket sentiment)."""
    return {c.name for path in sorted((CONTRACTS_DIR / "features").glob("*.odcs.yaml"))
            for c in load_contract(path).columns if c.is_pii_derived}
