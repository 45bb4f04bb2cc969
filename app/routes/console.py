"""The operator console at ``/console``: thin controllers over app/flows/console.py, on the human pages'
machinery (app/routes/web.py): the same session cookie and sign-in (not signed in: to ``/login`` with the
console as ``return_to``), the same CSRF check on every POST, the same headers (``default-src 'none'``,
no script; the console's stylesheet allowed by its hash).

A signed-in person who is not an operator gets a 403 page, on every console URL and before any form is
acted on; revoking takes two POSTs (a confirmation page, then the revocation), like the account page's.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from app import endpoints as ep
from app.context import Context
from app.errors import AuthError
from app.flows import console as flows
from app.flows.admin import views
from app.flows.session import Session
from app.routes import web
from app.routes.http import ctx_of
from app.store.port import Registration, User
from app.web import console as html

STYLES = (html.CONSOLE_STYLE,)


def _page(ctx: Context, content: str, status: int = 200) -> Response[str]:
    return web._html(ctx, content, status, styles=STYLES)


class _Refused(Exception):
    """Not an operator: the response to send instead (a redirect to sign in, or a 403 page); the
    console's router answers with it (EXCEPTION_HANDLERS)."""

    def __init__(self, response: Response[str]) -> None:
        self.response = response


def _refused(request: Request[Any, Any, Any], exc: _Refused) -> Response[str]:
    return exc.response


def _here(request: Request[Any, Any, Any]) -> str:
    """The console URL asked for (path and query, without the issuer's base path): where sign-in returns."""
    base = web._base(ctx_of(request))
    path = request.url.path[len(base) :] if base and request.url.path.startswith(base) else request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


async def _operator(ctx: Context, session: Session | None, return_to: str) -> tuple[Session, User, html.Frame]:
    user = await web._signed_in(ctx, session)
    if session is None or user is None:
        raise _Refused(web._redirect(ctx, web._login_url(ctx, return_to)))
    allowed = flows.access(ctx.settings, user)
    if allowed in ("denied", "closed"):
        page = html.refused(web._brand(ctx), user.email, web._base(ctx), session.data.csrf, allowed == "closed")
        raise _Refused(web._html(ctx, page, 403))
    frame = html.Frame(web._base(ctx), web._brand(ctx), user.email, session.data.csrf, dev_open=allowed == "everyone")
    return session, user, frame


async def _viewer(request: Request[Any, Any, Any]) -> tuple[Context, html.Frame]:
    ctx = ctx_of(request)
    _, _, frame = await _operator(ctx, await web._session(request, ctx), _here(request))
    return ctx, frame


@get(ep.CONSOLE)
async def overview(request: Request[Any, Any, Any]) -> Response[str]:
    ctx, frame = await _viewer(request)
    window = flows.WINDOWS.get(request.query_params.get("window") or "hour", flows.WINDOWS["hour"])
    return _page(ctx, html.overview(frame, await flows.overview(ctx, window)))


@get(ep.CONSOLE_SEARCH)
async def search(request: Request[Any, Any, Any]) -> Response[str]:
    ctx, frame = await _viewer(request)
    q = request.query_params.get("q")
    found = await flows.search(ctx, q[:256]) if q else None
    return _page(ctx, html.search(frame, found))


@get(ep.CONSOLE_ACCOUNT)
async def account(request: Request[Any, Any, Any]) -> Response[str]:
    ctx, frame = await _viewer(request)
    try:
        shown = await flows.account_page(ctx, request.query_params.get("id") or "")
    except AuthError as err:
        return _page(ctx, html.problem(frame, "No such account", err.description), 404)
    return _page(ctx, html.account(frame, shown))


async def _acting(request: Request[Any, Any, Any]) -> tuple[Context, User, html.Frame, Registration]:
    """A console form's operator and the registration it names: the CSRF token first (a refusal changes
    nothing), then the operator, then the registration."""
    ctx = ctx_of(request)
    session, fields = await web._form(request, ctx)
    _, user, frame = await _operator(ctx, session, ep.CONSOLE)
    reg = await flows.live_registration(ctx, fields.get("account_id", ""), fields.get("registration_id", ""))
    return ctx, user, frame, reg


@post(ep.CONSOLE_REVOKE, status_code=200)
async def revoke(request: Request[Any, Any, Any]) -> Response[str]:
    """Revoke, first step: the confirmation page. Nothing is revoked here."""
    try:
        ctx, _, frame, reg = await _acting(request)
    except AuthError as err:
        return web._error_page(ctx_of(request), err)
    now = ctx.clock.now()
    view = views.registration_view(reg, await ctx.store.get_claim(reg.account_id, reg.id, now), now)
    if view.status == "revoked":
        return _page(ctx, html.revoked(frame, reg.account_id, reg.id, done=False))
    return _page(ctx, html.revoke_confirm(frame, view))


@post(ep.CONSOLE_REVOKE_CONFIRM, status_code=200)
async def revoke_confirm(request: Request[Any, Any, Any]) -> Response[str]:
    try:
        ctx, user, frame, reg = await _acting(request)
        done = await flows.revoke(ctx, reg, user)
    except AuthError as err:
        return web._error_page(ctx_of(request), err)
    return _page(ctx, html.revoked(frame, reg.account_id, reg.id, done=done))


@get(ep.CONSOLE_PROVIDERS)
async def providers(request: Request[Any, Any, Any]) -> Response[str]:
    ctx, frame = await _viewer(request)
    rows, untrusted = await flows.providers(ctx)
    return _page(ctx, html.providers(frame, rows, untrusted))


HANDLERS = [overview, search, account, revoke, revoke_confirm, providers]
EXCEPTION_HANDLERS: dict[Any, Any] = {_Refused: _refused}
