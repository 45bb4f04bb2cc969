"""``POST {claim_endpoint}/complete`` ``{"claim_token","user_code"}``: the agent reads back the code the
human saw, and the claim lands (spec/protocol.md § Claim, step 3).

On success, in one store step: the registration is bound to the human, a temporary account becomes
persistent with the claimed quotas, post-claim scopes apply, a pending provider delegation becomes
active, and the grant's generation moves on — so the pre-claim assertion and every access token
derived from it die at once. Of two racing completions exactly one wins (compare-and-set).
"""

from __future__ import annotations

from typing import Any

import msgspec

from app import events as ev
from app import observe
from app.context import Context
from app.errors import AuthError
from app.flows.claim import ceremony as claims
from app.flows.refresh import identity_with_refresh
from app.store.port import AccessState, Claim, Delegation, User
from app.tokens import new_family, normalized_code
from app.wire import ClaimCompleted


async def complete(ctx: Context, token: Any, user_code: Any) -> ClaimCompleted:
    loc = claims.verify_claim_token(ctx, token, malformed="invalid_claim")
    given = normalized_code(user_code)  # anything that is not 6 digits then is a wrong code

    async def step() -> ClaimCompleted | claims.Lost:
        now = int(ctx.clock.now())
        found, state = await claims.load(ctx, loc)
        claim = _codes_shown(ctx, claims.claimable(state, found, now, completing=True), now)
        assert state is not None
        # The agent names no attempt: the code is compared with every live code, in one store step that
        # reserves the budget first. A digest goes for every attempt read (the store looks again if the
        # claim holds one more); an attempt of a method the operator turned off matches nothing.
        offered = claims.methods_offered(ctx)
        digests = {
            a.id: claims.code_hash(ctx, a.id, given) if a.method is None or a.method in offered else ""
            for a in claim.attempts
        }
        # Written only if this guess spends a budget, which ends every attempt (and only for those).
        ended: list[ev.Event] = [
            ev.new(
                ev.ClaimAttemptExpired, now, loc.account_id, loc.registration_id, attempt_id=a.id, reason="code_budget"
            )
            for a in claim.attempts
        ]
        check = await ctx.store.check_code(loc.account_id, loc.registration_id, digests, now, claims.BUDGET, ended)
        if not check.compared or check.claim is None:
            return claims.LOST  # the claim moved between the read and the check: decide again on what is there now
        if check.matched is None:
            locked = not check.claim.attempts  # the charge spent a budget: every attempt ended with it
            if locked:
                observe.emitted(ctx.tally, ended)
            observe.wrong_code(ctx.tally, loc.account_id, loc.registration_id, now, lockout=locked)
            raise _wrong_code(check.claim)
        attempt = check.claim.attempt(check.matched)
        assert attempt is not None and attempt.confirmed_by is not None
        user = await ctx.store.get_user(attempt.confirmed_by)
        if user is None:
            raise AuthError("invalid_claim", "the person who authorized this claim no longer exists")
        return await land(ctx, check.claim, state, user, now) or claims.LOST

    return await claims.settle(step)


def _codes_shown(ctx: Context, claim: Claim, now: int) -> Claim:
    """The claim if some live attempt shows a code; the protocol's error for the step it is at otherwise."""
    live = [a for a in claim.attempts if a.live(now)]
    if not live:
        if any(a.code_expires_at is not None for a in claim.attempts):
            raise AuthError("user_code_expired", "the code has expired", "Start a new attempt for a new code.")
        if claim.attempts:
            raise AuthError(
                "claim_not_confirmed",
                "the human did not authorize before the link expired",
                "Start a new attempt: the links have expired.",
            )
        raise AuthError("invalid_claim", "no claim attempt is open; start one at the claim endpoint")
    methods = {a.method for a in live if a.method is not None}
    if methods and not methods & set(claims.methods_offered(ctx)):
        claims.require_method(ctx, sorted(methods)[0])  # every live attempt's method was turned off
    if not any(a.code_live(now) for a in live):
        if all(a.code_expires_at is not None for a in live):
            raise AuthError("user_code_expired", "the code has expired", "Start a new attempt for a new code.")
        expired = all(a.expires_at <= now for a in live if a.code_expires_at is None)
        raise AuthError(
            "claim_not_confirmed",
            "the human has not authorized this claim yet",
            "Start a new attempt: the links have expired." if expired else "Wait for the human, then send the code.",
        )
    return claim


def _wrong_code(claim: Claim) -> AuthError:
    """The answer to a charged wrong code, from the claim as the charge left it."""
    if claims.locked(claim):
        return AuthError(
            "invalid_user_code",
            f"wrong code; this claim is now locked after {claims.MAX_CLAIM_FAILURES} wrong codes",
            "Nobody can claim this account any more; it stays usable until it expires.",
        )
    if not claim.attempts:
        return AuthError(
            "invalid_user_code",
            f"wrong code; {claims.MAX_ATTEMPT_FAILURES} wrong codes ended every open attempt",
            "Start a new attempt.",
        )
    left = min(claims.MAX_ATTEMPT_FAILURES - claim.window_failures, claims.MAX_CLAIM_FAILURES - claim.failures)
    return AuthError(
        "invalid_user_code",
        f"wrong code ({left} tries left before the open attempts end)",
        "Ask the human to read the code again.",
    )


async def land(ctx: Context, claim: Claim, state: AccessState, user: User, now: int) -> ClaimCompleted | None:
    """The claim lands for ``user``, in one store step; None when a concurrent step changed the claim."""
    s, account, reg = ctx.settings, state.account, state.registration
    delegation: Delegation | None = None
    if claim.provider is not None and claim.subject is not None:
        # An ID-JAG step-up: the pending delegation of this provider subject becomes active.
        delegation = await ctx.store.get_delegation(claim.provider, claim.subject)
        if delegation is None or delegation.registration_id != reg.id or delegation.user_id != user.id:
            raise AuthError("invalid_claim", "this link was meant for another account")
        delegation = msgspec.structs.replace(delegation, status="active")
    elif account.kind == "temporary":
        account = msgspec.structs.replace(
            account,
            kind="persistent",
            expires_at=None,
            quota_notes=s.claimed_quota_notes,
            quota_note_bytes=s.claimed_quota_note_bytes,
            owner=user.id,
        )
    registration = msgspec.structs.replace(
        reg,
        scopes=claim.scopes_after or reg.scopes,
        expires_at=None,
        generation=reg.generation + 1,
        pending=False,
        refresh_family=new_family(),
        refresh_seq=0,
        refresh_rotated_at=now,
        refresh_expires_at=now + s.refresh_token_ttl_seconds,
    )
    done = msgspec.structs.replace(
        claim,
        version=claim.version + 1,
        status="claimed",
        expires_at=None,
        attempts=(),  # completion ends every other attempt
        claimed_by=user.id,
        claimed_at=now,
    )
    at = ctx.clock.now()
    events: list[ev.Event] = [
        ev.new(
            ev.ClaimCompleted,
            at,
            account.id,
            reg.id,
            user_id=user.id,
            scopes=registration.scopes,
            provider=claim.provider,
        ),
        ev.new(
            ev.CredentialIssued,
            at,
            account.id,
            reg.id,
            kind="claim",
            generation=registration.generation,
            expires_at=registration.refresh_expires_at,
        ),
    ]
    if not await ctx.store.complete_claim(done, claim.version, account, registration, delegation, events):
        return None
    observe.emitted(ctx.tally, events)
    return ClaimCompleted(id=reg.id, status="claimed", identity=identity_with_refresh(ctx, registration, 0))
