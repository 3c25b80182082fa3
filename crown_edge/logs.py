"""Log lines for people, for journald and for log shippers, with the job and machine they are about.

Three formats (``--log-format``, ``$CROWN_EDGE_LOG_FORMAT``, default ``auto``)::

    text     2026-05-04 10:12:03,123 INFO crown_edge.daemon.machines: job J-1: engraving on
             laser-1 (attempt 1) job_id=J-1 machine_id=laser-1 shop_id=shop-a
    journal  <6>crown_edge.daemon.machines: job J-1: engraving ... job_id=J-1 machine_id=laser-1
    json     {"ts": "2026-05-04T10:12:03.123Z", "level": "info", "logger": "...", "msg": "...",
              "job_id": "J-1", "machine_id": "laser-1", "shop_id": "shop-a"}

``auto`` picks ``journal`` under systemd (``$JOURNAL_STREAM`` or ``$INVOCATION_ID`` set) and
``text`` otherwise. The journal format starts every line with its syslog priority in the
sd-daemon(3) style, so ``journalctl -p err`` filters, and carries no time stamp (journald adds
one); a traceback's lines each carry the prefix so they stay in the record's priority.

Context: ``job_id``, ``machine_id`` and ``shop_id`` come from ``extra={...}`` on the call, or else
from :func:`bind` (context variables: a machine worker binds its machine, a command its job, and
asyncio tasks and ``to_thread`` calls inherit them), or else, inside a Temporal activity, from the
activity's workflow id (``job-{job_id}``).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, Final, Literal

LogFormat = Literal["text", "journal", "json"]
FORMATS: Final = ("auto", "text", "journal", "json")
CONTEXT_KEYS: Final = ("job_id", "machine_id", "shop_id")

_context: dict[str, contextvars.ContextVar[str | None]] = {
    key: contextvars.ContextVar(f"crown_edge_log_{key}", default=None) for key in CONTEXT_KEYS
}

# attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}

_PRIORITY = {  # syslog priorities (sd-daemon(3)): err 3, warning 4, info 6, debug 7
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def bind(
    *, job_id: str | None = None, machine_id: str | None = None, shop_id: str | None = None
) -> None:
    """Set the log context of the current task (and what it starts); a ``None`` leaves a key."""
    for key, value in (("job_id", job_id), ("machine_id", machine_id), ("shop_id", shop_id)):
        if value is not None:
            _context[key].set(value)


def unbind(*keys: str) -> None:
    """Clear keys of the current task's log context (e.g. ``job_id`` when a job is done)."""
    for key in keys:
        _context[key].set(None)


def current() -> dict[str, str]:
    """The bound context of the current task."""
    return {key: value for key, var in _context.items() if (value := var.get()) is not None}


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (a level between two takes the more severe)."""
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


def choose_format(requested: str | None, env: Mapping[str, str]) -> LogFormat:
    """The format to use: an explicit choice, else ``$CROWN_EDGE_LOG_FORMAT``, else by systemd."""
    choice = (requested or env.get("CROWN_EDGE_LOG_FORMAT") or "auto").strip().lower()
    if choice not in FORMATS:
        raise ValueError(f"log format {choice!r}: choose one of {', '.join(FORMATS)}")
    if choice == "auto":
        return "journal" if env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID") else "text"
    return choice  # type: ignore[return-value]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: everything passed with ``extra=``, context keys first."""
    out = {key: getattr(record, key) for key in CONTEXT_KEYS if getattr(record, key, None)}
    for key, value in record.__dict__.items():
        if key not in _STANDARD and key not in out and not key.startswith("_"):
            if key in CONTEXT_KEYS and value is None:
                continue
            out[key] = value
    return out


def _kv(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if not text or any(c in text for c in ' "=\n'):
        text = json.dumps(text)
    return f"{key}={text}"


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a terminal or a log file."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, then ``key=value`` for each scalar field, then any traceback."""
        record.message = record.getMessage()
        line = self.formatMessage(self._stamped(record))
        extra = [_kv(k, v) for k, v in fields(record).items() if _scalar(v)]
        if extra:
            line += " " + " ".join(extra)
        tail = _exception_text(self, record)
        return line + ("\n" + tail if tail else "")

    def _stamped(self, record: logging.LogRecord) -> logging.LogRecord:
        record.asctime = self.formatTime(record)
        return record


class JournalFormatter(logging.Formatter):
    """``<N>logger: message key=value ...``: a syslog priority prefix on every line, no time."""

    def format(self, record: logging.LogRecord) -> str:
        """The record with its priority prefix on each of its lines."""
        message = record.getMessage()
        extra = [_kv(k, v) for k, v in fields(record).items() if _scalar(v)]
        text = f"{record.name}: {message}" + (" " + " ".join(extra) if extra else "")
        tail = _exception_text(self, record)
        if tail:
            text += "\n" + tail
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (a traceback goes into ``exc``)."""
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
        out: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "priority": priority(record.levelno),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields(record).items():
            out.setdefault(key, value)
        tail = _exception_text(self, record)
        if tail:
            out["exc"] = tail
        return json.dumps(out, default=str, ensure_ascii=False)


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    parts = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts)


class ContextFilter(logging.Filter):
    """Fills ``job_id``/``machine_id``/``shop_id`` a record lacks from the bound context."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always True: it adds fields, it never drops a record."""
        bound = current()
        if "job_id" not in bound and getattr(record, "job_id", None) is None:
            job_id = _activity_job_id()
            if job_id is not None:
                bound["job_id"] = job_id
        for key, value in bound.items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class ExpectedFailureFilter(logging.Filter):
    """An activity that ends with a non-retryable business error (``NoInventory``,
    ``TextDoesNotFit``...) is an expected outcome: one line with the error, no traceback.

    Temporal's worker logs every failed activity with ``exc_info``; the workflow handles these
    errors (an out-of-stock order waits for a choice), so a traceback on the console misleads.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Always True: it shortens records, it never drops one."""
        exc = record.exc_info[1] if record.exc_info else None
        if (
            exc is not None
            and getattr(record, "__temporal_error_identifier", None) == "ActivityFailure"
            and getattr(exc, "non_retryable", False)
            and isinstance(getattr(exc, "type", None), str)
        ):
            kind = getattr(exc, "type", "")
            record.msg = f"{record.getMessage()}: {kind}: {getattr(exc, 'message', exc)}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _activity_job_id() -> str | None:
    """The job of the Temporal activity running in this task or thread, if any."""
    activity = sys.modules.get("temporalio.activity")
    if activity is None:
        return None
    try:
        if not activity.in_activity():
            return None
        workflow_id = str(activity.info().workflow_id or "")
    except RuntimeError:
        return None
    return workflow_id.removeprefix("job-") if workflow_id.startswith("job-") else None


FORMATTERS: dict[str, type[logging.Formatter]] = {
    "text": TextFormatter,
    "journal": JournalFormatter,
    "json": JsonFormatter,
}


def setup_logging(
    verbose: bool = False,
    log_format: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stream: Any = None,
) -> LogFormat:
    """Log to stderr in the chosen format with the context filter; returns the format used."""
    chosen = choose_format(log_format, os.environ if env is None else env)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(FORMATTERS[chosen]())
    handler.addFilter(ContextFilter())
    handler.addFilter(ExpectedFailureFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_crown_edge", False):
            root.removeHandler(old)
    handler._crown_edge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # pymodbus logs every timeout with frame dumps at ERROR; our DeviceError already says it
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    return chosen
