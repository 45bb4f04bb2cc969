"""``GET /metrics``: the Prometheus text format (README § Metrics), on the main port when ``metrics`` is on
and no ``metrics_bind`` is set. Not in the OpenAPI document: it is the operator's, not the API's."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from app import metrics


@get("/metrics", include_in_schema=False)
async def scrape(request: Request[Any, Any, Any]) -> Response[bytes]:
    metrics.flush()  # this process's own tallies, up to date; the other workers' are at most a second old
    # A few small files per worker to read: quicker than a hand-off to a thread.
    body, content_type = metrics.exposition(request.headers.get("accept", ""))
    # Litestar adds the charset of a text/* type itself.
    media_type = content_type.replace("; charset=utf-8", "")
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})


HANDLERS = [scrape]
