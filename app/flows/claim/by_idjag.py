"""*ext* A claim by ID-JAG (``POST {claim_endpoint}`` ``{"type":"identity_assertion", …}``): the agent's
platform now vouches for its user. A provider subject already linked to a person claims at once (the
claim lands as a completion does); otherwise the person with the verified email signs in and authorizes
an attempt, exactly as for ``service_auth``.
"""

from __future__ import annotations

from typing import Any

from app import observe
from app.context import Context
from app.errors import AuthError
from app.flows.claim import ceremony as claims
from app.flows.claim.complete import land
from app.flows.idjag import verify_id_jag
from app.protocol import URN_ID_JAG
from app.wire import ClaimCompleted


async def claim_with_id_jag(ctx: Context, token: Any, assertion_type: Any, assertion: Any) -> ClaimCompleted:
    """*ext* ``POST {claim_endpoint}`` ``{"type":"identity_assertion","claim_token","assertion"}``: an agent
    whose platform now vouches for its user claims its anonymous account. A provider subject already
    linked to a person (a clean match) claims at once; otherwise the person with the verified email
    must sign in and authorize, exactly as for ``service_auth`` (401 ``interaction_required``)."""
    claims.require_method(ctx, "identity_assertion")
    loc = claims.verify_claim_token(ctx, token, malformed="invalid_claim_token")
    if assertion_type != URN_ID_JAG or not isinstance(assertion, str):
        raise AuthError("invalid_request", f"assertion_type must be {URN_ID_JAG}, with the ID-JAG in assertion")
    jag = await verify_id_jag(ctx, assertion)
    now = int(ctx.clock.now())

    async def step() -> ClaimCompleted | claims.Lost:
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
            attempt_token, attempt = claims.new_attempt(claim, now, jag.identifier, "identity_assertion")
            updated = claims.with_attempt(claim, attempt, now, ctx.settings.claim_max_live_attempts)
            started = claims.claim_events(found, updated, now)
            if not await ctx.store.save_claim(updated, expected, started):
                return claims.LOST
            observe.emitted(ctx.tally, started)
            raise AuthError(
                "interaction_required",
                "this provider subject is not linked to a person here yet: they must sign in and authorize",
                "Show the human claim.attempt.verification_uri (a secret), then complete the claim with the code.",
                extra={
                    "id": loc.registration_id,
                    "type": "identity_assertion",
                    "scopes": {"post_claim": list(claim.scopes_after)},
                    "claim": claims.claim_block(ctx, updated, (attempt_token, attempt)),
                },
            )
        if expected is None and not await ctx.store.save_claim(claim, None, []):
            return claims.LOST
        return await land(ctx, claim, state, user, now) or claims.LOST

    return await claims.settle(step)
