"""What `factory` prints beyond a command's own lines: counts and sizes in words, JSON for scripts,
one-line error messages with their exit codes, and the summary of a run."""

from __future__ import annotations

import json
import re
from datetime import date

from factory_assets.settings import PROJECT_ROOT


class UsageError(Exception):
    """A mistake the user can fix: the message names the problem and the fix (exit code 2)."""


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_range(first: date, last: date) -> str:
    days = (last - first).days + 1
    return f"{first}" if days == 1 else f"{first} .. {last} ({days} days)"


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def emit_json(payload) -> None:
    print(json.dumps(payload, indent=2, default=str))


# --------------------------------------------------------------------------------------
# What went wrong, in one line
# --------------------------------------------------------------------------------------


#: "No space left on device" (ENOSPC) as Python, DuckDB and dbt write it.
DISK_FULL = "No space left on device"
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")
_CLASS_PREFIX = re.compile(r"^(?:[A-Za-z_][\w]*\.)*(?P<cls>[A-Za-z_]\w*): ")


def disk_full_text(texts, filename: str | None = None) -> str | None:
    """The disk-full cause among error messages (and dbt's log lines), with the file being written."""
    for text in texts:
        for line in str(text or "").splitlines():
            if DISK_FULL in line or "[Errno 28]" in line:
                path = filename or next((m for m in _QUOTED_PATH.findall(line)), None)
                where = f" writing {path}" if path else f" ({line.strip()[:300]})"
                return (f"{DISK_FULL}{where}: free space on that disk (or set FACTORY_HOME to a folder on a larger "
                        "one), then run again")
    return None


def _error_chain(error) -> list:
    """A Dagster SerializableErrorInfo and its causes (or the contexts they were raised in), outermost first."""
    chain = []
    while error is not None and len(chain) < 20:
        chain.append(error)
        error = getattr(error, "cause", None) or getattr(error, "context", None)
    return chain


def _error_text(error) -> str:
    """What went wrong in a step, one line: the error the step's own code raised (the first below
    Dagster's wrappers), which names the file and the field, not the library error it wraps (a
    pydantic ValidationError, a YAML parser error); a full disk whatever raised it."""
    chain = _error_chain(error)
    if not chain:
        return "unknown error"
    full = disk_full_text(getattr(e, "message", None) or str(e) for e in chain)
    if full:
        return full
    error = next((e for e in chain if not str(getattr(e, "cls_name", "") or "").startswith("Dagster")), chain[-1])
    lines = [line for line in (getattr(error, "message", None) or str(error)).strip().splitlines() if line.strip()]
    if not lines:
        return getattr(error, "cls_name", None) or "unknown error"
    first = lines[0].strip()
    match = _CLASS_PREFIX.match(first)
    if match and match["cls"] == getattr(error, "cls_name", None):
        # the project's errors say what is wrong themselves; other errors keep their short class name
        module = first[: match.start("cls")]
        first = first[match.end():] if module.startswith("factory_assets.") else f"{match['cls']}: {first[match.end():]}"
    return first[:500]


def failure_text(data) -> str:
    failure = getattr(data, "user_failure_data", None)
    description = getattr(failure, "description", None)
    metadata = getattr(failure, "metadata", None) or {}
    full = disk_full_text([description, *(getattr(v, "value", v) for v in metadata.values())])
    if full:
        return full
    return description.strip().splitlines()[0] if description else _error_text(data.error)


#: The project's errors whose message names the file, the field and the fix (exit code 2), by class
#: name so that nothing heavy is imported to recognise them.
MESSAGE_ERRORS = frozenset({
    "PolicyError", "ContractError", "RawSchemaError", "UseCaseSpecError", "ApproversError", "AuditBundleError",
    "MonitoringConfigError", "RegistryKeyError", "RegistryIntegrityError", "ModelNotFoundError", "ScoringInputError",
    "LandingFileError", "WarehouseDamagedError", "WarehouseBusyError",
})


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        chain.append(exc)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return chain


def _validation_text(exc) -> str:
    """A pydantic ValidationError as the fields it names, one clause each."""
    try:
        errors = exc.errors()
    except Exception:
        return str(exc).splitlines()[0]
    fields = "; ".join(f"field '{'.'.join(str(p) for p in e.get('loc', ())) or '(top)'}': {e.get('msg', '')}"
                       for e in errors[:10])
    return f"invalid {getattr(exc, 'title', 'input')}: {fields}{' ...' if len(errors) > 10 else ''}"


def explain_error(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an error a command let through: a full disk names the file
    (1); the project's own errors and invalid files say what to fix (2); anything else is one line
    with how to see the traceback (1)."""
    import errno

    chain = _exception_chain(exc)
    for error in chain:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return 1, disk_full_text([DISK_FULL], filename=error.filename) or DISK_FULL
    full = disk_full_text(str(error) for error in chain)
    if full:
        return 1, full
    for error in chain:
        if MESSAGE_ERRORS & {cls.__name__ for cls in type(error).__mro__}:
            text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
            return 2, " ".join(text.split())
    for error in chain:
        if type(error).__name__ == "ValidationError" and type(error).__module__.startswith("pydantic"):
            return 2, _validation_text(error)
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return 1, (f"{type(exc).__name__}: {first} (an unexpected error; run again with FACTORY_DEBUG=1 to see the "
               "traceback)")


# --------------------------------------------------------------------------------------
# A run's summary
# --------------------------------------------------------------------------------------


DBT_TARGET = PROJECT_ROOT / "dbt_project" / "target"


def print_report(report: dict) -> None:
    checks = report["checks"]
    print()
    print(f"Run {report['run_id']} ({report['job']}): {'SUCCESS' if report['success'] else 'FAILED'} "
          f"in {report['seconds']:.0f} s")
    print(f"Materialized: {plural(len(report['materialized']), 'asset')} "
          f"({plural(report['materializations'], 'materialization')})")
    print(f"Asset checks: {checks['passed']} passed, {checks['failed']} failed")
    for c in checks["failures"]:
        print(f"  failed: {c['asset']} {c['check']}{' (warning)' if c['severity'] == 'WARN' else ''}")
    for step in report["failed_steps"]:
        print(f"Step {step['step']} failed: {step['error']}")
    if report["skipped_steps"]:
        print(f"Skipped {plural(len(report['skipped_steps']), 'step')} whose inputs were not produced (e.g. a use case "
              "without a champion scores nothing, so its checks and monitoring do not run)")
    if any("dbt" in step["step"] for step in report["failed_steps"]):
        print(f"dbt's own log: {DBT_TARGET}/*-{report['run_id'][:7]}-*/dbt.log")
    if report["success"] and not report["ok"]:
        print("Exit code 1: the run succeeded, but an asset check of severity ERROR failed")
    if not report["ok"]:
        print("Logs, failing rows and check details: `factory ui`, then Runs -> " + report["run_id"])
