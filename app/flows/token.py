"""POST {token_endpoint}: the grants, dispatched by ``grant_type`` (RFC 6749 §4.1.3, §6; RFC 7523).

- ``urn:ietf:params:oauth:grant-type:jwt-bearer``: an agent's identity assertion or a provider's ID-JAG
  (app/flows/exchange.py);
- ``authorization_code``: an OAuth client (an MCP client) redeems the code its human approved
  (app/flows/authorize.py), with its PKCE verifier;
- ``refresh_token``: that client's refresh token, rotated with reuse detection (app/flows/refresh.py).

Errors are RFC 6749 §5.2's: ``invalid_client`` is 401 (with the Basic challenge when Basic was tried).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from app import observe
from app.context import Context
from app.errors import AuthError
from app.flows import authorize, clients, dynamic_clients, exchange, grants, refresh
from app.flows.params import single
from app.protocol import JWT_BEARER
from app.store.port import AccessState, Registration
from app.wire import TokenIssued

Form = Mapping[str, list[str]]
REALM = "authmd token endpoint"
# RFC 7636 §4.1: 43 to 128 unreserved characters.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


class TokenRequest(msgspec.Struct, frozen=True):
    form: Form
    authorization: str | None
    source: Callable[[], str]  # the caller's network key, worked out only for a client's secret check


async def token(ctx: Context, req: TokenRequest) -> TokenIssued:
    grant_type = single(req.form, "grant_type")
    if grant_type is None:
        raise AuthError("invalid_request", "grant_type is missing")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise AuthError("unsupported_grant_type", f"grant_type {grant_type[:60]!r} is not supported here")
    return await grant(ctx, req)


async def _jwt_bearer(ctx: Context, req: TokenRequest) -> TokenIssued:
    """Agents present no client credentials (a ``client_id`` field alone is ignored, as ever); an OAuth
    client that authenticates with HTTP Basic may present an ID-JAG issued to it, and only that
    (app/flows/exchange.py)."""
    parsed = exchange.token_request(req.form)
    basic = req.authorization is not None and req.authorization.lower().startswith("basic ")
    client_id = (await _client(ctx, req)).client_id if basic else None
    return await exchange.exchange(ctx, parsed, client_id)


async def _client(ctx: Context, req: TokenRequest) -> clients.Client:
    """RFC 6749 §2.3, §3.2.1: a confidential client authenticates (client_secret_basic); a public one
    names itself with ``client_id``."""
    if "client_secret" in req.form:
        raise AuthError("invalid_client", "client_secret_post is not supported: use HTTP Basic")
    if req.authorization is not None and req.authorization.lower().startswith("basic "):
        client_id, secret = clients.basic_credentials(req.authorization, REALM)
        confidential = {c.client_id: c.client_secret for c in ctx.settings.clients if c.client_secret is not None}
        s = ctx.settings
        await clients.check_secret(
            ctx,
            confidential,
            client_id,
            secret,
            source=req.source(),
            counter="client",
            limits=(s.introspection_checks_per_client, s.introspection_checks_per_source),
            realm=REALM,
        )
        named = single(req.form, "client_id")
        if named is not None and named != client_id:
            raise AuthError("invalid_client", "client_id differs from the authenticated client")
        return await clients.resolve(ctx, client_id)
    client = await clients.resolve(ctx, single(req.form, "client_id"))
    if client.auth_method != "none":
        challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'}
        raise AuthError("invalid_client", "this client must authenticate (HTTP Basic)", headers=challenge)
    return client


def _bad_grant(description: str) -> AuthError:
    return AuthError("invalid_grant", description, "Send the human through the authorization endpoint again.")


async def _authorization_code(ctx: Context, req: TokenRequest) -> TokenIssued:
    form = req.form
    code, verifier = single(form, "code"), single(form, "code_verifier")
    redirect_uri, resource = single(form, "redirect_uri"), single(form, "resource")
    if not code:
        raise AuthError("invalid_request", "code is missing")
    if not verifier:
        raise AuthError("invalid_request", "code_verifier is missing (PKCE, RFC 7636 §4.5)")
    client = await _client(ctx, req)
    now = ctx.clock.now()
    key = authorize.code_key(code)
    raw = await ctx.store.get_session(key, now) if len(code) < 200 else None
    if raw is None:
        raise _bad_grant("the code is not valid (unknown, or expired)")
    record = msgspec.json.decode(raw, type=authorize.CodeRecord)
    # RFC 6749 §4.1.3: issued to this client, for this redirect URI.
    if record.client_id != client.client_id:
        raise _bad_grant("the code was issued to another client")
    if (redirect_uri is not None or record.redirect_uri_sent) and redirect_uri != record.redirect_uri:
        raise _bad_grant("redirect_uri differs from the authorization request's")
    # RFC 7636 §4.6: the verifier must hash to the challenge.
    if not _VERIFIER.fullmatch(verifier) or create_s256_code_challenge(verifier) != record.code_challenge:
        raise _bad_grant("code_verifier does not match the code_challenge")
    if resource is not None and not exchange.names_our_resource(resource, record.resource):
        raise AuthError("invalid_target", "the resource differs from the one the human approved")
    # Single use (RFC 6749 §4.1.2): a second redemption is refused and the grant dies with what it issued.
    if not await ctx.store.consume_once("authorization-code", key, now + authorize.CODE_MEMORY_SECONDS, now):
        reg_id = record.registration_id
        await grants.revoke_grant(ctx, record.account_id, reg_id, by="agent", reason="authorization_code_reused")
        raise _bad_grant("the code was already used; what it issued is revoked")
    if record.expires_at <= now:
        raise _bad_grant("the code has expired")
    state = await ctx.store.access_state(record.account_id, record.registration_id, None, now)
    reg = state.registration if state is not None else None
    if state is None or reg is None or reg.revoked_at is not None or reg.generation != record.generation:
        raise _bad_grant("the authorization behind this code was revoked or replaced")
    await dynamic_clients.used(ctx, client.client_id, client.expires_at)
    refresh_token = None if reg.refresh_family is None else _refresh_token_of(ctx, reg, reg.refresh_seq)
    return exchange.issue(ctx, state, _token_scopes(record.scopes), None, refresh_token)


def _refresh_token_of(ctx: Context, reg: Registration, seq: int) -> str:
    """An MCP client's refresh token (no event: the grant's own events say when its family moved)."""
    observe.token_issued("refresh_token")
    return refresh.refresh_token(ctx, reg, seq)


def _token_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """What an access token carries: the grant's scopes but ``offline_access`` (it only asks for a
    refresh token)."""
    return tuple(s for s in scopes if s != authorize.OFFLINE_ACCESS)


async def _refresh_token(ctx: Context, req: TokenRequest) -> TokenIssued:
    presented = single(req.form, "refresh_token")
    if not presented:
        raise AuthError("invalid_request", "refresh_token is missing")
    client = await _client(ctx, req)

    def admit(reg: Registration) -> None:
        # RFC 6749 §6: the refresh token was issued to the authenticated client. An agent's refresh
        # token belongs to the identity endpoint, never here.
        if reg.type != "mcp" or reg.client_id != client.client_id:
            raise _bad_grant("the refresh token was not issued to this client")

    rotated = await refresh.rotate(ctx, presented, _bad_grant, admit)
    await dynamic_clients.used(ctx, client.client_id, client.expires_at)
    reg = rotated.registration
    scopes = exchange.narrowed(_token_scopes(reg.scopes), single(req.form, "scope"), "what the human approved")
    state = AccessState(registration=reg, account=rotated.account, token_revoked=False)
    return exchange.issue(ctx, state, scopes, None, _refresh_token_of(ctx, reg, rotated.seq))


Grant = Callable[[Context, TokenRequest], Awaitable[TokenIssued]]
GRANTS: dict[str, Grant] = {
    JWT_BEARER: _jwt_bearer,
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
}
