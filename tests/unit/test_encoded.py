"""``Encoded`` writes the head itself: the same status, media type, length and headers Litestar would."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Request
from litestar.enums import MediaType

from app.routes.http import Encoded


async def _sent(response: Encoded, method: str = "POST") -> list[dict[str, Any]]:
    scope: Any = {"type": "http", "method": method, "path": "/", "headers": [], "query_string": b""}
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    await response.to_asgi_response(None, Request(scope))(scope, receive, send)
    return messages


@pytest.mark.anyio
async def test_the_head_names_the_media_type_the_length_and_the_headers() -> None:
    body = b'{"ok":true}'
    response = Encoded(body, status_code=201, media_type=MediaType.JSON, headers={"Cache-Control": "no-store"})
    start, sent = await _sent(response)
    assert start["status"] == 201
    assert dict(start["headers"]) == {  # an enum media type by its value, never "MediaType.JSON"
        b"content-type": b"application/json",
        b"content-length": str(len(body)).encode(),
        b"cache-control": b"no-store",
    }
    assert sent["body"] == body
