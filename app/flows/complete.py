"""``POST {claim_endpoint}/complete`` ``{"claim_token","user_code"}``: the agent reads back the code the
human saw, and the claim lands (PROTOCOL.md § Claim, step 3).

On success, in one store step: the registration is bound to the human, a temporary account becomes
persistent with the claimed quotas, post-claim scopes apply, a pending provider delegation becomes
active, and the grant's generation moves on — so the pre-claim assertion and every access token
derived from it die at once. Of two racing completions exactly one wins (compare-and-set).
"""

from __future__ import annotations

from typing import Any

import msgspec

from app.context import Context
from app.errors import AuthError
from app.flows import claim as claims
from app.flows.idjag import URN_ID_JAG, verify_id_jag
from app.flows.refresh import identity_with_refresh, new_family
from app.store.port import AccessState, AuditEvent, Claim, Delegation, User


async def complete(ctx: Context, token: Any, user_code: Any) -> dict[str, Any]:
    loc = claims.verify_claim_token(ctx, token, malformed="invalid_claim")
    given = user_code.strip() if isinstance(user_code, str) else ""  # anything malformed is a wrong code
    for _ in range(claims.CAS_ROUNDS):
        now = int(ctx.clock.now())
        found, state = await claims.load(ctx, loc)
        claim = _code_shown(claims.claimable(state, found, now), now)
        assert state is not None and claim.attempt_id is not None
        # Reserve-and-compare in one store step: the budget is charged before a wrong code is answered.
        digests = {claim.attempt_id: claims.code_hash(ctx, claim.attempt_id, given)}
        check = await ctx.store.check_code(loc.account_id, loc.registration_id, digests, now, claims.BUDGET)
        if not check.compared or check.claim is None:
            continue  # the claim moved between the read and the check: decide again on what is there now
        if not check.matched:
            raise _wrong_code(check.claim)
        assert check.claim.confirmed_by is not None
        user = await ctx.store.get_user(check.claim.confirmed_by)
        if user is None:
            raise AuthError("invalid_claim", "the person who authorized this claim no longer exists")
        landed = await _land(ctx, check.claim, state, user, now)
        if landed is not None:
            return landed
    raise claims.contended()


def _code_shown(claim: Claim, now: int) -> Claim:
    """The claim if its attempt shows a live code; the PROTOCOL.md error for the step it is at otherwise."""
    if claim.attempt_id is None:
        raise AuthError("invalid_claim", "no claim attempt is open; start one at the claim endpoint")
    if claim.confirmed_by is None or claim.code_hash is None or claim.code_expires_at is None:
        expired = claim.attempt_expires_at is not None and claim.attempt_expires_at <= now
        raise AuthError(
            "claim_not_confirmed",
            "the human has not authorized this claim yet",
            "Start a new attempt: this one expired." if expired else "Wait for the human, then send the code.",
        )
    if claim.code_expires_at <= now:
        raise AuthError("user_code_expired", "the code has expired", "Start a new attempt for a new code.")
    return claim


def _wrong_code(claim: Claim) -> AuthError:
    """The answer to a charged wrong code, from the claim as the charge left it."""
    if claims.locked(claim):
        return AuthError(
            "invalid_user_code",
            f"wrong code; this claim is now locked after {claims.MAX_CLAIM_FAILURES} wrong codes",
            "Nobody can claim this account any more; it stays usable until it expires.",
        )
    if claim.attempt_id is None:
        return AuthError("invalid_user_code", "wrong code; this attempt has ended", "Start a new attempt.")
    left = min(claims.MAX_ATTEMPT_FAILURES - claim.attempt_failures, claims.MAX_CLAIM_FAILURES - claim.failures)
    return AuthError(
        "invalid_user_code", f"wrong code ({left} tries left on this attempt)", "Ask the human to read the code again."
    )


async def _land(ctx: Context, claim: Claim, state: AccessState, user: User, now: int) -> dict[str, Any] | None:
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
        attempt_hash=None,
        code_hash=None,
        claimed_by=user.id,
        claimed_at=now,
    )
    event = AuditEvent(
        at=ctx.clock.now(),
        type="account.claimed" if delegation is None else "delegation.confirmed",
        account_id=account.id,
        registration_id=reg.id,
        data={"user": user.id, "scopes": list(registration.scopes), "provider": claim.provider},
    )
    if not await ctx.store.complete_claim(done, claim.version, account, registration, delegation, event):
        return None
    return {"id": reg.id, "status": "claimed", "identity": identity_with_refresh(ctx, registration, 0)}


async def claim_with_id_jag(ctx: Context, token: Any, assertion_type: Any, assertion: Any) -> dict[str, Any]:
    """*ext* ``POST {claim_endpoint}`` ``{"type":"identity_assertion","claim_token","assertion"}``: an agent
    whose platform now vouches for its user claims its anonymous account. A provider subject already
    linked to a person (a clean match) claims at once; otherwise the person with the verified email
    must sign in and authorize, exactly as for ``service_auth`` (401 ``interaction_required``)."""
    claims.require_claims_offered(ctx)
    loc = claims.verify_claim_token(ctx, token, malformed="invalid_claim_token")
    if assertion_type != URN_ID_JAG or not isinstance(assertion, str):
        raise AuthError("invalid_request", f"assertion_type must be {URN_ID_JAG}, with the ID-JAG in assertion")
    jag = await verify_id_jag(ctx, assertion)
    now = int(ctx.clock.now())
    for _ in range(claims.CAS_ROUNDS):
        found, state = await claims.load(ctx, loc)
        if found is None and state is not None and state.account.kind == "temporary":
            claim, expected = claims.new_claim(ctx, state), None
        else:
            claim = claims.claimable(state, found, now)
            expected = claim.version
        assert state is not None
        delegation = await ctx.store.get_delegation(jag.provider.issuer, jag.subject)
        user = await ctx.store.get_user(delegation.user_id) if delegation and delegation.status == "active" else None
        if user is None:
            updated, attempt_token = claims.with_new_attempt(claim, now, jag.identifier)
            if not await ctx.store.save_claim(updated, expected):
                continue
            raise AuthError(
                "interaction_required",
                "this provider subject is not linked to a person here yet: they must sign in and authorize",
                "Show the human claim.attempt.verification_uri (a secret), then complete the claim with the code.",
                extra={
                    "id": loc.registration_id,
                    "type": "identity_assertion",
                    "scopes": {"post_claim": list(claim.scopes_after)},
                    "claim": claims.claim_block(ctx, updated, attempt_token),
                },
            )
        if expected is None:
            if not await ctx.store.save_claim(claim, None):
                continue
            expected = claim.version
        landed = await _land(ctx, claim, state, user, now)
        if landed is not None:
            return landed
    raise claims.contended()
