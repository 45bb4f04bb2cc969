"""The admin HTTP API under ``{issuer}/admin/v1`` (README § Admin API): the operator's services read
registrations, accounts and the domain events, revoke, and check agents' credentials, with an admin key
(``Authorization: Bearer amk_…``, ``[[admin_keys]]``). Every call is logged once (``authmd.admin``: key
name, method, path, status; never the key) and every change goes through the verbs with the operator
named ``admin-key:<name>``, which writes an ``operator.action`` event.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter
from litestar.types import ASGIApp, Guard, Message, Receive, Scope, Send

from app.config import AdminScope
from app.context import Context
from app.errors import AuthError
from app.flows.admin import act, credentials, keys, query, views, webhooks
from app.flows.claim import external
from app.routes.errors import challenge_header
from app.routes.http import ctx_of, json_body, json_response, source_of
from app.store.port import Account, DeliveryStatus
from app.webhooks import verbs

PATH = "/admin/v1"
REALM = "authmd-admin"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
audit_log = logging.getLogger("authmd.admin")

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="items per page")]
AccountHint = Annotated[
    str | None, QueryParameter(description="the registration's account, which skips the walk that finds it")
]


def _bearer(authorization: str | None) -> str | None:
    # RFC 6750 §2.1: the `Bearer` scheme (any case) and one token.
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def requires(scope: AdminScope) -> Guard:
    """An admin key with ``scope``. RFC 6750 §3: the challenge names the realm, and carries
    error="invalid_token" only when a key was presented; §3.1: a key without the scope is 403
    insufficient_scope, naming the scope it needs."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        ctx: Context = connection.app.state.ctx
        presented = _bearer(connection.headers.get("authorization"))
        key = await keys.identify(ctx, presented, source_of(connection, ctx))
        if key is None:
            if presented is None:
                header = challenge_header("Bearer", {"realm": REALM})
                raise AuthError(
                    "invalid_token",
                    "this request needs an admin key (Authorization: Bearer …)",
                    "Make one with `authmd keys admin-key` and add its entry to [[admin_keys]].",
                    headers={"WWW-Authenticate": header},
                )
            description = "this is not an admin key of this service"
            header = challenge_header(
                "Bearer", {"realm": REALM, "error": "invalid_token", "error_description": description}
            )
            raise AuthError(
                "invalid_token",
                description,
                "Use a key from `authmd keys admin-key` listed in [[admin_keys]] (an agent's token is not one).",
                headers={"WWW-Authenticate": header},
            )
        connection.state.admin_key = key.name
        if scope not in key.scopes:
            description = f"the admin key {key.name} lacks the scope {scope}"
            params = {"realm": REALM, "error": "insufficient_scope", "error_description": description, "scope": scope}
            header = challenge_header("Bearer", params)
            raise AuthError(
                "insufficient_scope",
                description,
                f"Use a key with {scope} in its [[admin_keys]] scopes.",
                extra={"scope": scope},
                headers={"WWW-Authenticate": header},
            )

    return guard


def _operator(request: Request[Any, Any, Any]) -> str:
    return f"admin-key:{request.state.admin_key}"


def audited(app: ASGIApp) -> ASGIApp:
    """One log line per admin call, whatever its outcome: who (the key's name, or -), what, the status."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            state = scope.get("state") or {}
            # The path only: never the query string, never a header (the key travels in one).
            audit_log.info(
                "admin key=%s %s %s -> %s", state.get("admin_key", "-"), scope.get("method"), scope["path"], status
            )

    return middleware


@get("/registrations", guards=[requires("admin:read")])
async def list_registrations(
    request: Request[Any, Any, Any],
    status: Annotated[views.RegistrationStatus | None, QueryParameter(description="active, revoked or pending")] = None,
    type_: Annotated[str | None, QueryParameter(name="type", description="registration type")] = None,
    account: Annotated[str | None, QueryParameter(description="only this account's registrations")] = None,
    cursor: Annotated[str | None, QueryParameter(description="next_cursor of the previous page")] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response[bytes]:
    """Registrations in (account, registration) id order, filtered; cursor-paginated."""
    ctx = ctx_of(request)
    data, next_cursor = await query.registrations_page(
        ctx.store, ctx.clock.now(), status=status, type_=type_, account=account, cursor=cursor, limit=limit
    )
    return json_response(views.RegistrationList(data=data, next_cursor=next_cursor), no_store=True)


@get("/registrations/{registration_id:str}", guards=[requires("admin:read")])
async def show_registration(request: Request[Any, Any, Any], account: AccountHint = None) -> Response[bytes]:
    """One registration with its claim."""
    ctx, registration_id = ctx_of(request), request.path_params["registration_id"]
    now = ctx.clock.now()
    reg = await query.registration(ctx.store, registration_id, account, now)
    claim = await ctx.store.get_claim(reg.account_id, reg.id, now)
    return json_response(views.registration_view(reg, claim, now), no_store=True)


@post("/registrations/{registration_id:str}/revoke", guards=[requires("admin:write")], status_code=200)
async def revoke_registration(request: Request[Any, Any, Any], account: AccountHint = None) -> Response[bytes]:
    """Revoke one registration: its tokens fail at their next use."""
    ctx, registration_id = ctx_of(request), request.path_params["registration_id"]
    now = ctx.clock.now()
    reg = await query.registration(ctx.store, registration_id, account, now)
    done = await act.revoke_each(ctx, [reg] if reg.revoked_at is None else [], _operator(request))
    if not done:
        raise AuthError("already_revoked", f"{registration_id} is already revoked")
    return json_response(views.revocation(done, now), no_store=True)


async def _account(request: Request[Any, Any, Any]) -> Account:
    ctx, account_id = ctx_of(request), request.path_params["account_id"]
    account = await ctx.store.get_account(account_id, ctx.clock.now())
    if account is None:
        raise AuthError("not_found", f"no live account {account_id}")
    return account


@get("/accounts/{account_id:str}", guards=[requires("admin:read")])
async def show_account(request: Request[Any, Any, Any]) -> Response[bytes]:
    """An account with its registrations."""
    ctx = ctx_of(request)
    account = await _account(request)
    return json_response(await query.account_detail(ctx.store, account, ctx.clock.now()), no_store=True)


@post("/accounts/{account_id:str}/revoke", guards=[requires("admin:write")], status_code=200)
async def revoke_account(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Revoke every live registration of an account."""
    ctx = ctx_of(request)
    now = ctx.clock.now()
    account = await _account(request)
    plan = await act.live_registrations(ctx.store, [account], now)
    done = await act.revoke_each(ctx, plan, _operator(request))
    if not done:
        raise AuthError("already_revoked", f"account {account.id} has no live registration to revoke")
    return json_response(views.revocation(done, now), no_store=True)


@post("/credentials/validate", guards=[requires("admin:read")], status_code=200)
async def validate_credential(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Whether a token an agent presented (an access token or an identity assertion) is live, and whose."""
    ctx = ctx_of(request)
    body = await json_body(request, credentials.ValidateRequest)
    return json_response(await credentials.validate(ctx, body.token), no_store=True)


@get("/events", guards=[requires("admin:read")])
async def list_events(
    request: Request[Any, Any, Any],
    after: Annotated[str, QueryParameter(description="an event id: the events after it")] = "",
    type_: Annotated[
        list[str] | None, QueryParameter(name="type", description="a type, or a family ending in .* (repeatable)")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response[bytes]:
    """The domain events in order (spec/events.md); ``next_cursor`` is the ``after`` of the next page."""
    ctx = ctx_of(request)
    found, next_cursor = await query.events_page(ctx.store, query.Filter(None, type_ or []), after, limit)
    data = [views.event_view(e) for e in found]
    return json_response(views.EventList(data=data, next_cursor=next_cursor), no_store=True)


# Claims confirmed by the operator's own login (claim_page_url): the attempt token only ever in a body.


@post("/claim-attempts/lookup", guards=[requires("admin:write")], status_code=200)
async def claim_attempt_lookup(request: Request[Any, Any, Any]) -> Response[bytes]:
    """What the human must see before deciding: the agent, the scopes now and after, the expiry."""
    body = await json_body(request, external.AttemptToken)
    return json_response(await external.lookup(ctx_of(request), body.claim_attempt_token), no_store=True)


@post("/claim-attempts/confirm", guards=[requires("admin:write")], status_code=200)
async def claim_attempt_confirm(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The human the operator's login signed in authorizes: the code to read back to the agent."""
    body = await json_body(request, external.ConfirmRequest)
    return json_response(await external.confirm(ctx_of(request), body.claim_attempt_token, body.user), no_store=True)


@post("/claim-attempts/deny", guards=[requires("admin:write")], status_code=200)
async def claim_attempt_deny(request: Request[Any, Any, Any]) -> Response[bytes]:
    """ "This wasn't me": the claim is denied and the registration revoked."""
    body = await json_body(request, external.AttemptToken)
    decided = await external.deny(ctx_of(request), body.claim_attempt_token, _operator(request))
    return json_response(decided, no_store=True)


# Webhooks (spec/webhooks.md): the endpoints' health, the delivery log, and the operator's two changes.


@get("/webhooks", guards=[requires("admin:read")])
async def list_webhooks(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The configured endpoints: enabled or since when disabled, last success and failure, waiting."""
    ctx = ctx_of(request)
    found = await webhooks.endpoints(ctx.settings, ctx.store)
    return json_response(webhooks.EndpointList(data=found), no_store=True)


@post("/webhooks/{name:str}/enable", guards=[requires("admin:write")], status_code=200)
async def enable_webhook(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Resume a disabled endpoint: what waits for it is sent now, in order."""
    ctx, name = ctx_of(request), request.path_params["name"]
    if name not in {hook.label for hook in ctx.settings.webhooks}:
        raise AuthError("not_found", f"no webhook endpoint named {name}")
    if not await verbs.enable(ctx, name, operator=_operator(request)):
        raise AuthError("invalid_request", f"the webhook endpoint {name} is not disabled")
    [view] = await webhooks.endpoints(ctx.settings, ctx.store, only=name)
    return json_response(view, no_store=True)


@get("/webhooks/deliveries", guards=[requires("admin:read")])
async def list_deliveries(
    request: Request[Any, Any, Any],
    endpoint: Annotated[str | None, QueryParameter(description="only this endpoint's deliveries")] = None,
    status: Annotated[DeliveryStatus | None, QueryParameter(description="pending, delivered or failed")] = None,
    cursor: Annotated[
        str | None, QueryParameter(description="next_cursor of the previous page", pattern=r"^[1-9][0-9]{0,17}$")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response[bytes]:
    """The delivery log, newest first: attempts, last status, latency and error; cursor-paginated."""
    ctx = ctx_of(request)
    page = await webhooks.deliveries_page(
        ctx.store, endpoint=endpoint, status=status, cursor=int(cursor or 0), limit=limit
    )
    return json_response(page, no_store=True)


@post("/webhooks/deliveries/{delivery_id:str}/retry", guards=[requires("admin:write")], status_code=200)
async def retry_delivery(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Send a failed delivery again, next in its queue, with a fresh count of attempts."""
    ctx, delivery_id = ctx_of(request), request.path_params["delivery_id"]
    retried = await verbs.retry(ctx, delivery_id, operator=_operator(request))
    delivery = await ctx.store.get_delivery(delivery_id)
    if delivery is None:
        raise AuthError("not_found", f"no delivery {delivery_id}")
    if not retried:
        raise AuthError("invalid_request", f"{delivery_id} has not failed: only a failed delivery is retried")
    return json_response(webhooks.delivery_view(delivery), no_store=True)


HANDLERS = [
    list_registrations,
    show_registration,
    revoke_registration,
    show_account,
    revoke_account,
    validate_credential,
    list_events,
    claim_attempt_lookup,
    claim_attempt_confirm,
    claim_attempt_deny,
    list_webhooks,
    enable_webhook,
    list_deliveries,
    retry_delivery,
]


def router(base_path: str) -> Router:
    return Router(path=base_path + PATH, route_handlers=HANDLERS, middleware=[audited])
