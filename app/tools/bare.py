"""The benchmark's yardstick: a bare Litestar app returning a constant, served like authmd is."""

from __future__ import annotations

from litestar import Litestar, Response, get

BODY = b'{"status":"ok"}'


@get("/const")
async def const() -> Response[bytes]:
    return Response(content=BODY, media_type="application/json")


app = Litestar(route_handlers=[const], openapi_config=None, logging_config=None, debug=False)
