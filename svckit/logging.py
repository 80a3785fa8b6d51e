"""Structured logging: JSON lines in production, readable lines on a terminal.

Every line carries the service name and, inside a request, its request id and idempotency key. No line
carries a secret or a card number: tracebacks are rendered without local variables and every value
passes through :mod:`svckit.redaction` last, in both formats and for stdlib lines too.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO, cast

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, ProcessorReturnValue, WrappedLogger

from svckit.context import idempotency_key_var, request_id_var
from svckit.redaction import redact_field


def add_request_context(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    rid = request_id_var.get()
    if rid and "request_id" not in event:
        event["request_id"] = rid
    key = idempotency_key_var.get()
    if key and "idempotency_key" not in event:
        event["idempotency_key"] = key
    return event


def redact_event(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """The last step before rendering: secrets and card numbers out of every value, exception text included.

    Our own fields (time, level, service) are skipped: they cannot hold a secret and the gateway logs
    every request.
    """
    return {k: v if k in _OWN_FIELDS else redact_field(k, v) for k, v in event.items()}


_OWN_FIELDS = frozenset({"timestamp", "level", "service", "logger"})


class _Switch:
    """A processor whose implementation configure_logging can replace later.

    Loggers are cached on first use with the processor list of that moment; through these switches (and
    one output object) a later configure_logging still changes their format and destination.
    """

    def __init__(self, processor: structlog.types.Processor) -> None:
        self.processor = processor

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> ProcessorReturnValue:
        return self.processor(logger, name, event)


class _Output:
    """Where every rendered line goes: stderr, plus an optional copy (the test session's log file)."""

    def __init__(self) -> None:
        self.streams: list[TextIO] = [sys.stderr]

    def write(self, text: str) -> None:
        for stream in self.streams:
            stream.write(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


# Tracebacks never carry local variables: a frame's locals hold request headers, keys and card data.
_JSON_EXCEPTIONS = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
_TEXT_EXCEPTIONS = structlog.processors.ExceptionRenderer()  # the plain stdlib traceback text
_exceptions = _Switch(_TEXT_EXCEPTIONS)
_renderer = _Switch(structlog.processors.JSONRenderer())
_output = _Output()
_copy: TextIO | None = None
_processors: list[structlog.types.Processor] = []


def configure_logging(
    service: str, level: str = "INFO", fmt: str = "auto", copy_to: str | os.PathLike[str] | None = None
) -> None:
    """Configure structlog and the stdlib root logger once per process.

    ``copy_to`` appends every line to that file as well (the test session scans it for secrets).
    """
    global _copy
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        _renderer.processor = structlog.processors.JSONRenderer()
        _exceptions.processor = _JSON_EXCEPTIONS
    else:
        # The exception arrives as text already scrubbed; plain_traceback is only a fallback and
        # never shows locals (rich's formatter would).
        _renderer.processor = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        _exceptions.processor = _TEXT_EXCEPTIONS
    if _copy is not None:
        _copy.close()
        _copy = None
    if copy_to is not None:
        _copy = open(copy_to, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives until reconfigured
    _output.streams = [sys.stderr, *([_copy] if _copy else [])]
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The same list object every time, changed in place: loggers cached on first use keep a reference
    # to it, so they follow a later configure_logging (and structlog.testing.capture_logs, which also
    # swaps the list's contents in place).
    _processors[:] = [*shared, _exceptions, redact_event, _renderer]
    structlog.configure(
        processors=_processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # PrintLogger only calls write and flush, which _Output has; it is no full TextIO.
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _output)),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(_output)
    # Lines from the standard library (uvicorn, alembic, grpc, the PSP simulator run in-process) go
    # through the same exception rendering, redaction and renderer.
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _exceptions,
                redact_event,
                _renderer,
            ],
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
