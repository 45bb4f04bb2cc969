"""Discovery documents, served as pre-encoded bytes with a strong ETag (rebuilt only on key changes)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from app import endpoints as ep
from app.context import Context
from app.flows import discover
from app.keys import KeyRing

CACHE_CONTROL = "public, max-age=300"


@dataclass(frozen=True, slots=True)
class Document:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media_type: str) -> Document:
        return cls(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    @classmethod
    def json(cls, value: Any) -> Document:
        return cls.of(json.dumps(value, separators=(",", ":")).encode(), "application/json")

    def serve(self, request: Request[Any, Any, Any], *, vary: bool = False) -> Response[bytes]:
        headers = {"ETag": self.etag, "Cache-Control": CACHE_CONTROL}
        if vary:
            headers["Vary"] = "Accept"
        inm = request.headers.get("if-none-match")
        # RFC 9110 §13.1.2: weak comparison for If-None-Match; `*` matches any current representation.
        if inm and (inm.strip() == "*" or self.etag in [t.strip().removeprefix("W/") for t in inm.split(",")]):
            return Response(content=b"", status_code=304, headers=headers)
        return Response(content=self.body, media_type=self.media_type, headers=headers)


class Documents:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        e = ctx.endpoints
        self.as_metadata = Document.json(discover.authorization_server_metadata(ctx))
        self.prm_resource = Document.json(discover.protected_resource_metadata(ctx, e.resource))
        self.prm_issuer = Document.json(discover.protected_resource_metadata(ctx, e.issuer))
        markdown = discover.auth_md(ctx)
        self.auth_md = Document.of(markdown.encode(), "text/markdown")
        self.auth_md_html = Document.of(discover.auth_md_html(ctx, markdown).encode(), "text/html")
        self.jwks = Document.of(b"", "application/jwk-set+json")
        self.on_keys(ctx.keys)
        ctx.on_keys_changed.append(self.on_keys)

    def on_keys(self, keys: KeyRing) -> None:
        self.jwks = Document.of(json.dumps(keys.jwks(), separators=(",", ":")).encode(), "application/jwk-set+json")
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


def discovery_handlers(docs: Documents) -> tuple[list[HTTPRouteHandler], list[HTTPRouteHandler]]:
    """(handlers under the issuer path, handlers at the origin root for path-inserted well-knowns)."""
    e = docs.ctx.endpoints

    @get(ep.AS_METADATA, name="as-metadata")
    async def as_metadata(request: Request[Any, Any, Any]) -> Response[bytes]:
        return docs.as_metadata.serve(request)

    @get(ep.JWKS, name="jwks")
    async def jwks(request: Request[Any, Any, Any]) -> Response[bytes]:
        return docs.jwks.serve(request)

    @get(ep.AUTH_MD, name="auth-md")
    async def auth_md(request: Request[Any, Any, Any]) -> Response[bytes]:
        if _prefers_html(request.headers.get("accept")):
            return docs.auth_md_html.serve(request, vary=True)
        return docs.auth_md.serve(request, vary=True)

    under_issuer: list[HTTPRouteHandler] = [as_metadata, jwks, auth_md]
    at_root: list[HTTPRouteHandler] = []

    @get(e.issuer_resource_metadata_path, name="prm-issuer")
    async def prm_issuer(request: Request[Any, Any, Any]) -> Response[bytes]:
        return docs.prm_issuer.serve(request)

    at_root.append(prm_issuer)
    if e.resource_is_local and e.resource_metadata_path != e.issuer_resource_metadata_path:

        @get(e.resource_metadata_path, name="prm-resource")
        async def prm_resource(request: Request[Any, Any, Any]) -> Response[bytes]:
            return docs.prm_resource.serve(request)

        at_root.append(prm_resource)
    if e.base_path:
        # RFC 8414 §3.1 path-inserted form, beside the appended form the official client uses.
        @get(e.as_metadata_inserted_path, name="as-metadata-inserted")
        async def as_metadata_inserted(request: Request[Any, Any, Any]) -> Response[bytes]:
            return docs.as_metadata.serve(request)

        at_root.append(as_metadata_inserted)
    return under_issuer, at_root
