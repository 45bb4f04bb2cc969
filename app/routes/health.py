"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from app.routes.http import ctx_of, json_response


@get("/healthz")
async def healthz() -> Response[bytes]:
    return json_response({"status": "ok"})


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    await ctx_of(request).store.ping()  # StoreUnavailable → 503 temporarily_unavailable
    return json_response({"status": "ready"})


HANDLERS = [healthz, readyz]
