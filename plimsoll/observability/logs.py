"""The gateway's logs as JSON lines (structlog over the standard logging module).

One object per line with the time, level, logger, message, and whatever the caller passed
in `extra` (the request log carries the request id, model version, prompt template, index
snapshot, flag variant and the anonymised user segment: the same tags as the trace). The
trace and span ids of the current span are added when there is one, so a log line leads to
its trace. `text` keeps the classic one-line format for a person at a terminal.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys

FORMATS = ("json", "text")


def _record_time(_logger, _method, event: dict) -> dict:
    """The time the record was made (not when the listener thread wrote it), ISO 8601 UTC."""
    from datetime import UTC, datetime

    record = event.get("_record")
    created = record.created if record is not None else None
    event["timestamp"] = (datetime.fromtimestamp(created, UTC) if created is not None
                          else datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return event


def json_formatter() -> logging.Formatter:
    """A stdlib formatter that writes each record as one JSON object."""
    import structlog

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            _record_time,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ])


class TraceContext(logging.Filter):
    """Stamp each record with the current span's trace and span ids, on the caller's thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add trace_id and span_id when a span is recording (always keeps the record)."""
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def configure_logging(level: str, log_format: str = "json", stream=None
                      ) -> logging.handlers.QueueListener:
    """Send the root logger's records to `stream` (stderr) as JSON lines or plain text.

    Records are formatted and written on a listener thread (the standard library's
    QueueHandler and QueueListener): a request pays for a queue put, not for JSON encoding
    and a write to stderr. The trace ids are read on the caller's thread, where its span is.
    Stop the returned listener to flush what is queued.
    """
    import queue

    if log_format not in FORMATS:
        raise ValueError(f"log format '{log_format}' is not one of {FORMATS}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    records: queue.SimpleQueue = queue.SimpleQueue()
    front = logging.handlers.QueueHandler(records)
    front.addFilter(TraceContext())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(front)
    root.setLevel(level.upper())
    listener = logging.handlers.QueueListener(records, handler, respect_handler_level=True)
    listener.start()
    return listener
