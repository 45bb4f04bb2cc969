"""The human's side of a claim: find the attempt a browser holds, confirm it (bind it to the signed-in
person and mint its code) or deny it ("this wasn't me": the claim is denied and the grant revoked).

The browser names an attempt only by the hash of its link token; a human acts on the attempt they
reviewed, and the first human to confirm an attempt owns it.
"""

from __future__ import annotations

import hmac
from typing import NamedTuple

import msgspec

from app import tokens
from app.context import Context
from app.errors import AuthError
from app.flows import grants
from app.flows.claim.ceremony import CODE_TTL_SECONDS, claimable, code_hash, load, transition
from app.store.port import AccessState, Attempt, Claim, User
from app.tokens import Located


class AttemptView(NamedTuple):
    claim: Claim
    state: AccessState
    attempt: Attempt


def attempt_of(claim: Claim | None, state: AccessState | None, hashed: str, now: float) -> AttemptView:
    """The live attempt whose link token hashes to ``hashed``, or a page-level error."""
    if claim is None or state is None:
        raise AuthError("invalid_claim", "this claim link is no longer valid")
    claim = claimable(state, claim, now)
    attempt = next((a for a in claim.attempts if hmac.compare_digest(a.link_hash, hashed)), None)
    if attempt is None:
        raise AuthError("invalid_claim", "this claim link is no longer valid: ask the agent for a new one")
    if attempt.expires_at <= now:
        raise AuthError("claim_expired", "this claim link has expired: ask the agent for a new one")
    return AttemptView(claim, state, attempt)


async def find_attempt(ctx: Context, account_id: str, registration_id: str, hashed: str) -> AttemptView:
    """The live attempt a browser holds (by the hash of its link token), or a page-level error."""
    claim, state = await load(ctx, Located(account_id, registration_id, ""))
    return attempt_of(claim, state, hashed, ctx.clock.now())


def wrong_account(attempt: Attempt, user: User) -> bool:
    return attempt.login_hint is not None and attempt.login_hint != user.email


def _replaced(claim: Claim, attempt: Attempt) -> tuple[Attempt, ...]:
    return tuple(attempt if a.id == attempt.id else a for a in claim.attempts)


async def confirm(ctx: Context, account_id: str, registration_id: str, hashed: str, user: User) -> str:
    """The human authorizes the attempt they reviewed (by its link's hash): bind it to them (the first
    human wins) and mint its code."""
    code = tokens.new_user_code()

    def decide(found: Claim | None, state: AccessState | None, now: int) -> tuple[Claim, int | None, str]:
        view = attempt_of(found, state, hashed, now)
        claim, attempt = view.claim, view.attempt
        if wrong_account(attempt, user):
            raise AuthError("invalid_login_hint", "this claim is meant for another account")
        if attempt.confirmed_by is not None and attempt.confirmed_by != user.id:
            raise AuthError("invalid_claim", "another person already authorized this claim")
        confirmed = msgspec.structs.replace(
            attempt,
            confirmed_by=user.id,
            code_hash=code_hash(ctx, attempt.id, code),
            code_expires_at=now + CODE_TTL_SECONDS,
        )
        return (
            msgspec.structs.replace(claim, version=claim.version + 1, attempts=_replaced(claim, confirmed)),
            claim.version,
            code,
        )

    return await transition(ctx, Located(account_id, registration_id, ""), decide, user.id)


async def deny(
    ctx: Context, account_id: str, registration_id: str, hashed: str, user: User | None, *, operator: str | None = None
) -> None:
    """ "This wasn't me", on the attempt the human reviewed: the claim is denied (every attempt ends) and
    the registration and everything issued to it die at once. ``operator``: the human said it on the
    operator's own page, which relayed it (no user of ours is known)."""

    def decide(found: Claim | None, state: AccessState | None, now: int) -> tuple[Claim, int | None, None]:
        claim = attempt_of(found, state, hashed, now).claim
        denied = msgspec.structs.replace(claim, version=claim.version + 1, status="denied", attempts=())
        return denied, claim.version, None

    user_id = None if user is None else user.id
    await transition(ctx, Located(account_id, registration_id, ""), decide, user_id)
    if operator is not None:
        await grants.revoke_grant(
            ctx, account_id, registration_id, by="operator", reason="claim_denied", operator=operator
        )
    else:
        await grants.revoke_grant(ctx, account_id, registration_id, by="human", reason="claim_denied", user_id=user_id)
