"""Logging for the server process and each worker process (uvicorn's own config is switched off)."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(process)d %(name)s %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every outbound request at INFO (provider JWKS, client metadata): keep those quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
