"""The authorization endpoint (RFC 6749 §4.1, OAuth 2.1 §4.1): an MCP client sends its human here.

``GET {authorization_endpoint}`` is checked in two stages (RFC 6749 §4.1.2.1):
1. who asks and where the answer goes: ``client_id`` (a registered client or a client metadata
   document, app/flows/clients.py) and ``redirect_uri`` (exact match). A failure here is shown to the
   human on our own page and never redirected: a bad redirect URI must not become an open redirect.
2. everything else (``response_type``, PKCE, ``resource``, ``scope``, ``prompt``): a failure is
   redirected to the client with ``error``, ``state`` and ``iss`` (RFC 9207 §2).

A checked request waits in the browser's session (app/flows/session.py) while the human signs in and
reads the consent page. Approving writes the grant (an ``mcp`` registration on the human's own account,
replaced on each approval by a new generation, so what the earlier approval issued dies, keeping the
scopes a live earlier grant had: incremental authorization) and a code
bound to the client, redirect URI, PKCE challenge, resource, scopes and grant, good once for
``CODE_TTL_SECONDS``. Only the code's hash is stored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from app import events as ev
from app import observe, tokens
from app.context import Context
from app.errors import AuthError
from app.flows import clients
from app.flows.exchange import names_our_resource
from app.flows.limits import enforce, source_key
from app.flows.params import single
from app.flows.session import PendingAuthorization
from app.store.port import Registration, User, WindowHit

CODE_TTL_SECONDS = 60
# A spent code's record is kept this much longer, so a replay is recognised and revokes the grant
# (RFC 6749 §4.1.2); the code itself only works for CODE_TTL_SECONDS.
CODE_MEMORY_SECONDS = 600
OFFLINE_ACCESS = "offline_access"
# RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_STATE = 2048
# Authorization requests per source per rate window: far above a person's needs, and a cap on the
# metadata documents an outsider can make this server fetch (each names a URL of their choosing).
REQUESTS_PER_SOURCE = 120


class Redirect(msgspec.Struct, frozen=True):
    """Where the browser goes next: the client's redirect URI with the response's parameters."""

    location: str


class CodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a code is bound to (RFC 6749 §4.1.2, RFC 7636 §4.4), stored under the code's hash."""

    client_id: str
    redirect_uri: str
    redirect_uri_sent: bool
    code_challenge: str
    resource: str
    scopes: tuple[str, ...]
    account_id: str
    registration_id: str
    generation: int
    expires_at: int


def respond(ctx: Context, redirect_uri: str, params: Mapping[str, str | None]) -> Redirect:
    """The client's redirect URI with ``params`` added to its query (RFC 6749 §4.1.2: its own query
    is kept), and always ``iss`` (RFC 9207 §2), errors included."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    query.append(("iss", ctx.settings.issuer_str))
    return Redirect(urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), "")))


def _page_error(description: str, code: str = "invalid_request") -> AuthError:
    return AuthError(code, description, "Go back to the application and start again.")


class Refusal(msgspec.Struct, frozen=True):
    """A stage-2 failure: redirected to the client (RFC 6749 §4.1.2.1), never raised."""

    code: str
    description: str


# RFC 6749 §3.1: parameters MUST NOT be included more than once (``resource`` may be, RFC 8707 §2).
_SINGLE = ("response_type", "response_mode", "code_challenge", "code_challenge_method", "scope", "prompt")


def offered(ctx: Context) -> bool:
    """Consent needs our own sign-in page: an OpenID Connect provider, or dev mode's form. Operators
    whose humans sign in through their own login (``claim_page_url``) get no MCP consent yet."""
    s = ctx.settings
    return s.oidc_issuer is not None or (s.dev_mode and s.claim_page_url is None)


async def check(ctx: Context, query: Mapping[str, list[str]], source: str) -> PendingAuthorization | Redirect:
    """A checked request waiting for consent, or the error redirect to the client; stage-1 failures
    raise AuthError for our own page."""
    if not offered(ctx):
        raise AuthError("not_found", "this service has no sign-in for OAuth clients")
    await enforce(ctx, [WindowHit(f"authz:src:{source_key(source)}", REQUESTS_PER_SOURCE)])
    try:
        client_id = single(query, "client_id")
        sent_redirect = single(query, "redirect_uri")
    except AuthError as exc:
        raise _page_error(exc.description) from exc
    client = await clients.resolve(ctx, client_id)
    if sent_redirect is None:
        if len(client.redirect_uris) != 1:
            raise _page_error("redirect_uri is missing, and this client has more than one")
        redirect_uri = client.redirect_uris[0]
    elif not client.redirect_allowed(sent_redirect):
        raise _page_error("redirect_uri is not one this client registered (exact match required)")
    else:
        redirect_uri = sent_redirect
    try:
        state = single(query, "state")
    except AuthError as exc:
        raise _page_error(exc.description) from exc  # which state to send back is unknown
    if state is not None and len(state) > MAX_STATE:
        raise _page_error("state is too long")
    checked = _second_stage(ctx, query, client, redirect_uri, sent_redirect is not None, state)
    if isinstance(checked, Refusal):
        params = {"error": checked.code, "error_description": checked.description, "state": state}
        return respond(ctx, redirect_uri, params)
    return checked


def _second_stage(
    ctx: Context,
    query: Mapping[str, list[str]],
    client: clients.Client,
    redirect_uri: str,
    redirect_uri_sent: bool,
    state: str | None,
) -> PendingAuthorization | Refusal:
    if repeated := [name for name in _SINGLE if len(query.get(name) or ()) > 1]:
        return Refusal("invalid_request", f"the {repeated[0]} parameter appears more than once")

    def _one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    response_type = _one("response_type")
    if response_type is None:
        return Refusal("invalid_request", "response_type is missing")
    if response_type != "code":
        return Refusal("unsupported_response_type", "only response_type=code is supported")
    response_mode = _one("response_mode")
    if response_mode not in (None, "query"):
        return Refusal("invalid_request", "only response_mode=query is supported")
    # RFC 7636 §4.3 and OAuth 2.1 §4.1.1: PKCE is required, and only S256 (a missing method means plain).
    challenge, method = _one("code_challenge"), _one("code_challenge_method")
    if challenge is None:
        return Refusal("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if method != "S256":
        return Refusal("invalid_request", "code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(challenge):
        return Refusal("invalid_request", "code_challenge is not an S256 challenge (43 base64url characters)")
    resources = query.get("resource") or []
    if len(resources) > 1:
        return Refusal("invalid_target", "this service issues tokens for one resource per request")
    resource = ctx.settings.resource_str
    if resources and not names_our_resource(resources[0], resource):
        # RFC 8707 §2: a resource this server does not protect.
        return Refusal("invalid_target", "the resource is not one this service protects")
    scopes = _scopes(ctx, _one("scope"))
    if isinstance(scopes, Refusal):
        return scopes
    prompt = _one("prompt")
    if prompt is not None and "none" in prompt.split():
        # OIDC Core §3.1.2.1: this server always asks the human, so it cannot answer without them.
        return Refusal("interaction_required", "the human must sign in and consent")
    return PendingAuthorization(
        id=secrets.token_urlsafe(12),
        client_id=client.client_id,
        client_name=client.name,
        client_kind=client.kind,
        local_only=client.local_only,
        redirect_uri=redirect_uri,
        redirect_uri_sent=redirect_uri_sent,
        state=state,
        code_challenge=challenge,
        resource=resource,
        scopes=scopes,
        # A refresh token for a client that asked for offline_access or declares the refresh grant
        # (RFC 7591 §2 grant_types; MCP clients refresh rather than send their human back).
        refresh=OFFLINE_ACCESS in scopes or "refresh_token" in client.grant_types,
        created_at=int(ctx.clock.now()),
    )


def grantable(ctx: Context) -> tuple[str, ...]:
    """What an OAuth client may ask for: what a claimed account's agents get, and ``offline_access``
    (a refresh token)."""
    return (*ctx.settings.post_claim_scopes, OFFLINE_ACCESS)


def _scopes(ctx: Context, scope: str | None) -> tuple[str, ...] | Refusal:
    """RFC 6749 §3.3. Without a scope the client gets what an agent's claimed account gets."""
    if scope is None:
        return tuple(ctx.settings.post_claim_scopes)
    wanted = tuple(dict.fromkeys(scope.split()))
    unknown = [s for s in wanted if s not in grantable(ctx)]
    if not wanted or unknown:
        return Refusal("invalid_scope", f"unknown scope: {' '.join(unknown)[:200]}" if unknown else "empty scope")
    return wanted


def denied(ctx: Context, request: PendingAuthorization) -> Redirect:
    return respond(
        ctx,
        request.redirect_uri,
        {"error": "access_denied", "error_description": "the user denied the request", "state": request.state},
    )


def kept_scopes(before: Registration | None) -> tuple[str, ...]:
    """The scopes a live earlier grant of the same client keeps through a new approval."""
    return before.scopes if before is not None and before.revoked_at is None else ()


def kept_refresh(before: Registration | None) -> bool:
    """A live earlier grant with refresh tokens keeps them through a new approval (a new family)."""
    return before is not None and before.revoked_at is None and before.refresh_family is not None


def grant_id(ctx: Context, account_id: str, client_id: str) -> str:
    """One grant per (account, client): approving the same client again replaces it."""
    return tokens.registration_id_for(ctx.keys.derive("registration-id"), "mcp-client", client_id, account_id)


async def approve(ctx: Context, request: PendingAuthorization, user: User, source: str | None) -> Redirect:
    """The human consented: their grant for this client (a new generation, keeping what a live earlier
    grant allowed), and a code for the client."""
    now = int(ctx.clock.now())
    account_id = user.account_id
    reg_id = grant_id(ctx, account_id, request.client_id)
    before = await ctx.store.get_registration(account_id, reg_id, now)
    kept = kept_scopes(before)
    # Incremental authorization: what the human allowed this client before stays allowed (an MCP client
    # that steps up may ask for the missing scope alone), unless they revoked it.
    scopes = tuple(dict.fromkeys((*kept, *request.scopes)))
    refresh = request.refresh or kept_refresh(before)
    grant = Registration(
        id=reg_id,
        type="mcp",
        account_id=account_id,
        scopes=scopes,
        created_at=now,
        expires_at=None,
        generation=before.generation + 1 if before is not None else 0,
        agent_name=request.client_name,
        agent_platform=answered_at(request.redirect_uri),
        refresh_family=secrets.token_urlsafe(12) if refresh else None,
        refresh_expires_at=now + ctx.settings.refresh_token_ttl_seconds if refresh else None,
        source=source,
        client_id=request.client_id,
        resource=request.resource,
    )
    events: list[ev.Event] = [
        ev.new(
            ev.RegistrationCreated,
            now,
            account_id,
            reg_id,
            method="mcp",
            scopes=grant.scopes,
            agent_name=grant.agent_name,
            client_id=request.client_id,
        )
    ]
    if not await ctx.store.put_registration(grant, now, events):
        raise AuthError("invalid_request", "your account is not available; sign in again")
    observe.emitted(ctx.tally, events)
    code = "mac_" + secrets.token_urlsafe(32)
    record = CodeRecord(
        client_id=request.client_id,
        redirect_uri=request.redirect_uri,
        redirect_uri_sent=request.redirect_uri_sent,
        code_challenge=request.code_challenge,
        resource=request.resource,
        scopes=scopes,
        account_id=account_id,
        registration_id=reg_id,
        generation=grant.generation,
        expires_at=now + CODE_TTL_SECONDS,
    )
    await ctx.store.put_session(code_key(code), msgspec.json.encode(record), now + CODE_MEMORY_SECONDS)
    return respond(ctx, request.redirect_uri, {"code": code, "state": request.state})


def answered_at(redirect_uri: str) -> str:
    """Where the answer goes, for a person: the redirect URI's host, or its scheme (an app's own)."""
    parts = urlsplit(redirect_uri)
    return parts.netloc or f"{parts.scheme}:"


def code_key(code: str) -> str:
    """Where a code's record is kept: the hash of the code (never the code), apart from session ids."""
    return tokens.stored_hash("authorization-code\n" + code)
