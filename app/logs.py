"""Logging for the server process and each worker process (uvicorn's own config is switched off).

Every log line written while a request is handled carries its request id (``request_id``), the one the
response sends back in ``X-Request-Id``: one from the client or its proxy when well formed, else a new
one. ``log_format = "json"`` writes one JSON object per line; "text" (the default) stays readable.
A line may carry structured fields (``extra={"fields": {...}}``, as app/observe.py's security lines do):
members of the JSON object, or ``key=value`` pairs after a text line's message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.entropy import id_bytes

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
# What we accept from a client or proxy as its request id: short and plain, so it is safe in a log line.
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{8,64}")
_HEADER = b"x-request-id"


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, ms), level, logger, process, request_id, message."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.process,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key, value in getattr(record, "fields", {}).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The readable line, its fields as ``key=value`` after the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(process)d %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if not fields:
            return text
        return (
            text
            + " "
            + " ".join(f"{k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}" for k, v in fields.items())
        )


def configure_logging(level: str, log_format: str = "text") -> None:
    # The logging HOWTO's optimisations for what no line of ours shows: the caller's source file and
    # line (a frame walk per line), thread and multiprocessing names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    # httpx logs every outbound request at INFO (provider JWKS, client metadata): keep those quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def request_ids(app: ASGIApp) -> ASGIApp:
    """Give each HTTP request its id before anything routes it (a 404 has one too), for the logs and
    for the response's ``X-Request-Id``."""

    async def with_id(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:  # a plain loop: a generator here cost more than the rest
            if name == _HEADER:
                rid = value.decode() if _WELL_FORMED.fullmatch(value) else None
                break
        rid = rid or id_bytes(8).hex()
        REQUEST_ID.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A copy: a start message may be built once and sent for every request (discovery).
                message = {**message, "headers": [*message.get("headers", ()), (_HEADER, rid.encode())]}
            await send(message)

        await app(scope, receive, send_with_id)

    return with_id
