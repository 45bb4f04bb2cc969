"""Claims confirmed by the operator's own login (``claim_page_url``; WorkOS's link_external_user).

The agent's ``verification_uri`` points at the operator's page with the attempt token. That page signs
the human in its own way and calls the admin API with the token in a body (never a URL, which logs
keep): ``lookup`` shows what authmd's own claim page shows, ``confirm`` is the same transition as the
human authorizing on authmd's page after a sign-in (the person found or created by email the way a
sign-in finds them), ``deny`` is "this wasn't me". The agent then completes exactly as it always does.
"""

from __future__ import annotations

import msgspec

from app import text, tokens
from app.clock import rfc3339
from app.context import Context
from app.errors import AuthError
from app.flows.claim.human import AttemptView, find_attempt
from app.flows.claim.human import confirm as confirm_attempt
from app.flows.claim.human import deny as deny_attempt
from app.flows.signin import operator_user
from app.tokens import Located

MAX_EXTERNAL_ID = 256


class AttemptToken(msgspec.Struct):
    claim_attempt_token: str


class ExternalUser(msgspec.Struct):
    email: str
    external_id: str | None = None


class ConfirmRequest(msgspec.Struct):
    claim_attempt_token: str
    user: ExternalUser


class ClaimAttemptFacts(msgspec.Struct, kw_only=True):
    """What the human must see before deciding (authmd's own claim page shows the same). The agent's
    name and platform are its own unverified words unless ``provider`` vouched for it."""

    registration_id: str
    type: str
    agent_name: str | None
    agent_platform: str | None
    provider: str | None
    registered_at: str
    source: str | None
    scopes_now: list[str]
    scopes_after: list[str]
    quota_now: int | None
    quota_after: int | None
    account_expires_at: str | None
    attempt_expires_at: str
    login_hint: str | None


class ClaimDecision(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``confirmed`` with the code the human reads back to the agent, or ``denied``."""

    id: str
    status: str
    user_code: str | None = None


def _locate(token: str) -> tuple[Located, str]:
    found = tokens.locate(token, "cvt")
    if found is None:
        raise AuthError("invalid_claim", "claim_attempt_token is not a claim attempt token")
    return found, tokens.stored_hash(found.token)


async def _attempt(ctx: Context, token: str) -> tuple[Located, str, AttemptView]:
    # Only where the operator's login is the claim page: elsewhere humans confirm on authmd's own page,
    # after the provider's sign-in, and an admin key must not be a way around it.
    if ctx.settings.claim_page_url is None:
        raise AuthError(
            "invalid_request",
            "claims on this service are confirmed on its own sign-in page, not through the admin API",
            "Set claim_page_url to let the operator's own login confirm claims.",
        )
    loc, hashed = _locate(token)
    return loc, hashed, await find_attempt(ctx, loc.account_id, loc.registration_id, hashed)


async def lookup(ctx: Context, token: str) -> ClaimAttemptFacts:
    _, _, view = await _attempt(ctx, token)
    s, reg, account, claim = ctx.settings, view.state.registration, view.state.account, view.claim
    provider = s.provider(claim.provider) if claim.provider else None
    temporary = account.kind == "temporary"
    return ClaimAttemptFacts(
        registration_id=reg.id,
        type=reg.type,
        agent_name=reg.agent_name,
        agent_platform=reg.agent_platform,
        provider=provider.display_name if provider else None,
        registered_at=rfc3339(reg.created_at),
        source=reg.source,
        scopes_now=[] if reg.pending else list(reg.scopes),
        scopes_after=list(claim.scopes_after),
        quota_now=account.quota_notes if temporary else None,
        quota_after=s.claimed_quota_notes if temporary else None,
        account_expires_at=None if account.expires_at is None else rfc3339(account.expires_at),
        attempt_expires_at=rfc3339(view.attempt.expires_at),
        login_hint=view.attempt.login_hint,
    )


async def confirm(ctx: Context, token: str, user: ExternalUser) -> ClaimDecision:
    loc, hashed, view = await _attempt(ctx, token)
    email = text.email(user.email, "invalid_request", "user.email")
    external_id = user.external_id
    if external_id is not None and not (0 < len(external_id) <= MAX_EXTERNAL_ID and external_id.isprintable()):
        raise AuthError("invalid_request", f"user.external_id must be 1 to {MAX_EXTERNAL_ID} printable characters")
    # Before anyone is created: an attempt the agent bound to one person is confirmed by that person only.
    if view.attempt.login_hint is not None and view.attempt.login_hint != email:
        raise AuthError(
            "invalid_login_hint",
            "this claim attempt is meant for another person (its login_hint is not user.email)",
            "Sign the human in as the person the agent named, or have the agent start a claim for this one.",
        )
    person = await operator_user(ctx, email, external_id)
    code = await confirm_attempt(ctx, loc.account_id, loc.registration_id, hashed, person)
    return ClaimDecision(id=loc.registration_id, status="confirmed", user_code=code)


async def deny(ctx: Context, token: str, operator: str) -> ClaimDecision:
    loc, hashed, _ = await _attempt(ctx, token)
    await deny_attempt(ctx, loc.account_id, loc.registration_id, hashed, None, operator=operator)
    return ClaimDecision(id=loc.registration_id, status="denied")
