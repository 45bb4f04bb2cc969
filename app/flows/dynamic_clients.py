"""RFC 7591 dynamic client registration: ``POST {registration_endpoint}`` (when ``dcr_enabled``).

The MCP authorization specification keeps it as the fallback for clients without a Client ID Metadata
Document. Every client registered here is public (``token_endpoint_auth_method`` ``none``, with PKCE):
a secret handed to whoever asks would authenticate nobody. What the server does not take from the
request it replaces and says so in the answer (RFC 7591 §3.2.1): the auth method, the response types.

- ``redirect_uris`` (required, 1 to MAX_REDIRECTS): a ``web`` client's are https (http in dev mode);
  a ``native`` client's (RFC 8252 §7) are http on a loopback address, a reverse-domain private-use
  scheme, or https. Without ``application_type``, a client whose every redirect URI is a native one is
  native (what MCP clients on a desktop send), else web; a web client may not redirect to localhost.
- Floods: ``dcr_limit_per_source`` registrations per source per rate window; a client not used for
  ``dcr_unused_days`` is gone (each authorization-code or refresh grant moves its expiry, at most once
  a day), and the sweeper reclaims it.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import msgspec

from app import text
from app.config_parts import loopback_http, redirect_uri_problem
from app.context import Context
from app.errors import AuthError
from app.flows.limits import enforce, source_key
from app.store.port import ClientRecord, WindowHit
from app.tokens import new_id
from app.wire import ClientRegistered

PREFIX = "dcr_"
MAX_REDIRECTS = 10
MAX_URI = 2000
DAY = 86_400
_GRANTS = ("authorization_code", "refresh_token")


def _metadata(description: str) -> AuthError:
    return AuthError("invalid_client_metadata", description)


def _redirect(description: str) -> AuthError:
    return AuthError("invalid_redirect_uri", description)


def _native_uri(uri: str) -> bool:
    """RFC 8252 §7.1-7.3: a private-use scheme, or http on a loopback address."""
    scheme = urlsplit(uri).scheme
    return loopback_http(uri) or (scheme not in ("https", "http") and "." in scheme)


def _strings(value: Any, name: str, default: list[str]) -> list[str]:
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _metadata(f"{name} must be an array of strings")
    return value


def _redirect_uris(document: dict[str, Any], dev_mode: bool) -> tuple[list[str], Literal["web", "native"]]:
    uris = document.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise _redirect("redirect_uris is required: an array of at least one URI")
    if len(uris) > MAX_REDIRECTS or any(len(u) > MAX_URI for u in uris):
        raise _redirect(f"at most {MAX_REDIRECTS} redirect URIs of at most {MAX_URI} characters")
    asked = document.get("application_type")
    if asked not in (None, "web", "native"):
        raise _metadata("application_type must be web or native")
    kind: Literal["web", "native"] = asked or ("native" if all(_native_uri(u) for u in uris) else "web")
    for uri in uris:
        problem = redirect_uri_problem(uri, dev_mode)
        if problem is not None:
            raise _redirect(f"{uri[:200]!r} {problem}")
        if kind == "web" and _native_uri(uri) and not dev_mode:
            raise _redirect(f"{uri[:200]!r}: a web client redirects over https; register a native app instead")
    return list(dict.fromkeys(uris)), kind


class Metadata(NamedTuple):
    """The RFC 7591 §2 members this server takes from a client's metadata, checked."""

    redirect_uris: list[str]
    application_type: Literal["web", "native"]
    grant_types: list[str]
    response_types: list[str]
    client_name: str | None


def read_metadata(document: Any, dev_mode: bool) -> Metadata:
    """A client's metadata (a registration request's, or a Client ID Metadata Document's), or RFC 7591
    §3.2.2's ``invalid_redirect_uri`` / ``invalid_client_metadata`` naming what is wrong."""
    if not isinstance(document, dict):
        raise _metadata("the client metadata must be a JSON object")
    uris, kind = _redirect_uris(document, dev_mode)
    grants = _strings(document.get("grant_types"), "grant_types", ["authorization_code"])
    if "authorization_code" not in grants or not set(grants) <= set(_GRANTS):
        raise _metadata("grant_types: authorization_code, and optionally refresh_token")
    responses = _strings(document.get("response_types"), "response_types", ["code"])
    if set(responses) != {"code"}:
        raise _metadata("response_types: only code")
    name = document.get("client_name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise _metadata("client_name must be a non-empty string")
        problem = text.label_problem(name)
        if problem is not None:
            raise _metadata(f"client_name must be printable text of at most {text.MAX_LABEL} characters: {problem}")
    return Metadata(uris, kind, list(dict.fromkeys(grants)), responses, name)


def _checked(ctx: Context, document: Any) -> tuple[ClientRecord, list[str]]:
    """The client to store, and its response types, from the request's metadata (RFC 7591 §2)."""
    metadata = read_metadata(document, ctx.settings.dev_mode)
    now = int(ctx.clock.now())
    record = ClientRecord(
        client_id=PREFIX + new_id("c")[2:],
        client_name=metadata.client_name,
        redirect_uris=tuple(metadata.redirect_uris),
        application_type=metadata.application_type,
        grant_types=tuple(metadata.grant_types),
        created_at=now,
        expires_at=now + ctx.settings.dcr_unused_days * DAY,
    )
    return record, metadata.response_types


async def register(ctx: Context, document: Any, source: str) -> ClientRegistered:
    """Check, count against the source's allowance, store; the RFC 7591 §3.2.1 answer."""
    if not ctx.settings.dcr_enabled:
        raise AuthError("not_found", "this service does not offer dynamic client registration")
    record, responses = _checked(ctx, document)
    src = source_key(source)
    # Counted only once the request is well formed: a malformed flood is refused for free anyway.
    await enforce(ctx, [WindowHit(f"dcr:src:{src}", ctx.settings.dcr_limit_per_source)])
    record = msgspec.structs.replace(record, source=src)
    await ctx.store.put_client(record)
    return ClientRegistered(
        client_id=record.client_id,
        client_id_issued_at=record.created_at,
        redirect_uris=list(record.redirect_uris),
        token_endpoint_auth_method="none",
        grant_types=list(record.grant_types),
        response_types=responses,
        application_type=record.application_type,
        client_name=record.client_name,
    )


async def used(ctx: Context, client_id: str, expires_at: int | None) -> None:
    """A grant used this client: it lives ``dcr_unused_days`` from now (written at most once a day)."""
    if not client_id.startswith(PREFIX) or expires_at is None:
        return
    now = int(ctx.clock.now())
    renewed = now + ctx.settings.dcr_unused_days * DAY
    if renewed - expires_at >= DAY:
        await ctx.store.touch_client(client_id, renewed, now)
