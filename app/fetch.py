"""Reading the body of an outbound HTTP response we asked for (a provider's JWKS, a client metadata
document, UserInfo): never more than a limit, whatever the peer sends."""

from __future__ import annotations

import httpx


class BodyRefused(Exception):
    """A body we will not read; the message completes "the <document> is …"."""


async def read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    """The body, refusing more than ``max_bytes``: checked on Content-Length, then while streaming. We ask
    for ``Accept-Encoding: identity``; a compressed body could expand far past the limit in one chunk."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BodyRefused(f"compressed (Content-Encoding {encoding!r}), which was not asked for")
    too_large = f"larger than {max_bytes} bytes"
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyRefused(too_large)
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise BodyRefused(too_large)
    return bytes(body)
