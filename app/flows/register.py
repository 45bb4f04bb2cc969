"""POST {identity_endpoint}: registration, discriminated on ``type`` (spec/protocol.md § Registration).

Anonymous registration creates a *temporary account* (hard lifetime, quotas, pre-claim scopes) and a
registration (the grant), returns a service-signed identity assertion and a claim token. The layered
controls run in this order: rate limits (429) → proof of work when policy asks → create.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from app import events as ev
from app import observe, text
from app.clock import rfc3339
from app.context import Context
from app.endpoints import CLAIM
from app.errors import AuthError
from app.flows import challenge
from app.flows import claim as claims
from app.flows.issue import identity_assertion
from app.flows.limits import rate_limited, refuse_if_over, source_key
from app.store.port import AccessState, Account, Admission, Registration, User, WindowHit, WindowResult
from app.tokens import new_id
from app.wire import (
    AccountView,
    AgentInfo,
    AnonymousRegistered,
    AnonymousRegistration,
    ClaimBlock,
    ClaimScopes,
    Identity,
    PostClaimScopes,
    ProofOfWork,
    Quotas,
    ServiceAuthRegistered,
    ServiceAuthRegistration,
)

# Counts the admitted creation in the given windows and creates it in the same atomic store step, or
# creates nothing and returns the windows' results.
Create = Callable[[Sequence[WindowHit], float], Awaitable[list[WindowResult]]]


async def _admit(ctx: Context, proof: ProofOfWork | None, src: str, create: Create) -> None:
    """The layered controls, then the creation. Only what is admitted is counted in the shared per-source
    and global windows, in the store step that creates it: a request without the proof it needs
    (missing, bad, replayed, or minted at a lower price than the source's current one) is refused
    without spending them, and refusals are counted apart, in this worker's memory, with their own
    per-source limit. A refusal's place is reserved first and given back when the request turns out not
    to be one."""
    s, now = ctx.settings, ctx.clock.now()
    refusals = ctx.refusals.reserve(src, s.unproven_limit_per_source, now)
    if not refusals.allowed:
        raise rate_limited(refusals.retry_after, limit="unproven_per_source")
    try:
        await _decide(ctx, proof, src, now, create)
    except AuthError as err:
        if err.status >= 500:
            ctx.refusals.refund(src, now)
        raise
    except BaseException:  # the store did not answer: that refused nothing
        ctx.refusals.refund(src, now)
        raise
    ctx.refusals.refund(src, now)


async def _decide(ctx: Context, proof: ProofOfWork | None, src: str, now: float, create: Create) -> None:
    """Admit (count in the shared windows as the creation is stored) or raise the refusal."""
    s = ctx.settings
    src_key, all_key = f"reg:src:{src}", "reg:all"
    # What this request may be counted within: the hard caps, narrowed to what needs no proof (adaptive
    # mode without one), to nothing (always mode without one), or to the volume its proof paid for.
    src_cap, all_cap = s.register_limit_per_source, s.register_limit_global
    if proof is not None:
        # A proof is checked whenever one is sent, so a client never learns to send bad ones.
        verdict = await challenge.redeem(ctx, challenge.verify(ctx, proof))
        if verdict.flaw is not None:
            [src_hit] = await ctx.store.hit_windows(
                [WindowHit(src_key, None, increment=False)], now, s.rate_window_seconds
            )
            raise challenge.proof_refused(ctx, verdict.flaw, challenge.difficulty_for(ctx, src_hit.count + 1))
        paid = challenge.volume_paid(ctx, verdict.difficulty)
        if paid is not None and s.pow_mode != "off":
            src_cap = min(src_cap, paid)
    elif s.pow_mode == "always":
        src_cap = 0
    elif s.pow_mode == "adaptive":
        src_cap, all_cap = min(src_cap, s.pow_free_per_source), min(all_cap, s.pow_free_global)
    counted = await create([WindowHit(src_key, src_cap), WindowHit(all_key, all_cap)], now)
    if all(hit.allowed for hit in counted):
        return
    src_hit, all_hit = counted
    if src_hit.count + 1 > s.register_limit_per_source or all_hit.count + 1 > s.register_limit_global:
        # Over a hard cap: look (counting nothing) for how long until one more fits.
        hard = [
            WindowHit(src_key, s.register_limit_per_source, increment=False),
            WindowHit(all_key, s.register_limit_global, increment=False),
        ]
        refuse_if_over(await ctx.store.hit_windows(hard, now, s.rate_window_seconds), hard)
    if s.pow_mode == "off":  # refused by a hard cap that the second look found no longer full: a race
        raise rate_limited(1.0, limit="register_per_source")
    needed = challenge.difficulty_for(ctx, src_hit.count + 1)
    if proof is None:
        raise challenge.proof_required(ctx, needed)
    raise challenge.proof_refused(
        ctx, "registering from this source costs more than this challenge paid: solve this one", needed
    )


def new_person(ctx: Context, email: str) -> tuple[User, Account]:
    """A person not seen before and their own persistent account (claimed quotas, owned by them)."""
    s, now = ctx.settings, int(ctx.clock.now())
    user = User(id=new_id("usr"), email=email, account_id=new_id("acct"), created_at=now)
    account = Account(
        id=user.account_id,
        kind="persistent",
        created_at=now,
        expires_at=None,
        quota_notes=s.claimed_quota_notes,
        quota_note_bytes=s.claimed_quota_note_bytes,
        owner=user.id,
    )
    return user, account


async def _create_temporary(
    ctx: Context, kind: str, agent_info: AgentInfo | None, proof: ProofOfWork | None, source: str
) -> AccessState:
    """Admit the request, then create a temporary account with its first registration (``pending`` for
    ``service_auth``: it issues nothing until the human authorizes)."""
    agent = agent_info or AgentInfo()
    agent_name = text.agent_label(agent.name, "name")
    agent_platform = text.agent_label(agent.platform, "platform")
    src = source_key(source)
    s, now = ctx.settings, int(ctx.clock.now())
    account = Account(
        id=new_id("acct"),
        kind="temporary",
        created_at=now,
        expires_at=now + s.anonymous_ttl_seconds,
        quota_notes=s.quota_notes,
        quota_note_bytes=s.quota_note_bytes,
    )
    registration = Registration(
        id=new_id("reg"),
        type=kind,
        account_id=account.id,
        scopes=tuple(s.pre_claim_scopes),
        created_at=now,
        expires_at=account.expires_at,
        pending=kind == "service_auth",
        agent_name=agent_name,
        agent_platform=agent_platform,
        source=src,
    )
    at = ctx.clock.now()
    events: list[ev.Event] = [
        ev.new(
            ev.RegistrationCreated,
            at,
            account.id,
            registration.id,
            method=kind,
            scopes=registration.scopes,
            pending=registration.pending,
            agent_name=agent_name,
            agent_platform=agent_platform,
        )
    ]
    if not registration.pending:  # an anonymous registration gets its identity assertion at once
        events.append(
            ev.new(
                ev.CredentialIssued,
                at,
                account.id,
                registration.id,
                kind="registration",
                generation=0,
                expires_at=account.expires_at,
            )
        )

    async def create(hits: Sequence[WindowHit], at: float) -> list[WindowResult]:
        admission = Admission(tuple(hits), at, s.rate_window_seconds)
        return await ctx.store.create_registration(account, registration, events, admission)

    await _admit(ctx, proof, src, create)
    observe.emitted(ctx.tally, events)
    return AccessState(registration=registration, account=account, token_revoked=False)


async def register_anonymous(ctx: Context, req: AnonymousRegistration, source: str) -> AnonymousRegistered:
    s = ctx.settings
    if not s.anonymous_enabled:
        raise AuthError("anonymous_registration_disabled", "anonymous registration is turned off on this service")
    state = await _create_temporary(ctx, "anonymous", req.agent, req.proof_of_work, source)
    account, registration = state.account, state.registration
    assert account.expires_at is not None
    assertion = identity_assertion(ctx, registration, account.id, account.expires_at)
    return AnonymousRegistered(
        id=registration.id,
        type="anonymous",
        identity=Identity(assertion=assertion, expires_at=rfc3339(account.expires_at)),
        scopes=ClaimScopes(pre_claim=list(s.pre_claim_scopes), post_claim=list(s.post_claim_scopes)),
        claim=ClaimBlock(
            token=claims.claim_token(ctx, account.id, registration.id),
            expires_at=rfc3339(account.expires_at),
            url=ctx.endpoints.url(CLAIM),
        ),
        account=account_view(account),
    )


async def register_service_auth(ctx: Context, req: ServiceAuthRegistration, source: str) -> ServiceAuthRegistered:
    """``{"type":"service_auth","login_hint"}``: a temporary account that issues nothing until the named
    human signs in and authorizes; the response carries the claim block with its first attempt."""
    claims.require_claims_offered(ctx)
    hint = claims.check_login_hint(ctx, req.login_hint)
    if hint is None:
        raise AuthError("invalid_login_hint", "service_auth needs login_hint: the email of the human to ask")
    state = await _create_temporary(ctx, "service_auth", req.agent, req.proof_of_work, source)
    now = int(ctx.clock.now())
    first = claims.new_claim(ctx, state)
    attempt_token, attempt = claims.new_attempt(first, now, hint, "service_auth")
    claim = claims.with_attempt(first, attempt, now, ctx.settings.claim_max_live_attempts)
    started = claims.claim_events(None, claim, now)
    if not await ctx.store.save_claim(claim, None, started):
        raise AuthError("temporarily_unavailable", "the account vanished while it was created; retry")
    observe.emitted(ctx.tally, started)
    return ServiceAuthRegistered(
        id=state.registration.id,
        type="service_auth",
        scopes=PostClaimScopes(post_claim=list(ctx.settings.post_claim_scopes)),
        # The claim module builds the block (it owns the claim token's format); typed here, same bytes.
        claim=claims.claim_block(ctx, claim, (attempt_token, attempt)),
    )


def account_view(account: Account) -> AccountView:
    return AccountView(
        id=account.id,
        type=account.kind,
        expires_at=rfc3339(account.expires_at) if account.expires_at is not None else None,
        quotas=Quotas(notes=account.quota_notes, note_bytes=account.quota_note_bytes),
    )
