"""Discovery documents, served as pre-encoded bytes with a strong ETag (rebuilt only on key changes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, cast

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, HTTPScope, Receive, Scope, Send

from app import endpoints as ep
from app.context import Context
from app.errors import AuthError
from app.flows import discover
from app.keys import KeyRing
from app.routes.http import scope_header

CACHE_CONTROL = "public, max-age=300"


class Document:
    """One pre-encoded representation: the ASGI start message is built once, not per request."""

    __slots__ = ("_body_msg", "_empty_msg", "_full", "_not_modified", "body", "etag", "media_type")

    def __init__(self, body: bytes, media_type: str, *, vary: bool = False) -> None:
        self.body, self.media_type = body, media_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        common = [(b"etag", self.etag.encode()), (b"cache-control", CACHE_CONTROL.encode())]
        if vary:
            common.append((b"vary", b"Accept"))
        self._full: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode()), *common],
        }
        # RFC 9110 §15.4.5: a 304 carries the validators and caching headers it would have sent.
        self._not_modified: HTTPResponseStartEvent = {"type": "http.response.start", "status": 304, "headers": common}
        self._body_msg: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
        self._empty_msg: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}

    @classmethod
    def json(cls, value: Any) -> Document:
        if isinstance(value, msgspec.Struct):  # the same json.dumps bytes as for its builtins
            value = msgspec.to_builtins(value)
        return cls(json.dumps(value, separators=(",", ":")).encode(), "application/json")

    def matches(self, if_none_match: bytes | None) -> bool:
        # RFC 9110 §13.1.2: weak comparison; `*` matches any current representation.
        if not if_none_match:
            return False
        tags = [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")]
        return b"*" in tags or self.etag.encode() in tags

    async def send(self, scope: HTTPScope, send: Send) -> None:
        # Start messages go out as copies: a send hook that adds a header (HSTS) must not add it to the
        # message every later request sends too.
        if self.matches(scope_header(scope, b"if-none-match")):
            await send({**self._not_modified, "headers": list(self._not_modified["headers"])})
            await send(self._empty_msg)
            return
        await send({**self._full, "headers": list(self._full["headers"])})
        await send(self._empty_msg if scope["method"] == "HEAD" else self._body_msg)


_METHOD_NOT_ALLOWED = msgspec.json.encode(
    AuthError("method_not_allowed", "discovery documents are read with GET").body()
)


_REFUSE_START: HTTPResponseStartEvent = {
    "type": "http.response.start",
    "status": 405,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_METHOD_NOT_ALLOWED)).encode()),
        (b"allow", b"GET, HEAD"),
    ],
}
_REFUSE_BODY: HTTPResponseBodyEvent = {"type": "http.response.body", "body": _METHOD_NOT_ALLOWED, "more_body": False}


async def _refuse_method(send: Send) -> None:
    await send({**_REFUSE_START, "headers": list(_REFUSE_START["headers"])})
    await send(_REFUSE_BODY)


class Documents:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        e = ctx.endpoints
        self.as_metadata = Document.json(discover.authorization_server_metadata(ctx))
        self.prm_resource = Document.json(discover.protected_resource_metadata(ctx, e.resource))
        self.prm_issuer = Document.json(discover.protected_resource_metadata(ctx, e.issuer))
        markdown = discover.auth_md(ctx)
        self.auth_md = Document(markdown.encode(), "text/markdown; charset=utf-8", vary=True)
        self.auth_md_html = Document(
            discover.auth_md_html(ctx, markdown).encode(), "text/html; charset=utf-8", vary=True
        )
        self.jwks = Document(b"", "application/jwk-set+json")
        self.on_keys(ctx.keys)
        ctx.on_keys_changed.append(self.on_keys)

    def on_keys(self, keys: KeyRing) -> None:
        self.jwks = Document(json.dumps(keys.jwks(), separators=(",", ":")).encode(), "application/jwk-set+json")
        # `resource_signing_alg_values_supported` follows the current key.
        e = self.ctx.endpoints
        self.prm_resource = Document.json(discover.protected_resource_metadata(self.ctx, e.resource))
        self.prm_issuer = Document.json(discover.protected_resource_metadata(self.ctx, e.issuer))


def _prefers_html(accept: str | None) -> bool:
    """True when the client ranks text/html above Markdown/plain text (a browser)."""
    if not accept:
        return False
    best: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = [p.strip() for p in item.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        best[media.lower()] = max(q, best.get(media.lower(), 0.0))
    html = best.get("text/html", 0.0)
    text = max(best.get("text/markdown", 0.0), best.get("text/plain", 0.0), best.get("text/*", 0.0))
    return html > 0 and html > text


def _document_route(path: str, name: str, pick: Callable[[HTTPScope], Document]) -> ASGIRouteHandler:
    """A GET/HEAD route that writes a pre-encoded document straight to ASGI (measured: a third of the
    cost of building a Response per request; discovery must keep up with a bare constant endpoint)."""

    @asgi(path, name=name, copy_scope=False)
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        http = cast("HTTPScope", scope)  # asgi routes are only reached by http requests here
        if http["method"] not in ("GET", "HEAD"):
            await _refuse_method(send)
            return
        await pick(http).send(http, send)

    return handler


def discovery_handlers(docs: Documents) -> tuple[list[ASGIRouteHandler], list[ASGIRouteHandler]]:
    """(handlers under the issuer path, handlers at the origin root for path-inserted well-knowns)."""
    e = docs.ctx.endpoints

    def auth_md(scope: HTTPScope) -> Document:
        accept = scope_header(scope, b"accept")
        return docs.auth_md_html if _prefers_html(accept.decode("latin-1") if accept else None) else docs.auth_md

    under_issuer = [
        _document_route(ep.AS_METADATA, "as-metadata", lambda _: docs.as_metadata),
        _document_route(ep.JWKS, "jwks", lambda _: docs.jwks),
        _document_route(ep.AUTH_MD, "auth-md", auth_md),
    ]
    at_root = [_document_route(e.issuer_resource_metadata_path, "prm-issuer", lambda _: docs.prm_issuer)]
    if e.resource_is_local and e.resource_metadata_path != e.issuer_resource_metadata_path:
        at_root.append(_document_route(e.resource_metadata_path, "prm-resource", lambda _: docs.prm_resource))
    if not (e.resource_is_local and e.mcp_resource_metadata_path == e.resource_metadata_path):
        # The MCP server (app/routes/mcp.py) is part of the protected resource: its document is the
        # resource's (MCP clients accept a `resource` that is a parent path of the server's URL).
        at_root.append(_document_route(e.mcp_resource_metadata_path, "prm-mcp", lambda _: docs.prm_resource))
    if e.base_path:
        # RFC 8414 §3.1 path-inserted form, beside the appended form the official client uses.
        at_root.append(_document_route(e.as_metadata_inserted_path, "as-metadata-inserted", lambda _: docs.as_metadata))
    return under_issuer, at_root
