"""The human pages: the landing page, sign-in, the claim page and its two buttons, and the account page.

No secret stays in a URL: the claim-attempt token is moved into the session at the first request
that carries it (``/login`` or ``/claim``) and the browser is redirected to a clean URL, whatever
happens next (so neither the address bar nor the history ever shows it); access logs
drop query strings anyway. Every page is ``no-store`` with ``Referrer-Policy: no-referrer`` and a
strict CSP; every form carries the session's CSRF token (and SameSite=Lax keeps cross-site posts
cookieless in the first place).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import MediaType

from app import endpoints as ep
from app import observe, tokens
from app.context import Context
from app.errors import AuthError
from app.flows import account as accounts
from app.flows import claim as claims
from app.flows import session as sessions
from app.flows import signin
from app.flows.limits import enforce, source_key
from app.flows.session import HeldAttempt, Session, SessionData
from app.routes.http import ctx_of, form_body, source_of
from app.store.port import Registration, User, WindowHit
from app.web import pages

HTML = MediaType.HTML  # Litestar adds "; charset=utf-8" to text/* itself: naming it here sent it twice
NEW_SESSIONS_PER_SOURCE = 300  # per rate window: far above a person's needs, far below a flood's


def _html(
    ctx: Context,
    content: str,
    status: int = 200,
    *,
    session: Session | None = None,
    styles: Sequence[str] = (),
    form_targets: Sequence[str] = (),
) -> Response[str]:
    """A page. ``form_targets``: where its forms' answers may redirect besides us and the sign-in
    provider (CSP form-action covers the redirects that follow a form, in Chromium)."""
    form_targets = [*form_targets, *([signin_origin] if (signin_origin := _oidc_origin(ctx)) else [])]
    cookies = [_cookie(ctx, session)] if session is not None else []
    logo = ctx.settings.logo_url
    return Response(
        content=content,
        status_code=status,
        media_type=HTML,
        headers=pages.security_headers(form_targets, ep.origin(logo) if logo else None, styles),
        cookies=cookies,
    )


def _redirect(ctx: Context, location: str, *, session: Session | None = None) -> Response[str]:
    headers = {**pages.security_headers(), "Location": location}
    cookies = [_cookie(ctx, session)] if session is not None else []
    return Response(content="", status_code=303, media_type=HTML, headers=headers, cookies=cookies)


def _brand(ctx: Context) -> pages.Brand:
    return pages.Brand(ctx.settings.service_name, ctx.settings.logo_url)


def _oidc_origin(ctx: Context) -> str | None:
    issuer = ctx.settings.oidc_issuer
    return ep.origin(issuer) if issuer else None


def _cookie(ctx: Context, session: Session) -> Cookie:
    return Cookie(
        key=sessions.cookie_name(ctx),
        value=session.cookie,
        path="/",
        httponly=True,
        secure=not ctx.settings.dev_mode,
        samesite="lax",
        max_age=ctx.settings.session_ttl_seconds,
    )


def _base(ctx: Context) -> str:
    return ctx.endpoints.base_path


def _message(ctx: Context, title: str, text: str, status: int, link: tuple[str, str] | None = None) -> Response[str]:
    return _html(ctx, pages.message(_brand(ctx), title, text, link=link), status)


def _error_page(ctx: Context, err: AuthError) -> Response[str]:
    titles = {
        "claim_expired": "This link has expired",
        "invalid_claim": "This link is no longer valid",
        "already_claimed": "Already claimed",
        "temporarily_unavailable": "Please try again",
        "rate_limit_exceeded": "Too many requests",
        "claim_revoked": "This request was revoked",
        "claim_denied": "This request was denied",
    }
    status = 503 if err.status >= 500 else 400 if err.status < 400 else err.status
    if err.limit is not None:
        observe.refused(ctx.tally, err.limit, ctx.clock.now(), code=err.code)
    response = _message(ctx, titles.get(err.code, "Something went wrong"), err.description, status)
    if "Retry-After" in err.headers:
        response.headers["Retry-After"] = err.headers["Retry-After"]
    return response


async def _session(request: Request[Any, Any, Any], ctx: Context) -> Session | None:
    return await sessions.load(ctx, request.cookies.get(sessions.cookie_name(ctx)))


async def _session_or_new(request: Request[Any, Any, Any], ctx: Context) -> Session:
    """The browser's session, or a new one: new sessions are stored, so they are rate-limited per source."""
    session = await _session(request, ctx)
    if session is not None:
        return session
    hit = WindowHit(f"web:src:{source_key(source_of(request, ctx))}", NEW_SESSIONS_PER_SOURCE)
    await enforce(ctx, [hit])
    return sessions.fresh()


def _hold(session: Session, token: str | None) -> Session:
    """Move a claim-attempt token out of the URL into the session (as its locator and hash)."""
    loc = tokens.locate(token or "", "cvt")
    if loc is None:
        return session
    held = HeldAttempt(
        account_id=loc.account_id, registration_id=loc.registration_id, attempt_hash=tokens.stored_hash(loc.token)
    )
    return Session(session.cookie, session.data.holding(held))


def _attempt_in(return_to: str | None) -> tuple[str | None, str | None]:
    """(claim-attempt token, the return path without it) from a ``return_to`` like ``/claim?claim_attempt_token=…``."""
    if not return_to:
        return None, return_to
    parts = urlsplit(return_to)
    if parts.path != ep.CLAIM_PAGE:
        return None, return_to
    token = parse_qs(parts.query).get("claim_attempt_token", [None])[0]
    return token, ep.CLAIM_PAGE


async def _signed_in(ctx: Context, session: Session | None) -> User | None:
    if session is None or session.data.user_id is None:
        return None
    return await accounts.person(ctx, session.data.user_id)


def _login_url(ctx: Context, return_to: str, **extra: str) -> str:
    return f"{_base(ctx)}{ep.LOGIN}?" + urlencode({"return_to": return_to, **extra})


@get(ep.LOGIN)
async def login(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    try:
        session = await _session_or_new(request, ctx)
    except AuthError as err:
        return _error_page(ctx, err)
    token, return_to = _attempt_in(request.query_params.get("return_to"))
    session = _hold(session, token)
    target = signin.safe_return_to(return_to)
    prompt = request.query_params.get("prompt")
    if session.data.user_id is not None and prompt is None and await _signed_in(ctx, session) is not None:
        await sessions.save(ctx, session)
        return _redirect(ctx, _base(ctx) + target, session=session)
    if token is not None:
        # The token is in the session now: the page that follows (the development form, an error) must
        # not sit at a URL that carries it, in the address bar or the history.
        await sessions.save(ctx, session)
        return _redirect(ctx, _login_url(ctx, target, **({"prompt": prompt} if prompt else {})), session=session)
    if ctx.settings.oidc_issuer is not None:
        try:
            url, session = await signin.begin(ctx, session, target, prompt="login" if prompt == "login" else None)
        except AuthError as err:
            return _error_page(ctx, err)
        await sessions.save(ctx, session)
        return _redirect(ctx, url, session=session)
    if not ctx.settings.dev_mode:
        return _message(ctx, "Sign-in is not available", "This service has no sign-in configured.", 404)
    await sessions.save(ctx, session)
    page = pages.dev_sign_in(_base(ctx), _brand(ctx), session.data.csrf, target)
    return _html(ctx, page, session=session)


async def _form(request: Request[Any, Any, Any], ctx: Context) -> tuple[Session | None, dict[str, str]]:
    """The session and the form fields of a POST, or a refusal when the CSRF token does not match."""
    session = await _session(request, ctx)
    fields = {k: v[0] for k, v in (await form_body(request)).items()}
    if not sessions.csrf_ok(session, fields.get("csrf")):
        raise AuthError("invalid_request", "this form has expired or did not come from this site; reload the page")
    return session, fields


@post(ep.DEV_LOGIN, status_code=303)
async def dev_login(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    try:
        session, fields = await _form(request, ctx)
        assert session is not None
        user = await signin.dev_sign_in(ctx, fields.get("email", ""))
    except AuthError as err:
        return _error_page(ctx, err)
    return await _signed_in_redirect(ctx, session, user, fields.get("return_to"))


async def _signed_in_redirect(ctx: Context, session: Session, user: User, return_to: str | None) -> Response[str]:
    data = msgspec.structs.replace(session.data, user_id=user.id, signed_in_at=int(ctx.clock.now()), login=None)
    rotated = await sessions.rotate(ctx, session, data)
    return _redirect(ctx, _base(ctx) + signin.safe_return_to(return_to), session=rotated)


@get(ep.OIDC_CALLBACK)
async def oidc_callback(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    session = await _session(request, ctx)
    if session is None or session.data.login is None:
        return _message(ctx, "Sign-in expired", "Start again from the link you were given.", 400)
    login_state = session.data.login
    # The sign-in state is spent whatever happens next: a replayed response finds none.
    spent = Session(session.cookie, msgspec.structs.replace(session.data, login=None))
    await sessions.save(ctx, spent)
    params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
    try:
        user = await signin.finish(ctx, login_state, params)
    except AuthError as err:
        return _error_page(ctx, err)
    return await _signed_in_redirect(ctx, spent, user, login_state.return_to)


@post(ep.LOGOUT, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    try:
        session, fields = await _form(request, ctx)
    except AuthError as err:
        return _error_page(ctx, err)
    assert session is not None
    await sessions.end(ctx, session)
    if fields.get("return_to") == ep.CLAIM_PAGE and session.data.attempt is not None:
        # "Switch account": keep the claim this browser holds, sign in again with a fresh prompt.
        switched = sessions.fresh()
        switched = Session(switched.cookie, SessionData(csrf=switched.data.csrf, attempts=session.data.attempts))
        await sessions.save(ctx, switched)
        return _redirect(ctx, _login_url(ctx, ep.CLAIM_PAGE, prompt="login"), session=switched)
    return _message(ctx, "Signed out", "You are signed out of this service.", 200)


@get(ep.CLAIM_PAGE)
async def claim_page(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    try:
        session = await _session_or_new(request, ctx)
    except AuthError as err:
        return _error_page(ctx, err)
    token = request.query_params.get("claim_attempt_token")
    if token is not None:
        # The secret leaves the URL at once: into the session, then a redirect to the clean page.
        session = _hold(session, token)
        await sessions.save(ctx, session)
        return _redirect(ctx, _base(ctx) + ep.CLAIM_PAGE, session=session)
    held = session.data.attempt
    if held is None:
        return _message(ctx, "No claim in progress", "Open the link the agent showed you.", 400)
    user = await _signed_in(ctx, session)
    if user is None:
        return _redirect(ctx, _login_url(ctx, ep.CLAIM_PAGE))
    try:
        view = await claims.find_attempt(ctx, held.account_id, held.registration_id, held.attempt_hash)
    except AuthError as err:
        return _error_page(ctx, err)
    base, name, csrf = _base(ctx), _brand(ctx), session.data.csrf
    if claims.wrong_account(view.attempt, user):
        return _html(ctx, pages.wrong_account(base, name, user.email, csrf, view.attempt.login_hint or ""), 403)
    details = await _details(ctx, view, user)
    return _html(ctx, pages.claim_ready(base, name, user.email, csrf, details, held.ref))


async def _details(ctx: Context, view: claims.AttemptView, user: User) -> pages.ClaimDetails:
    s, reg, account, claim = ctx.settings, view.state.registration, view.state.account, view.claim
    provider = s.provider(claim.provider) if claim.provider else None
    temporary = account.kind == "temporary"
    first_link = provider is not None and not await accounts.has_provider_link(ctx, user)
    return pages.ClaimDetails(
        registration_id=reg.id,
        kind=reg.type,
        agent_name=reg.agent_name,
        agent_platform=reg.agent_platform,
        provider=provider.display_name if provider else None,
        created_at=pages.human_time(reg.created_at),
        source=reg.source,
        scopes_now=() if reg.pending else reg.scopes,
        scopes_after=claim.scopes_after,
        quota_now=account.quota_notes if temporary else None,
        quota_after=s.claimed_quota_notes if temporary else None,
        expires_at=pages.human_time(account.expires_at) if account.expires_at is not None else None,
        first_link=first_link,
        age=pages.duration(ctx.clock.now() - reg.created_at),
        time_left=pages.duration(account.expires_at - ctx.clock.now()) if account.expires_at is not None else None,
    )


async def _claim_action(request: Request[Any, Any, Any]) -> tuple[Context, Session, User, HeldAttempt]:
    """The signed-in human and the attempt the submitted form was rendered for (not merely the one this
    browser opened last: another tab may have opened another agent's link meanwhile)."""
    ctx = ctx_of(request)
    session, fields = await _form(request, ctx)
    user = await _signed_in(ctx, session)
    if session is None or user is None:
        raise AuthError("invalid_claim", "sign in and open the agent's link first")
    held = session.data.held(fields.get("attempt"))
    if held is None:
        raise AuthError(
            "invalid_claim",
            "this page is out of date or was opened in another browser: open the link the agent gave you again",
        )
    return ctx, session, user, held


@post(ep.CLAIM_CONFIRM, status_code=200)
async def claim_confirm(request: Request[Any, Any, Any]) -> Response[str]:
    try:
        ctx, session, user, held = await _claim_action(request)
        view = await claims.find_attempt(ctx, held.account_id, held.registration_id, held.attempt_hash)
        if claims.wrong_account(view.attempt, user):
            page = pages.wrong_account(
                _base(ctx), _brand(ctx), user.email, session.data.csrf, view.attempt.login_hint or ""
            )
            return _html(ctx, page, 403)
        code = await claims.confirm(ctx, held.account_id, held.registration_id, held.attempt_hash, user)
    except AuthError as err:
        return _error_page(ctx_of(request), err)
    minutes = claims.CODE_TTL_SECONDS // 60
    page = pages.code_shown(_base(ctx), _brand(ctx), user.email, session.data.csrf, code, minutes)
    return _html(ctx, page)


@post(ep.CLAIM_DENY, status_code=200)
async def claim_deny(request: Request[Any, Any, Any]) -> Response[str]:
    try:
        ctx, _, user, held = await _claim_action(request)
        await claims.deny(ctx, held.account_id, held.registration_id, held.attempt_hash, user)
    except AuthError as err:
        return _error_page(ctx_of(request), err)
    return _message(
        ctx,
        "Access revoked",
        "The agent's registration and everything issued to it are revoked. Nothing was linked to your account.",
        200,
    )


@get(ep.ACCOUNT)
async def account(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    session = await _session(request, ctx)
    user = await _signed_in(ctx, session)
    if session is None or user is None:
        return _redirect(ctx, _login_url(ctx, ep.ACCOUNT))
    now = ctx.clock.now()
    listed = []
    for acct, regs in await accounts.owned(ctx, user):
        grants = [_grant_row(ctx, r) for r in regs]
        if acct.id == user.account_id:
            if not grants and acct.note_count == 0:
                continue  # the person's own account, never used: nothing to explain
            title, said = "Your own account", "Yours since you first signed in: agents linked to you work here."
        else:
            age = pages.duration(now - acct.created_at)
            title, said = "An account you claimed", f"An agent created it {age} ago; you claimed it, so it is yours."
        notes = pages.plural(acct.note_count, "note")
        listed.append(pages.AccountView(acct.id, title, f"{said} It holds {notes}.", grants))
    page = pages.account_page(_base(ctx), _brand(ctx), user.email, session.data.csrf, listed)
    return _html(ctx, page)


_HOW = {"identity_assertion": "linked by an agent platform", "mcp": "an application you connected"}


def _grant_row(ctx: Context, r: Registration) -> pages.GrantRow:
    linked = r.type == "identity_assertion"
    return pages.GrantRow(
        account_id=r.account_id,
        registration_id=r.id,
        agent=r.agent_name or ("agent via provider" if linked else "unnamed agent"),
        how=_HOW.get(r.type, "claimed by you"),
        scopes=" ".join(r.scopes),
        status="revoked" if r.revoked_at is not None else "waiting for you" if r.pending else "active",
        created=f"{pages.duration(ctx.clock.now() - r.created_at)} ago ({pages.human_time(r.created_at)})",
    )


async def _owned_grant(request: Request[Any, Any, Any], ctx: Context) -> tuple[Session, User, pages.GrantRow]:
    """The signed-in human and the grant the form names, in an account they own (else a clear refusal)."""
    session, fields = await _form(request, ctx)
    user = await _signed_in(ctx, session)
    if session is None or user is None:
        raise AuthError("invalid_request", "sign in first")
    reg = await accounts.owned_grant(ctx, user, fields.get("account_id", ""), fields.get("registration_id", ""))
    return session, user, _grant_row(ctx, reg)


@post(ep.ACCOUNT_REVOKE, status_code=200)
async def account_revoke(request: Request[Any, Any, Any]) -> Response[str]:
    """Revoke, first step: the confirmation page. Nothing is revoked here."""
    ctx = ctx_of(request)
    try:
        session, user, grant = await _owned_grant(request, ctx)
    except AuthError as err:
        return _error_page(ctx, err)
    if grant.status == "revoked":
        return _redirect(ctx, _base(ctx) + ep.ACCOUNT)
    return _html(ctx, pages.revoke_confirm(_base(ctx), _brand(ctx), user.email, session.data.csrf, grant))


@post(ep.ACCOUNT_REVOKE_CONFIRM, status_code=303)
async def account_revoke_confirm(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    try:
        _, user, grant = await _owned_grant(request, ctx)
        await accounts.revoke(ctx, user, grant.account_id, grant.registration_id)
    except AuthError as err:
        return _error_page(ctx, err)
    return _redirect(ctx, _base(ctx) + ep.ACCOUNT)


@get("/")
async def landing(request: Request[Any, Any, Any]) -> Response[str]:
    ctx = ctx_of(request)
    base = _base(ctx)
    return _html(ctx, pages.landing(_brand(ctx), ctx.endpoints.url(ep.AUTH_MD), base + ep.ACCOUNT))


HANDLERS = [
    landing,
    login,
    dev_login,
    oidc_callback,
    logout,
    claim_page,
    claim_confirm,
    claim_deny,
    account,
    account_revoke,
    account_revoke_confirm,
]
