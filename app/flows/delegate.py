"""Provider-attested start: an agent platform vouches for its user with an ID-JAG.

`POST {identity_endpoint}` `{"type":"identity_assertion", …}` and the JWT-bearer grant at the token
endpoint both resolve a verified ID-JAG to a delegation — the provider subject ``(iss, sub)`` acting
for a user's account through one registration, whose id is stable per ``(iss, sub, aud)``:

- a known, live delegation → that registration (a clean match);
- no delegation, and no user with the verified email → a just-in-time user with a persistent account;
- no delegation, but a user already has that verified email → the account-linking gate: a pending
  delegation bound to that user and a claim block for a human to confirm (spec/protocol.md, 401
  ``interaction_required``). Never a silent link: whoever controls a provider account with someone's
  email must not walk into that person's account.
"""

from __future__ import annotations

from typing import Any

import msgspec

from app import events as ev
from app import observe, tokens
from app.clock import rfc3339
from app.context import Context
from app.errors import AuthError
from app.flows import claim as claims
from app.flows.idjag import IdJag, verify_id_jag
from app.flows.issue import identity_assertion
from app.flows.register import new_person
from app.protocol import URN_ID_JAG
from app.store.port import AccessState, Claim, Delegation, Registration, User
from app.wire import Identity, IdentityAssertionRegistration, IdentityRegistered


def registration_id_for(ctx: Context, issuer: str, subject: str) -> str:
    """Stable per (iss, sub, aud): the same agent subject always lands on the same registration."""
    return tokens.registration_id_for(ctx.keys.derive("registration-id"), issuer, subject, str(ctx.settings.issuer))


class Linked(msgspec.Struct, frozen=True):
    state: AccessState


async def resolve(ctx: Context, jag: IdJag, *, agent: str) -> Linked:
    """The live grant for this ID-JAG's subject, creating a just-in-time user if there is none yet.

    Raises the 401 ``interaction_required`` error of the account-linking gate (``agent`` says where
    the claim block goes: only the identity endpoint can carry one)."""
    now = ctx.clock.now()
    issuer, subject = jag.provider.issuer, jag.subject

    async def step() -> Linked | claims.Lost:
        delegation = await ctx.store.get_delegation(issuer, subject)
        if delegation is not None and delegation.status == "active":
            state = await ctx.store.access_state(delegation.account_id, delegation.registration_id, None, now)
            if state is not None and state.registration.revoked_at is None and not state.registration.pending:
                return Linked(state)
        user = await ctx.store.find_user_by_email(jag.identifier)
        if user is None and delegation is None:
            created = await _create_user(ctx, jag)
            return claims.LOST if created is None else Linked(created)
        if user is None:
            raise AuthError("invalid_grant", "this provider subject's account no longer exists")
        raise await _link_required(ctx, jag, user, delegation, agent=agent)

    # A second pass only after losing a just-in-time race.
    return await claims.settle(step, rounds=2, give_up=_creating)


def _creating() -> AuthError:
    return AuthError(
        "temporarily_unavailable", "the account is being created by a concurrent request", headers={"Retry-After": "1"}
    )


def _records(
    ctx: Context, jag: IdJag, user_id: str, account_id: str, status: str
) -> tuple[Registration, Delegation, list[ev.Event]]:
    """The stable registration, the delegation and the events of their creation for ``jag``'s subject
    (an active one is issued its identity assertion at once)."""
    now = int(ctx.clock.now())
    registration = Registration(
        id=registration_id_for(ctx, jag.provider.issuer, jag.subject),
        type="identity_assertion",
        account_id=account_id,
        scopes=jag.scopes,
        created_at=now,
        expires_at=None,
        pending=status == "pending",
    )
    delegation = Delegation(
        issuer=jag.provider.issuer,
        subject=jag.subject,
        user_id=user_id,
        account_id=account_id,
        registration_id=registration.id,
        status="pending" if status == "pending" else "active",
        created_at=now,
    )
    at = ctx.clock.now()
    events: list[ev.Event] = [
        ev.new(
            ev.RegistrationCreated,
            at,
            account_id,
            registration.id,
            method="identity_assertion",
            scopes=registration.scopes,
            pending=registration.pending,
            provider=jag.provider.issuer,
        )
    ]
    if not registration.pending:
        events.append(ev.new(ev.CredentialIssued, at, account_id, registration.id, kind="registration", generation=0))
    return registration, delegation, events


async def _create_user(ctx: Context, jag: IdJag) -> AccessState | None:
    user, account = new_person(ctx, jag.identifier)
    registration, delegation, events = _records(ctx, jag, user.id, account.id, "active")
    if not await ctx.store.create_user(user, account, registration, delegation, events):
        return None
    observe.emitted(ctx.tally, events)
    return AccessState(registration=registration, account=account, token_revoked=False)


async def _link_required(ctx: Context, jag: IdJag, user: User, current: Delegation | None, *, agent: str) -> AuthError:
    if agent != "identity" or not ctx.settings.claims_offered:
        return AuthError(
            "invalid_grant",
            "a human must first link this provider subject to the existing account with the same email",
            "Register with this ID-JAG at the identity endpoint to get the claim link for the human."
            if ctx.settings.claims_offered
            else "This service offers no human sign-in, so the link cannot be confirmed.",
        )
    s, now = ctx.settings, int(ctx.clock.now())
    registration, delegation, events = _records(ctx, jag, user.id, user.account_id, "pending")
    pending = Claim(
        account_id=user.account_id,
        registration_id=registration.id,
        expires_at=now + s.anonymous_ttl_seconds,
        scopes_after=jag.scopes,
        provider=jag.provider.issuer,
        subject=jag.subject,
    )
    # The previous pending claim of this subject, if any, is replaced: its link dies (a new version).
    old = await ctx.store.get_claim(user.account_id, registration.id, now)
    if old is not None and old.status == "pending":
        pending = msgspec.structs.replace(pending, version=old.version, failures=old.failures)
    # Each step-up replaces the pending link's attempt: the previous link dies.
    attempt_token, attempt = claims.new_attempt(pending, now, user.email, None)
    claim = msgspec.structs.replace(pending, version=pending.version + 1, attempts=(attempt,))
    # A delegation whose grant was revoked goes back through the gate: a human confirms again.
    replace = current is not None and current.status == "active"
    events += claims.claim_events(old if old is not None and old.status == "pending" else None, claim, now)
    if not await ctx.store.save_pending_link(delegation, registration, claim, events, replace_active=replace):
        # An active delegation appeared meanwhile (a human confirmed): the agent simply retries.
        return AuthError("temporarily_unavailable", "the link is being confirmed; retry", headers={"Retry-After": "1"})
    observe.emitted(ctx.tally, events)
    body: dict[str, Any] = {
        "id": registration.id,
        "type": "identity_assertion",
        "scopes": {"post_claim": list(jag.scopes)},
        "claim": claims.claim_block(ctx, claim, (attempt_token, attempt)),
    }
    return AuthError(
        "interaction_required",
        "an account with this verified email exists: a human must confirm the link",
        "Show the human claim.attempt.verification_uri (a secret), then complete the claim with the code.",
        extra=body,
    )


async def register_identity_assertion(ctx: Context, req: IdentityAssertionRegistration) -> IdentityRegistered:
    if not ctx.settings.providers:
        raise AuthError("invalid_request", "this service trusts no agent identity provider")
    if req.assertion_type != URN_ID_JAG:
        raise AuthError("invalid_request", f"assertion_type must be {URN_ID_JAG}")
    jag = await verify_id_jag(ctx, req.assertion)
    state = (await resolve(ctx, jag, agent="identity")).state
    registration = state.registration
    expires_at = int(ctx.clock.now()) + ctx.settings.identity_assertion_ttl_seconds
    assertion = identity_assertion(ctx, registration, state.account.id, expires_at)
    return IdentityRegistered(
        id=registration.id,
        type="identity_assertion",
        identity=Identity(assertion=assertion, expires_at=rfc3339(expires_at)),
        scopes=list(registration.scopes),
    )
