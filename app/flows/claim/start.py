"""The agent starts a claim attempt, and asks how far the human got (spec/protocol.md § Claim, step 1).

Starting adds one live attempt to the claim (the claim itself is made at the first one, for an anonymous
account); the attempt's link is given out once and only its hash is kept. Both are rate-limited per
registration.
"""

from __future__ import annotations

from typing import Any, Literal

from app.context import Context
from app.flows.claim.ceremony import (
    attempt_block,
    check_login_hint,
    claimable,
    load,
    locked,
    new_attempt,
    new_claim,
    require_method,
    transition,
    verify_claim_token,
    with_attempt,
)
from app.flows.limits import enforce
from app.store.port import AccessState, Claim, WindowHit
from app.wire import ClaimAttemptStarted, ClaimStatus

StatusName = Literal["pending", "confirmed", "claimed", "expired", "revoked", "denied"]

MAX_STARTS_PER_WINDOW = 20
MAX_STATUS_PER_WINDOW = 600


async def start_attempt(ctx: Context, token: Any, login_hint: Any) -> ClaimAttemptStarted:
    """``POST {claim_endpoint}`` ``{"type":"service_auth","claim_token","login_hint"}``: one more live
    attempt (the others stay live, up to ``claim_max_live_attempts``)."""
    require_method(ctx, "service_auth")
    loc = verify_claim_token(ctx, token, malformed="invalid_claim_token")
    hint = check_login_hint(ctx, login_hint)
    await _limit(ctx, f"claim:start:{loc.registration_id}", MAX_STARTS_PER_WINDOW)

    def decide(
        found: Claim | None, state: AccessState | None, now: int
    ) -> tuple[Claim, int | None, ClaimAttemptStarted]:
        if found is None and state is not None and state.account.kind == "temporary":
            claim, expected = new_claim(ctx, state), None
        else:
            claim = claimable(state, found, now)
            expected = claim.version
        attempt_token, attempt = new_attempt(claim, now, hint, "service_auth")
        updated = with_attempt(claim, attempt, now, ctx.settings.claim_max_live_attempts)
        body = ClaimAttemptStarted(
            id=loc.registration_id, type="service_auth", attempt=attempt_block(ctx, attempt_token, attempt.expires_at)
        )
        return updated, expected, body

    return await transition(ctx, loc, decide)


def status_of(claim: Claim | None, state: AccessState | None, now: float) -> StatusName:
    if claim is not None and claim.status in ("claimed", "revoked", "denied"):
        return claim.status
    if claim is not None and locked(claim):
        return "expired"
    if state is None or (claim is not None and claim.expires_at is not None and claim.expires_at <= now):
        return "expired"
    if state.registration.revoked_at is not None:
        return "revoked"
    if claim is None and state.account.kind == "persistent" and not state.registration.pending:
        return "claimed"
    if claim is not None and any(a.confirmed_by is not None and a.code_live(now) for a in claim.attempts):
        return "confirmed"
    return "pending"


async def status(ctx: Context, token: Any) -> ClaimStatus:
    """*ext* ``POST {claim_endpoint}/status`` ``{"claim_token"}``: when to ask the human for the code."""
    loc = verify_claim_token(ctx, token, malformed="invalid_claim")
    await _limit(ctx, f"claim:status:{loc.registration_id}", MAX_STATUS_PER_WINDOW)
    claim, state = await load(ctx, loc)
    return ClaimStatus(id=loc.registration_id, status=status_of(claim, state, ctx.clock.now()))


async def _limit(ctx: Context, key: str, limit: int) -> None:
    await enforce(ctx, [WindowHit(key, limit)])
