"""Read a landing file into a typed frame, or say exactly what is wrong with it.

Pure functions, no Dagster. Every error is a ``LandingFileError`` whose message names the file,
the row (1-based, counting data rows; line numbers for JSON lines) and the column, and says what
to do. The caller decides what happens to the file (quarantine).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path

import polars as pl

from factory_assets.lib.contracts import DataContract
from factory_assets.lib.schemas import POLARS_TYPES, pandera_schema

DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
MAX_REPORTED_PROBLEMS = 5


class LandingFileError(ValueError):
    """A landing file cannot be ingested. ``reason`` is a short machine-readable category."""

    def __init__(self, path: Path, reason: str, detail: str):
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path.name}: {detail}")


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def partition_date_of(path: Path) -> date | None:
    """The delivery day in a landing file's name (``transactions_2025-03-01.csv``), if any."""
    match = DATE_IN_NAME.search(path.name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _check_bytes(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        raise LandingFileError(path, "empty", "the file is empty (0 bytes). Re-export it from the source system and drop it again.")
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) != b"\n":
            raise LandingFileError(
                path,
                "truncated",
                "the file does not end with a line break, so it looks truncated (an interrupted "
                "transfer). Drop the complete file again.",
            )


def _read_csv_as_text(path: Path, contract: DataContract) -> pl.DataFrame:
    try:
        frame = pl.read_csv(path, infer_schema=False, has_header=True, raise_if_empty=True)
    except Exception as exc:  # polars raises several error types for malformed CSV
        raise LandingFileError(path, "malformed", f"not a readable CSV file ({str(exc).splitlines()[0]}). Fix the file and drop it again.") from exc
    return frame


def _read_jsonl_as_text(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_ndjson(path, infer_schema_length=None)
    except Exception:
        _raise_first_bad_json_line(path)
        raise
    if frame.height == 0:
        raise LandingFileError(path, "empty", "the file holds no records. Re-export it and drop it again.")
    return frame.select(pl.all().cast(pl.String))


def _raise_first_bad_json_line(path: Path) -> None:
    """Slow path, only for broken files: find the first line that is not a JSON object."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LandingFileError(
                    path, "malformed", f"line {line_no} is not valid JSON ({exc.msg}). Fix the line and drop the file again."
                ) from exc
            if not isinstance(record, dict):
                raise LandingFileError(path, "malformed", f"line {line_no} is not a JSON object; each line must be one record.")
    raise LandingFileError(path, "malformed", "the JSON lines do not share one structure (a field changes type between lines). Fix the export and drop the file again.")


def _check_columns(path: Path, frame: pl.DataFrame, contract: DataContract) -> None:
    expected = contract.column_names
    missing = [c for c in expected if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected column(s) {', '.join(unexpected)}")
        raise LandingFileError(
            path,
            "schema",
            f"{'; '.join(parts)}. The contract {contract.path.name} (v{contract.version}) expects: {', '.join(expected)}.",
        )


def _cast_column(text: pl.Series, physical_type: str) -> pl.Series:
    stripped = text.str.strip_chars()
    if physical_type == "VARCHAR":
        return text
    if physical_type in ("INTEGER", "BIGINT"):
        return stripped.cast(POLARS_TYPES[physical_type], strict=False)
    if physical_type == "DOUBLE":
        return stripped.cast(pl.Float64, strict=False)
    if physical_type == "DATE":
        return stripped.str.to_date("%Y-%m-%d", strict=False)
    if physical_type == "TIMESTAMP":
        return stripped.str.to_datetime(time_unit="us", strict=False)
    if physical_type == "BOOLEAN":
        mapping = {"true": True, "1": True, "false": False, "0": False}
        return stripped.str.to_lowercase().replace_strict(mapping, default=None, return_dtype=pl.Boolean)
    raise ValueError(physical_type)


def _typed(path: Path, text: pl.DataFrame, contract: DataContract) -> pl.DataFrame:
    """Cast text columns to contract types; a value that does not parse is an error with its row."""
    out = {}
    for col in contract.columns:
        raw = text[col.name]
        raw = raw.replace("", None) if col.physical_type != "VARCHAR" else raw
        typed = _cast_column(raw, col.physical_type)
        bad = raw.is_not_null() & typed.is_null()
        if bad.any():
            rows = bad.arg_true().head(MAX_REPORTED_PROBLEMS).to_list()
            samples = ", ".join(f"row {r + 1}: {raw[r]!r}" for r in rows)
            raise LandingFileError(
                path,
                "type",
                f"column '{col.name}' must be {col.physical_type} but {int(bad.sum())} value(s) are not ({samples}). "
                "Fix the values (or the export's column mapping) and drop the file again.",
            )
        out[col.name] = typed
    return pl.DataFrame(out)


def _validate(path: Path, frame: pl.DataFrame, contract: DataContract) -> None:
    import pandera.polars as pa

    try:
        pandera_schema(contract).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        problems = []
        for row in cases.head(MAX_REPORTED_PROBLEMS).iter_rows(named=True):
            where = f"row {row['index'] + 1}" if row["index"] is not None else "file"
            column = f"column '{row['column']}'" if row["column"] else "columns"
            problems.append(f"{where}, {column}: {row['check']} failed for {row['failure_case']!r}")
        raise LandingFileError(
            path,
            "contract",
            f"{cases.height} contract violation(s) against {contract.path.name} (v{contract.version}): "
            + "; ".join(problems)
            + ". Fix these rows and drop the file again.",
        ) from exc


def read_landing_file(path: Path, contract: DataContract) -> pl.DataFrame:
    """Parse and validate one landing file; return it typed with exactly the contract's columns."""
    path = Path(path)
    _check_bytes(path)
    fmt = contract.landing_format
    if fmt == "csv":
        text = _read_csv_as_text(path, contract)
    elif fmt == "jsonl":
        text = _read_jsonl_as_text(path)
    else:
        raise ValueError(f"{contract.path.name}: unknown landingFormat {fmt!r}")
    _check_columns(path, text, contract)
    frame = _typed(path, text, contract)
    _validate(path, frame, contract)
    return frame
