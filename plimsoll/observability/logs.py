"""The gateway's logs as JSON lines (structlog over the standard logging module).

One object per line with the time, level, logger, message, and whatever the caller passed
in `extra` (the request log carries the request id, model version, prompt template, index
snapshot, flag variant and the anonymised user segment: the same tags as the trace). The
trace and span ids of the current span are added when there is one, so a log line leads to
its trace. `text` keeps the classic one-line format for a person at a terminal.
"""

from __future__ import annotations

import logging
import sys

FORMATS = ("json", "text")


def _trace_ids(_logger, _method, event: dict) -> dict:
    """Add the current OpenTelemetry trace and span ids, when a span is recording."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def json_formatter() -> logging.Formatter:
    """A stdlib formatter that writes each record as one JSON object."""
    import structlog

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _trace_ids,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ])


def configure_logging(level: str, log_format: str = "json", stream=None) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) as JSON lines or plain text."""
    if log_format not in FORMATS:
        raise ValueError(f"log format '{log_format}' is not one of {FORMATS}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
