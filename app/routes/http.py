"""Request decoding and response encoding shared by the thin route handlers."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qs

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection

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


def json_response(
    obj: Any, status: int = 200, *, no_store: bool = False, headers: dict[str, str] | None = None
) -> Response[bytes]:
    merged = {**(NO_STORE if no_store else {}), **(headers or {})}
    return Response(content=msgspec.json.encode(obj), status_code=status, media_type=JSON, headers=merged)
