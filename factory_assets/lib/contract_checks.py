"""Validate a table in DuckDB against its data contract, in SQL.

Products can hold millions of rows, so the contract's rules are compiled to one aggregate query
(one pass over the table) instead of pulling the table into Python. For every failing rule a
small sample of offending rows is fetched so people can see what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from factory_assets.lib.contracts import DataContract
from factory_assets.lib.warehouse_sql import quoted_identifier, relation_columns

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class RuleResult:
    rule: str
    column: str | None
    failing_rows: int
    sample: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failing_rows == 0


@dataclass(frozen=True)
class ContractReport:
    contract: DataContract
    relation: str
    row_count: int
    schema_problems: list[str]
    rules: list[RuleResult]

    @property
    def passed(self) -> bool:
        return not self.schema_problems and all(r.passed for r in self.rules)

    @property
    def failed_rules(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    def summary(self) -> str:
        if self.passed:
            return f"{self.relation}: {self.row_count} rows satisfy {self.contract.path.name} v{self.contract.version}"
        parts = list(self.schema_problems)
        parts += [f"{r.rule} failed on {r.failing_rows} row(s)" for r in self.failed_rules]
        return f"{self.relation} breaks {self.contract.path.name} v{self.contract.version}: " + "; ".join(parts)


def _literal(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value)


def row_rules(contract: DataContract) -> list[tuple[str, str, str]]:
    """(rule name, column, SQL predicate that is TRUE for a violating row) for row-level rules."""
    rules = []
    for col in contract.columns:
        q = quoted_identifier(col.name)
        if col.required:
            rules.append((f"{col.name} not null", col.name, f"{q} IS NULL"))
        if col.minimum is not None:
            rules.append((f"{col.name} >= {col.minimum}", col.name, f"{q} < {_literal(col.minimum)}"))
        if col.maximum is not None:
            rules.append((f"{col.name} <= {col.maximum}", col.name, f"{q} > {_literal(col.maximum)}"))
        if col.pattern:
            rules.append((f"{col.name} matches {col.pattern}", col.name, f"NOT regexp_full_match({q}, {_literal(col.pattern)})"))
        if col.valid_values:
            values = ", ".join(_literal(v) for v in col.valid_values)
            rules.append((f"{col.name} in ({values})", col.name, f"{q} NOT IN ({values})"))
    return rules


def key_rules(contract: DataContract) -> list[tuple[str, tuple[str, ...]]]:
    keys = [(f"{c.name} unique", (c.name,)) for c in contract.columns if c.unique]
    keys += [(f"({', '.join(cols)}) unique", cols) for cols in contract.unique_together]
    return keys


def schema_problems(conn, contract: DataContract, relation: str) -> list[str]:
    actual = relation_columns(conn, relation)
    if actual is None:
        return [f"table {relation} does not exist"]
    problems = []
    for col in contract.columns:
        if col.name not in actual:
            problems.append(f"column {col.name} is missing")
        elif actual[col.name].upper() != col.physical_type:
            problems.append(f"column {col.name} is {actual[col.name]}, contract says {col.physical_type}")
    for name in actual:
        if name not in contract.column_names:
            problems.append(f"column {name} is not in the contract")
    return problems


def _sample(conn, sql: str) -> list[dict]:
    cursor = conn.execute(sql)
    names = [d[0] for d in cursor.description]
    return [{k: (v if isinstance(v, (int, float, bool, type(None))) else str(v)) for k, v in zip(names, row)}
            for row in cursor.fetchall()]


def evaluate_contract(conn, contract: DataContract, relation: str | None = None) -> ContractReport:
    """Check ``relation`` (default: the contract's physicalName) against every rule of the contract."""
    relation = relation or contract.physical_name
    problems = schema_problems(conn, contract, relation)
    if problems and any("does not exist" in p for p in problems):
        return ContractReport(contract, relation, 0, problems, [])
    present = {c.name for c in contract.columns} - {p.split()[1] for p in problems if p.endswith("is missing")}
    rules = [r for r in row_rules(contract) if r[1] in present]
    selects = ["count(*)"] + [f"count_if({pred})" for _, _, pred in rules]
    counts = conn.execute(f"SELECT {', '.join(selects)} FROM {relation}").fetchone()
    row_count, results = int(counts[0]), []
    for (name, column, pred), failing in zip(rules, counts[1:]):
        sample = _sample(conn, f"SELECT * FROM {relation} WHERE {pred} LIMIT {SAMPLE_ROWS}") if failing else []
        results.append(RuleResult(name, column, int(failing or 0), sample))  # count_if of no rows is NULL
    for name, cols in key_rules(contract):
        if not set(cols) <= present:
            continue
        key = ", ".join(quoted_identifier(c) for c in cols)
        dupes_sql = f"SELECT {key}, count(*) AS copies FROM {relation} GROUP BY {key} HAVING count(*) > 1"
        failing = conn.execute(f"SELECT coalesce(sum(copies), 0) FROM ({dupes_sql})").fetchone()[0]
        sample = _sample(conn, f"{dupes_sql} LIMIT {SAMPLE_ROWS}") if failing else []
        results.append(RuleResult(name, cols[0] if len(cols) == 1 else None, int(failing), sample))
    return ContractReport(contract, relation, row_count, problems, results)


@dataclass(frozen=True)
class FreshnessReport:
    column: str
    newest_value: str | None
    reference: str | None
    lag_days: float | None
    allowed_days: float
    oldest_value: str | None = None
    landed_range: tuple[str, str] | None = None  # DATE columns: the first and last day that landed
    outside: str | None = None  # why the product's dates leave the landed range

    @property
    def passed(self) -> bool:
        return self.outside is None and self.lag_days is not None and self.lag_days <= self.allowed_days


def landed_day_range(conn):
    """(first, last) day the landed data covers: each ingested file's event dates (the delivery
    window of its contract), or its delivery day where its contract dates no rows."""
    columns = relation_columns(conn, "raw.ingestion_log") or {}
    first = "coalesce(first_event_date, partition_date)" if "first_event_date" in columns else "partition_date"
    last = "coalesce(last_event_date, partition_date)" if "last_event_date" in columns else "partition_date"
    return conn.execute(f"SELECT min(least({first}, partition_date)), max(greatest({last}, partition_date)) "
                        "FROM raw.ingestion_log").fetchone()


def evaluate_freshness(conn, contract: DataContract, relation: str | None = None) -> FreshnessReport | None:
    """How far the product's SLA column trails what has landed in the raw store, and whether its
    dates stay within what landed.

    A DATE column is compared with the newest ingested partition day, a TIMESTAMP column with
    the newest ingestion time (both from ``raw.ingestion_log``). Measuring against what has
    landed, not the wall clock, tells "the product is behind its inputs" apart from "the
    sources stopped sending", which the raw layer reports. A DATE column must also stay within
    the landed day range (``landed_day_range``): a product dated beyond it was fed rows that no
    delivery window allows (e.g. a file whose rows carry another year).
    """
    if contract.freshness_column is None or contract.freshness_days is None:
        return None
    relation = relation or contract.physical_name
    column = contract.column(contract.freshness_column)
    clock = "max(partition_date)" if column.physical_type == "DATE" else "max(ingested_at)"
    dated = quoted_identifier(column.name)
    newest, oldest, reference = conn.execute(
        f"SELECT (SELECT max({dated}) FROM {relation}), (SELECT min({dated}) FROM {relation}), "
        f"(SELECT {clock} FROM raw.ingestion_log)"
    ).fetchone()
    lag = None
    if newest is not None and reference is not None:
        lag = max((reference - newest).total_seconds() / 86400, 0.0)
    landed, outside = None, None
    if column.physical_type == "DATE" and newest is not None:
        first, last = landed_day_range(conn)
        if first is not None:
            landed = (str(first), str(last))
            if newest > last or oldest < first:
                outside = (f"{relation}.{column.name} spans {oldest} .. {newest}, outside the landed days {first} .. "
                           f"{last}: rows dated beyond what any delivery window allows reached the product. Find the "
                           f"source (raw.ingestion_log first_event_date / last_event_date), correct its file and rebuild.")
    return FreshnessReport(column.name, str(newest) if newest is not None else None,
                           str(reference) if reference is not None else None, lag, contract.freshness_days,
                           str(oldest) if oldest is not None else None, landed, outside)
