"""Request decoding and response encoding shared by the thin route handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast
from urllib.parse import unquote_plus

import msgspec
from litestar import Litestar, Request, Response, asgi
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.exceptions import ClientException, InternalServerException, MethodNotAllowedException
from litestar.handlers import ASGIRouteHandler
from litestar.response.base import ASGIResponse
from litestar.routes import ASGIRoute
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
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


Connection = ASGIConnection[Any, Any, Any, Any]


def ctx_of(request: Connection) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def scope_header(scope: HTTPScope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), read from the scope as the server gave it:
    Litestar's Headers build a multi-dict of every header first (~10 µs a request, measured)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def media_type(request: Connection) -> str:
    found = scope_header(cast("HTTPScope", request.scope), b"content-type")
    return found.decode("latin-1").split(";", 1)[0].strip().lower() if found else ""


async def json_body(request: Request[Any, Any, Any], type_: type[T] | msgspec.json.Decoder[T]) -> T:
    require_json(request)
    return decode_json(await request.body(), type_)


def require_json(request: Connection) -> None:
    if media_type(request) != JSON:
        raise AuthError("unsupported_media_type", "send the body as application/json")


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
    return decode_form(request, await request.body())


def decode_form(request: Connection, raw: bytes) -> dict[str, list[str]]:
    if media_type(request) != FORM and not (raw == b"" and not media_type(request)):
        raise AuthError("unsupported_media_type", f"send the body as {FORM}")
    try:
        return parse_form(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AuthError("invalid_request", "the form body is malformed") from exc


MAX_FORM_FIELDS = 50


def parse_form(text: str) -> dict[str, list[str]]:
    """``urllib.parse.parse_qs(text, max_num_fields=50)`` (fields without a value dropped), in a
    third of its time: a name or value is unquoted only when it holds an escape (``%``) or a ``+``.
    tests/unit/test_form.py holds the two to the same answers."""
    if text.count("&") + 1 > MAX_FORM_FIELDS:
        raise ValueError("too many fields")
    fields: dict[str, list[str]] = {}
    for field in text.split("&"):
        name, _, value = field.partition("=")
        if not value:  # no "=", or nothing after it: parse_qs drops both without keep_blank_values
            continue
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        fields.setdefault(name, []).append(value)
    return fields


def source_of(request: Connection, ctx: Context) -> str:
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
        sent: ASGIApp = self.head(status_code)
        return sent  # type: ignore[return-value]  # an ASGI app, which is all Litestar calls it as

    def head(self, status_code: int | None = None) -> _Head:
        """The response as it goes out: the head written once, then the body."""
        body = self.content
        head = [
            (b"content-type", get_enum_string_value(self.media_type or JSON).encode("latin-1")),
            (b"content-length", str(len(body)).encode("latin-1")),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()),
        ]
        return _Head(self.status_code or status_code or 200, head, body)


def json_response(
    obj: Any, status: int = 200, *, no_store: bool = False, headers: dict[str, str] | None = None
) -> Encoded:
    merged = {**(NO_STORE if no_store else {}), **(headers or {})}
    return Encoded(content=msgspec.json.encode(obj), status_code=status, media_type=JSON, headers=merged)


# ---- The hottest endpoints as bare ASGI routes ----------------------------------------------------------
# A Litestar handler route costs, per request, a signature model, a Request, its body stream and the
# response's conversion: ~60 µs here, a fifth of a registration (docs/performance.md). These routes read
# the body and write the answer themselves; errors still go through the app's exception handlers, the
# send hooks (access log, HSTS) and the middleware (request ids, metrics) as for every route.

Answer = Callable[[Connection], Awaitable[Encoded]]
_ANSWERS = "authmd_answers"  # the route handler's opt key holding its answers, by method
_EMPTY: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}


async def body_of(request: Connection) -> bytes:
    """The request body, refused with 413 past ``max_body_bytes``: at once when Content-Length says so,
    else as soon as what arrived exceeds it (a chunked body), as Litestar's Request.body does."""
    return await _read_body(cast("HTTPScope", request.scope), request.receive, ctx_of(request).settings.max_body_bytes)


async def _read_body(scope: HTTPScope, receive: Receive, limit: int) -> bytes:
    length = scope_header(scope, b"content-length")
    if length is not None and int(length) > limit:  # the server refuses a Content-Length that is no number
        raise ClientException(status_code=413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]  # an http.request message
        size += len(chunk)
        if size > limit:
            raise ClientException(status_code=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def asgi_route(path: str, answers: dict[str, Answer]) -> ASGIRouteHandler:
    """``path`` answered per method by ``answers[method](connection)``, which reads the body, if any,
    with ``body_of``. OPTIONS lists the methods; any other method is 405 with ``Allow`` (RFC 9110
    §15.5.6), as on every other route. The OpenAPI document describes each under its answer's name
    (app/routes/openapi.py)."""
    allow = ", ".join([*answers, "OPTIONS"])
    options: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 204,
        "headers": [(b"allow", allow.encode())],
    }

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        http = cast("HTTPScope", scope)  # asgi routes are only reached by http requests here
        answer = answers.get(http["method"])
        if answer is None:
            if http["method"] == "OPTIONS":
                await send({**options, "headers": list(options["headers"])})
                await send(_EMPTY)
                return
            raise MethodNotAllowedException(headers={"Allow": allow})
        response = await answer(ASGIConnection(scope, receive))
        await response.head()(scope, receive, send)

    name = "_".join(a.__name__ for a in answers.values())
    handler.__name__ = handler.__qualname__ = name
    return asgi(path, name=name, copy_scope=False, opt={_ANSWERS: answers})(handler)


def asgi_answers(app: Litestar) -> dict[tuple[str, str], Answer]:
    """What ``asgi_route`` serves in ``app``, by (method, path): for its OpenAPI document."""
    found: dict[tuple[str, str], Answer] = {}
    for route in app.routes:
        if isinstance(route, ASGIRoute) and _ANSWERS in route.route_handler.opt:
            answers: dict[str, Answer] = route.route_handler.opt[_ANSWERS]
            found.update({(method, route.path): answer for method, answer in answers.items()})
    return found
