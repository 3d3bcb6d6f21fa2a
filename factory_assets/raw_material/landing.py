"""Read a landing file into a typed frame, or say exactly what is wrong with it.

Pure functions, no Dagster. Every error is a ``LandingFileError`` whose message names the file,
the row (1-based, counting data rows; line numbers for JSON lines), the column and the contract
rule that failed, and says what to do. Messages never quote a value of a column the contract
classifies as PII, never echo the parser's own error (it quotes the raw line), and are bounded
(``MESSAGE_LIMIT``). The caller decides what happens to the file (quarantine).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from factory_assets.lib.files import sha256_file as file_checksum  # noqa: F401 - re-exported
from factory_assets.lib.contracts import DataContract
from factory_assets.lib.schemas import POLARS_TYPES, rule_failures

DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
MAX_REPORTED_PROBLEMS = 5
#: Longest message kept in the quarantine log, the Dagster event log and metadata; the rest is counted.
MESSAGE_LIMIT = 2000
#: Longest value quoted in a message (values of PII columns are never quoted).
VALUE_LIMIT = 40
#: First bytes of binary formats that land under a text name by mistake.
MAGIC_BYTES = {
    b"PAR1": "a Parquet file",
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook is one)",
    b"\x1f\x8b": "gzip-compressed",
    b"\xd0\xcf\x11\xe0": "an Excel .xls workbook",
}


def bounded(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()} ... ({len(text) - limit} more characters not shown)"


class LandingFileError(ValueError):
    """A landing file cannot be ingested. ``reason`` is a short machine-readable category."""

    def __init__(self, path: Path, reason: str, detail: str):
        self.path = Path(path)
        self.reason = reason
        self.detail = bounded(detail)
        super().__init__(f"{self.path.name}: {self.detail}")


def partition_date_of(path: Path) -> date | None:
    """The day in a file's name (``transactions_2025-03-01.csv``), if it holds a calendar date."""
    match = DATE_IN_NAME.search(Path(path).name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


@dataclass(frozen=True)
class LandingName:
    """What a landing file's name says: its delivery day and version (``.v2``: a correction)."""

    day: date
    version: int = 1


def example_name(contract: DataContract, day: date | str = "2025-03-01", version: int = 1) -> str:
    """A landing file name the contract accepts (``version`` > 1: a correction's name)."""
    name = contract.file_pattern.format(date=str(day))
    if version > 1:
        stem, _, ext = name.rpartition(".")
        name = f"{stem}.v{version}.{ext}"
    return name


def parse_landing_name(path: Path, contract: DataContract) -> LandingName:
    """The day and version in a landing file's name, or a ``file_name`` error with the true reason.

    A name is the contract's ``filePattern`` with a calendar date for ``{date}``; a correction adds
    ``.v<N>`` before the extension (``transactions_2025-03-01.v2.csv``)."""
    name = Path(path).name
    prefix, _, suffix = contract.file_pattern.partition("{date}")
    stem_suffix, _, ext = suffix.rpartition(".")
    pattern = re.compile(
        f"^{re.escape(prefix)}(?P<date>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}){re.escape(stem_suffix)}"
        f"(?:\\.v(?P<version>[0-9]{{1,6}}))?\\.{re.escape(ext)}$"
    )
    like = (f"Rename it like {example_name(contract)} (a correction of that day: "
            f"{example_name(contract, version=2)}) and drop it again.")
    match = pattern.match(name)
    found = match.group("date") if match else (m.group(1) if (m := DATE_IN_NAME.search(name)) else None)
    if found is not None:
        try:
            date.fromisoformat(found)
        except ValueError:
            raise LandingFileError(path, "file_name",
                                   f"{found} is not a calendar date (the day in the file name). {like}") from None
    if match is None:
        actual_ext = name.rpartition(".")[2] if "." in name else ""
        if actual_ext.lower() != ext.lower():
            detail = (f"the extension .{actual_ext or '(none)'} is not .{ext}: the contract {contract.path.name} "
                      f"says this source lands {contract.landing_format} files named {contract.file_pattern}. "
                      f"Export the data as {contract.landing_format} and name it like {example_name(contract)}.")
        elif found is None:
            detail = f"the file name carries no delivery date (YYYY-MM-DD). {like}"
        else:
            detail = (f"the name does not follow the contract's file pattern {contract.file_pattern} "
                      f"({contract.path.name}). {like}")
        raise LandingFileError(path, "file_name", detail)
    version = int(match.group("version") or 1)
    if version < 1:
        raise LandingFileError(path, "file_name", f"version .v{version} must be 1 or more. {like}")
    return LandingName(date.fromisoformat(found), version)


def _sniff(path: Path, contract: DataContract) -> None:
    """A binary file under a text name gets a hint naming what it is."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    for magic, what in MAGIC_BYTES.items():
        if head.startswith(magic):
            raise LandingFileError(
                path, "format",
                f"the file is {what}, not {contract.landing_format} as {contract.path.name} (landingFormat) says. "
                "Export it as "
                + ("comma-separated UTF-8 text with a header row" if contract.landing_format == "csv"
                   else "JSON lines (one object per line, UTF-8)")
                + " and drop it again under the same name.",
            )


def _check_bytes(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        raise LandingFileError(path, "empty",
                               "the file is empty (0 bytes). Re-export it from the source system and drop it again.")
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        if fh.read(1) != b"\n":
            raise LandingFileError(
                path,
                "truncated",
                "the file does not end with a line break, so it looks truncated (an interrupted "
                "transfer). Drop the complete file again.",
            )


def _first_non_utf8(path: Path) -> tuple[int, int, bytes] | None:
    """(line number, offset in the line, the line) of the first bytes that are not UTF-8."""
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return line_no, exc.start, line
    return None


def _raise_if_not_utf8(path: Path, header: list[str] | None) -> None:
    found = _first_non_utf8(path)
    if found is None:
        return
    line_no, offset, line = found
    where = f"line {line_no}"
    if header is not None:  # CSV: data rows are counted after the header line
        field = line[:offset].count(b",")
        column = f", column '{header[field]}'" if field < len(header) else ""
        where = f"row {line_no - 1} (line {line_no}{column})"
    raise LandingFileError(
        path, "encoding",
        f"{where} holds bytes that are not UTF-8; the export is probably Latin-1 / Windows-1252. Re-export it "
        "as UTF-8 (or convert it, e.g. `iconv -f WINDOWS-1252 -t UTF-8`) and drop it again.",
    )


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        return next(csv.reader(fh), [])


def _diagnose_csv(path: Path) -> str:
    """Where a CSV file breaks, by row and line, without quoting it (the parser's message does)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, [])
            for row_no, row in enumerate(reader, start=1):
                if len(row) != len(header):
                    return (f"row {row_no} (line {reader.line_num}) has {len(row)} field(s) but the header has "
                            f"{len(header)}: a value holds an unquoted comma, or a field is missing")
    except csv.Error as exc:
        return f"line {reader.line_num}: {exc} (a quoted value is never closed, or a stray quote)"
    return "the CSV parser could not read it"


def _read_csv_as_text(path: Path, contract: DataContract) -> pl.DataFrame:
    try:
        return pl.read_csv(path, infer_schema=False, has_header=True, raise_if_empty=True)
    except Exception as exc:  # polars raises several error types; its message quotes the raw line
        _raise_if_not_utf8(path, _csv_header(path))
        raise LandingFileError(path, "malformed", f"not a readable CSV file: {_diagnose_csv(path)}. "
                                                  "Fix the file and drop it again.") from exc


def _read_jsonl_as_text(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_ndjson(path, infer_schema_length=None)
    except Exception:
        _raise_if_not_utf8(path, None)
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
    raise LandingFileError(path, "malformed", "the JSON lines do not share one structure (a field changes type between lines). "
                                              "Fix the export and drop the file again.")


def _names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_columns(path: Path, frame: pl.DataFrame, contract: DataContract) -> None:
    expected = contract.column_names
    if len(frame.columns) == 1 and contract.landing_format == "csv":
        for delimiter, called in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
            parts = frame.columns[0].split(delimiter)
            if len(parts) > 1 and set(parts) & set(expected):
                raise LandingFileError(
                    path, "delimiter",
                    f"the header is separated by {called}, not by commas as {contract.path.name} expects. Export the "
                    "file comma-separated (the export's delimiter setting; decimals with a point) and drop it again.",
                )
    missing = [c for c in expected if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in expected]
    if len(missing) == len(expected):  # no header at all: its "names" are the first row's values
        raise LandingFileError(
            path, "schema",
            f"the first line names none of the {len(expected)} columns of {contract.path.name} (v{contract.version}): "
            f"is the header missing? The file must start with the header line {','.join(expected)}.",
        )
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing column(s) {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected column(s) {_names([c[:VALUE_LIMIT] for c in unexpected])}")
        raise LandingFileError(
            path,
            "schema",
            f"{'; '.join(parts)}. The contract {contract.path.name} (v{contract.version}) expects: {', '.join(expected)}. "
            "Fix the export's columns (or the contract) and drop the file again.",
        )


def shown_value(contract: DataContract, column: str | None, value) -> str:
    """A value as a message may show it: never one of a PII column, never long."""
    if column is not None and column in contract.pii_columns:
        return "(value withheld: pii)"
    text = repr(value if not isinstance(value, (date, datetime)) else str(value))
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 4] + "...'"


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


_FORMATS = {"INTEGER": "a whole number", "BIGINT": "a whole number", "DOUBLE": "a number with a decimal point",
            "DATE": "YYYY-MM-DD", "TIMESTAMP": "YYYY-MM-DDTHH:MM:SS", "BOOLEAN": "true or false"}


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
            samples = ", ".join(f"row {r + 1}: {shown_value(contract, col.name, raw[r])}" for r in rows)
            raise LandingFileError(
                path,
                "type",
                f"column '{col.name}' must be {col.physical_type} ({_FORMATS[col.physical_type]}) but "
                f"{int(bad.sum())} value(s) are not ({samples}). "
                "Fix the values (or the export's column mapping) and drop the file again.",
            )
        out[col.name] = typed
    return pl.DataFrame(out)


def _validate(path: Path, frame: pl.DataFrame, contract: DataContract) -> None:
    failures = rule_failures(frame, contract, MAX_REPORTED_PROBLEMS)
    if not failures:
        return
    parts = []
    for failure in failures[:MAX_REPORTED_PROBLEMS]:
        if failure.column is None:
            rows = ", ".join(str(r + 1) for r in failure.rows)
            where = f"rows {rows}" + (" and more" if failure.count > len(failure.rows) else "")
        else:
            where = ", ".join(f"row {r + 1}, column '{failure.column}': "
                              f"{shown_value(contract, failure.column, frame[failure.column][r])}" for r in failure.rows)
        parts.append(f"rule `{failure.rule}` fails on {failure.count} row(s) ({where})")
    more = f"; and {len(failures) - MAX_REPORTED_PROBLEMS} more rule(s)" if len(failures) > MAX_REPORTED_PROBLEMS else ""
    raise LandingFileError(
        path,
        "contract",
        f"{sum(f.count for f in failures)} contract violation(s) against {contract.path.name} (v{contract.version}): "
        + "; ".join(parts) + more
        + ". Fix these rows (or the export's column mapping) and drop the file again.",
    )


def read_landing_file(path: Path, contract: DataContract) -> pl.DataFrame:
    """Parse and validate one landing file; return it typed with exactly the contract's columns."""
    path = Path(path)
    _sniff(path, contract)
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


def event_dates(frame: pl.DataFrame, contract: DataContract) -> pl.Series | None:
    """The day of each row (the contract's ``eventDateColumn``), or None without one."""
    column = contract.event_date_column
    if column is None:
        return None
    series = frame.get_column(column)
    return series if series.dtype == pl.Date else series.dt.date()


def _window_words(lag: int, lead: int) -> str:
    if not lag and not lead:
        return "the file's day only"
    parts = [f"up to {lag} day(s) before" if lag else "", f"up to {lead} day(s) after" if lead else ""]
    return f"the file's day, {' and '.join(p for p in parts if p)} it"


def check_event_dates(path: Path, frame: pl.DataFrame, contract: DataContract, day: date) -> None:
    """Every row must be dated within the delivery window the contract declares for ``day``."""
    dates = event_dates(frame, contract)
    if dates is None or frame.height == 0:
        return
    lag, lead = contract.event_date_window
    first, last = day - timedelta(days=lag), day + timedelta(days=lead)
    bad = dates.is_not_null() & ((dates < first) | (dates > last))
    if not bad.any():
        return
    column = contract.event_date_column
    rows = bad.arg_true()
    outside = dates.filter(bad)
    samples = ", ".join(f"row {r + 1}: {shown_value(contract, column, dates[r])}" for r in rows.head(MAX_REPORTED_PROBLEMS))
    span = ("" if column in contract.pii_columns else f", dated {outside.min()} .. {outside.max()}")
    raise LandingFileError(
        path,
        "event_date",
        f"column '{column}' dates each row (eventDateColumn of {contract.path.name}), and a delivery for {day} may "
        f"only hold rows dated {first} .. {last} ({_window_words(lag, lead)}); {int(bad.sum())} of {frame.height} "
        f"row(s) fall outside ({samples}{span}). Deliver those rows in the file of their own day "
        f"({example_name(contract, 'YYYY-MM-DD')}), fix the day in this file's name, or, if the source really sends "
        f"them with this delay, widen eventDateLagDays / eventDateLeadDays in {contract.path.name}.",
    )
