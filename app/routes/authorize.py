"""The authorization endpoint and its consent page (app/flows/authorize.py decides; this is HTTP).

``GET /oauth2/authorize`` checks the request and either shows an error page (an unknown client or a
redirect URI it did not register: never redirected), redirects the error to the client, or holds the
request in the browser's session and sends the browser to ``/oauth2/consent?request=…`` (signing the
human in first). The consent page's two buttons post the session's CSRF token and the request's id;
the answer is a 303 to the client's redirect URI with ``code`` (or ``error``), ``state`` and ``iss``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from litestar import Request, Response, get, post

from app import endpoints as ep
from app.context import Context
from app.errors import AuthError
from app.flows import authorize as authz
from app.flows import session as sessions
from app.flows.limits import source_key
from app.flows.session import PendingAuthorization, Session
from app.routes.http import ctx_of, source_of
from app.routes.web import (
    _base,
    _brand,
    _error_page,
    _form,
    _html,
    _login_url,
    _redirect,
    _session,
    _session_or_new,
    _signed_in,
)
from app.web import pages


def _query(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    params = request.query_params
    return {key: params.getall(key) for key in params}


def _to_client(location: str) -> Response[str]:
    """The answer to the client: a redirect to its redirect URI (which carries no secret of ours)."""
    return Response(
        content="",
        status_code=303,
        headers={"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _consent_url(ctx: Context, request_id: str) -> str:
    return f"{ep.CONSENT}?" + urlencode({"request": request_id})


@get(ep.AUTHORIZE)
async def authorization_endpoint(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    query = _query(request)
    try:
        checked = await authz.check(ctx, query, source_of(request, ctx))
        if isinstance(checked, authz.Redirect):
            return _to_client(checked.location)
        session = await _session_or_new(request, ctx)
    except AuthError as err:
        return _error_page(ctx, err)
    session = Session(session.cookie, session.data.with_authorization(checked))
    await sessions.save(ctx, session)
    target = _consent_url(ctx, checked.id)
    if "login" in (query.get("prompt") or [""])[0].split():
        # OIDC Core §3.1.2.1 prompt=login: sign in again even with a live session.
        return _redirect(ctx, _login_url(ctx, target, prompt="login"), session=session)
    return _redirect(ctx, _base(ctx) + target, session=session)


def _origin_of(redirect_uri: str) -> str:
    """The CSP source that admits a redirect to ``redirect_uri``: its origin, or its scheme."""
    parts = urlsplit(redirect_uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"


async def _pending(ctx: Context, session: Session | None, request_id: str | None) -> PendingAuthorization:
    held = session.data.pending(request_id, ctx.clock.now()) if session is not None else None
    if held is None:
        raise AuthError(
            "invalid_request",
            "this authorization request has expired or was opened in another browser",
            "Go back to the application and connect again.",
        )
    return held


@get(ep.CONSENT)
async def consent_page(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    session = await _session(request, ctx)
    request_id = request.query_params.get("request")
    try:
        held = await _pending(ctx, session, request_id)
    except AuthError as err:
        return _error_page(ctx, err)
    assert session is not None
    user = await _signed_in(ctx, session)
    if user is None:
        return _redirect(ctx, _login_url(ctx, _consent_url(ctx, held.id)))
    grant = await ctx.store.get_registration(
        user.account_id, authz.grant_id(ctx, user.account_id, held.client_id), ctx.clock.now()
    )
    view = pages.ConsentView(
        request_id=held.id,
        client_name=held.client_name,
        client_id=held.client_id,
        client_kind=held.client_kind,
        redirect_to=authz.answered_at(held.redirect_uri),
        local_only=held.local_only,
        scopes=held.scopes,
        resource=held.resource,
        refresh=held.refresh or authz.kept_refresh(grant),
        replaces=grant is not None and grant.revoked_at is None,
        kept=authz.kept_scopes(grant),
    )
    page = pages.consent(_base(ctx), _brand(ctx), user.email, session.data.csrf, view)
    return _html(ctx, page, form_targets=[_origin_of(held.redirect_uri)])


@post(ep.CONSENT, status_code=303)
async def consent_decision(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    try:
        session, fields = await _form(request, ctx)
        assert session is not None
        user = await _signed_in(ctx, session)
        if user is None:
            raise AuthError("invalid_request", "sign in first", "Go back to the application and connect again.")
        held = await _pending(ctx, session, fields.get("request"))
        decision = fields.get("decision")
        if decision not in ("approve", "deny"):
            raise AuthError("invalid_request", "the form names no decision")
        # The request is spent whatever is decided: a second click finds nothing.
        spent = Session(session.cookie, session.data.with_authorization(None, drop=held.id))
        await sessions.save(ctx, spent)
        if decision == "deny":
            return _to_client(authz.denied(ctx, held).location)
        answer = await authz.approve(ctx, held, user, source_key(source_of(request, ctx)))
    except AuthError as err:
        return _error_page(ctx, err)
    return _to_client(answer.location)


HANDLERS = [authorization_endpoint, consent_page, consent_decision]
