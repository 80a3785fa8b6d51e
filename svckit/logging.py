"""Structured logging: JSON lines in production, readable lines on a terminal.

Every line carries the service name and, inside a request, its request id and idempotency key.
"""

from __future__ import annotations

import logging
import sys

import structlog

from svckit.context import idempotency_key_var, request_id_var


def add_request_context(_logger: object, _name: str, event: dict) -> dict:
    rid = request_id_var.get()
    if rid and "request_id" not in event:
        event["request_id"] = rid
    key = idempotency_key_var.get()
    if key and "idempotency_key" not in event:
        event["idempotency_key"] = key
    return event


def configure_logging(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    renderer: structlog.types.Processor
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        renderer = structlog.processors.JSONRenderer()
    else:
        # Plain tracebacks without locals: rich's with locals took seconds of event-loop CPU per error
        # (stalling every request of the process) and printed whatever the frames held, secrets too.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # JSON wants tracebacks as data; the console renderer formats exc_info itself and cannot print data.
    tracebacks = (
        [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
        if isinstance(renderer, structlog.processors.JSONRenderer)
        else []
    )
    structlog.configure(
        processors=[*shared, *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    # Lines from the standard library (uvicorn, alembic, grpc) go through the same renderer.
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO drowns our own lines.
    for noisy in ("sqlalchemy.engine", "alembic.runtime.migration", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
