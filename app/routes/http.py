"""Request decoding and response encoding shared by the thin route handlers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import parse_qs

import msgspec
from litestar import Litestar, Request, Response
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.response.base import ASGIResponse
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
    TypeEncodersMap,
)
from litestar.utils.helpers import get_enum_string_value

from app.context import Context
from app.errors import AuthError
from app.flows.limits import client_source
from app.wire import MAX_JSON_DEPTH, nesting_within

T = TypeVar("T")

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# RFC 6749 §5.1 / spec/protocol.md: anything carrying a credential is never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def ctx_of(request: Request[Any, Any, Any]) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def json_body(request: Request[Any, Any, Any], type_: type[T] | msgspec.json.Decoder[T]) -> T:
    return decode_json(await json_bytes(request), type_)


async def json_bytes(request: Request[Any, Any, Any]) -> bytes:
    if media_type(request) != JSON:
        raise AuthError("unsupported_media_type", "send the body as application/json")
    return await request.body()


def decode_json(raw: bytes, type_: type[T] | msgspec.json.Decoder[T]) -> T:
    """One decode into ``type_`` (a Struct, or a Decoder for a union such as a tagged one)."""
    if not nesting_within(raw):
        raise AuthError("invalid_request", f"the JSON body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        if isinstance(type_, msgspec.json.Decoder):
            return type_.decode(raw)
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise AuthError("invalid_request", f"the JSON body does not match the contract: {exc}") from exc
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: unreachable under the limit above
        raise AuthError("invalid_request", "the body is not valid JSON") from exc


async def form_body(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    raw = await request.body()
    if media_type(request) != FORM and not (raw == b"" and not media_type(request)):
        raise AuthError("unsupported_media_type", f"send the body as {FORM}")
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=False, strict_parsing=False, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AuthError("invalid_request", "the form body is malformed") from exc


def source_of(request: ASGIConnection[Any, Any, Any, Any], ctx: Context) -> str:
    peer = request.client.host if request.client else None
    if not ctx.settings.trusted_proxies:
        return client_source(peer, None, ())
    # Several header lines are one list, in order (RFC 9110 §5.3): a proxy may add its own line rather
    # than append to the client's, so the right-most hop can sit in any line but the first.
    forwarded = ",".join(request.headers.getall("x-forwarded-for", [])) or None
    return client_source(peer, forwarded, ctx.settings.trusted_proxies)


class _Head:
    """A response already encoded: its head and body, sent as they are."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: HTTPResponseStartEvent = {"type": "http.response.start", "status": self.status, "headers": self.headers}
        await send(start)
        body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": self.body, "more_body": False}
        await send(body)


class Encoded(Response[bytes]):
    """A body the handler encoded itself (JSON, or the error document), with its own headers. Litestar's
    path from a Response to ASGI rebuilds every header through a case-insensitive mapping that looks
    each name up by raising KeyError: measured ~13 µs a response here, a tenth of an API call. This one
    writes the head directly. Anything Litestar adds on the way (a layer's headers or cookies, a
    background task, a HEAD request) takes Litestar's own path, unchanged."""

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        plain = not (headers or cookies or encoded_headers or background or self.background or self.cookies)
        if not plain or is_head_response or request.scope["method"] == "HEAD":
            return super().to_asgi_response(
                app,
                request,
                background=background,
                cookies=cookies,
                encoded_headers=encoded_headers,
                headers=headers,
                is_head_response=is_head_response,
                media_type=media_type,
                status_code=status_code,
                type_encoders=type_encoders,
            )
        body = self.content
        head = [
            (b"content-type", get_enum_string_value(self.media_type or JSON).encode("latin-1")),
            (b"content-length", str(len(body)).encode("latin-1")),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()),
        ]
        sent: ASGIApp = _Head(self.status_code or status_code or 200, head, body)
        return sent  # type: ignore[return-value]  # an ASGI app, which is all Litestar calls it as


def json_response(
    obj: Any, status: int = 200, *, no_store: bool = False, headers: dict[str, str] | None = None
) -> Response[bytes]:
    merged = {**(NO_STORE if no_store else {}), **(headers or {})}
    return Encoded(content=msgspec.json.encode(obj), status_code=status, media_type=JSON, headers=merged)
