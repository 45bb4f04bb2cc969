"""OAuth clients of the authorization endpoint (MCP clients), and client authentication.

A client is one of (spec/mcp.md):
- a **Client ID Metadata Document**: ``client_id`` is an https URL naming a JSON document that describes
  the client (draft-ietf-oauth-client-id-metadata-document); fetched through the SSRF-guarded, cached
  fetcher (app/outbound/cimd.py), under the operator's host policy; nothing is stored;
- a **registered client**: a ``[[clients]]`` entry of the configuration;
- a **dynamically registered client** (RFC 7591, app/flows/dynamic_clients.py): stored, public,
  deleted when unused.

An auth.md agent is a client too, but never here: its registration is its client.

Redirect URIs are compared as exact strings (OAuth 2.1 §2.3.1, RFC 9700 §4.1.3), except that the port of
a loopback IP literal may differ (RFC 8252 §7.3: a native app listens on whatever port it gets).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import ipaddress
import secrets
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import unquote_plus, urlsplit

import msgspec

from app.config import Secret
from app.config_parts import loopback_http
from app.context import Context
from app.errors import AuthError
from app.flows import dynamic_clients
from app.flows.limits import enforce, source_key
from app.keys import hash_secret, verify_secret
from app.store.port import WindowHit

ClientKind = Literal["metadata_document", "registered", "dynamic"]
AuthMethod = Literal["none", "client_secret_basic"]


class Client(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    auth_method: AuthMethod
    kind: ClientKind
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    secret: Secret | None = None
    expires_at: int | None = None  # a dynamically registered client's: gone when unused until then

    @property
    def local_only(self) -> bool:
        """Every redirect goes to this computer: the app runs locally, whoever wrote it (the consent page
        warns that such a client's name proves nothing)."""
        return all(loopback_http(uri) for uri in self.redirect_uris)

    def redirect_allowed(self, uri: str) -> bool:
        if uri in self.redirect_uris:
            return True
        return loopback_http(uri) and any(_same_but_port(uri, known) for known in self.redirect_uris)


def _loopback_ip(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same_but_port(uri: str, registered: str) -> bool:
    """RFC 8252 §7.3: a loopback IP literal redirect matches whatever its port (localhost does not:
    §8.3 advises against it, and its name may resolve elsewhere). Everything but the port is compared
    as the exact string: the scheme's and host's spelling, path and query."""
    if not (uri.startswith("http://") and registered.startswith("http://")) or "#" in uri:
        return False
    a, b = urlsplit(uri), urlsplit(registered)
    try:
        a.port, b.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return False
    host_a, host_b = (p.netloc.rsplit(":", 1)[0] if p.port is not None else p.netloc for p in (a, b))
    return (
        _loopback_ip(a.hostname) and "@" not in a.netloc and host_a == host_b and (a.path, a.query) == (b.path, b.query)
    )


def _unknown(description: str) -> AuthError:
    return AuthError("invalid_client", description)


async def resolve(ctx: Context, client_id: str | None) -> Client:
    """The client ``client_id`` names, or ``invalid_client``."""
    if not client_id:
        raise AuthError("invalid_request", "client_id is missing")
    registered = next((c for c in ctx.settings.clients if c.client_id == client_id), None)
    if registered is not None:
        return Client(
            client_id=registered.client_id,
            name=registered.client_name,
            redirect_uris=tuple(registered.redirect_uris),
            auth_method=registered.token_endpoint_auth_method,
            kind="registered",
            secret=registered.client_secret,
        )
    if client_id.startswith(dynamic_clients.PREFIX):
        record = await ctx.store.get_client(client_id, ctx.clock.now()) if ctx.settings.dcr_enabled else None
        if record is None:
            raise _unknown("unknown client_id (a registration unused for too long is deleted: register again)")
        return Client(
            client_id=record.client_id,
            name=record.client_name or "an application that registered itself",
            redirect_uris=record.redirect_uris,
            auth_method="none",
            kind="dynamic",
            grant_types=record.grant_types,
            expires_at=record.expires_at,
        )
    if urlsplit(client_id).scheme not in ("https", "http"):
        raise _unknown("unknown client_id: not a registered client, nor a client metadata document URL")
    s = ctx.settings
    try:
        document = await ctx.cimd.get(client_id, allow_http=s.dev_mode, allow_private=s.cimd_allow_private)
    except AuthError as exc:
        raise _unknown(f"the client metadata document could not be used: {exc.description}") from exc
    return _from_document(client_id, document, s.dev_mode)


def _from_document(client_id: str, document: dict[str, Any], dev_mode: bool) -> Client:
    """The document's members, checked as a registration's (RFC 7591 §2, app/flows/dynamic_clients.py),
    and the draft's own rule on authentication (§4)."""
    try:
        metadata = dynamic_clients.read_metadata(document, dev_mode)
    except AuthError as exc:
        raise _unknown(f"the client metadata document: {exc.description}") from exc
    method = document.get("token_endpoint_auth_method", "none")
    if method != "none":
        # A private_key_jwt client (the draft's other option) is not served yet; a shared secret is
        # forbidden by the draft (§4), and app/outbound/cimd.py refuses that already.
        raise _unknown(f"token_endpoint_auth_method {str(method)[:40]!r} is not supported here; use none")
    return Client(
        client_id=client_id,
        name=metadata.client_name or urlsplit(client_id).hostname or client_id,
        redirect_uris=tuple(metadata.redirect_uris),
        auth_method="none",
        kind="metadata_document",
        grant_types=tuple(metadata.grant_types),
    )


# ---------------------------------------------------------------------------------------------------
# Client authentication (RFC 6749 §2.3.1 client_secret_basic), shared with introspection
# ---------------------------------------------------------------------------------------------------


@functools.cache
def _unknown_client_hash() -> str:
    """Stands in for an unknown client's stored hash, so an unknown id costs the same slow check as a
    known one with a wrong secret: the answer's timing does not tell which client ids exist."""
    return hash_secret(secrets.token_urlsafe(32))


def basic_credentials(authorization: str | None, realm: str) -> tuple[str, str]:
    """(client_id, secret) from an HTTP Basic header, or ``invalid_client`` with the Basic challenge."""
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthError("invalid_client", "this needs HTTP Basic client authentication", headers=challenge)
    try:
        raw_id, _, raw_secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError, or non-ASCII text that is not base64 at all
        raise AuthError("invalid_client", "malformed Basic credentials", headers=challenge) from exc
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(raw_id), unquote_plus(raw_secret)


async def check_secret(
    ctx: Context,
    secrets_by_id: Mapping[str, Secret | None],
    client_id: str,
    secret: str,
    *,
    source: str,
    counter: str,
    limits: tuple[int, int],
    realm: str,
) -> str:
    """``client_id`` if ``secret`` matches its stored hash, else ``invalid_client`` (401).

    The slow check is reserved before it runs (per client id, unknown ids sharing one counter, and per
    source: ``limits``): a flood of wrong secrets is refused unchecked and cannot be turned into CPU burnt.
    A pair already verified by this process is not checked again."""
    stored_secret = secrets_by_id.get(client_id)
    known = stored_secret is not None
    memo = (client_id, hashlib.sha256(secret.encode()).hexdigest())
    if known and memo in ctx.verified_clients:
        return client_id
    per_client, per_source = limits
    await enforce(
        ctx,
        [
            WindowHit(f"{counter}:client:{client_id if known else '?'}", per_client),
            WindowHit(f"{counter}:src:{source_key(source)}", per_source),
        ],
    )
    stored = stored_secret.reveal() if stored_secret is not None else _unknown_client_hash()
    # scrypt is slow by design: keep it off the event loop.
    ok = await asyncio.to_thread(verify_secret, secret, stored)
    if not ok or not known:
        raise AuthError(
            "invalid_client", "unknown client or wrong secret", headers={"WWW-Authenticate": f'Basic realm="{realm}"'}
        )
    ctx.verified_clients.add(memo)
    return client_id
