"""POST {identity_endpoint}: registration, discriminated on ``type`` (PROTOCOL.md § Registration).

Anonymous registration creates a *temporary account* (hard lifetime, quotas, pre-claim scopes) and a
registration (the grant), returns a service-signed identity assertion and a claim token. The layered
controls run in this order: rate limits (429) → proof of work when policy asks → create.
"""

from __future__ import annotations

import hashlib

from app.clock import rfc3339
from app.context import Context
from app.endpoints import CLAIM
from app.errors import AuthError
from app.flows import challenge
from app.flows.issue import TYP_IDENTITY, mint, new_id
from app.flows.limits import enforce, source_key
from app.store.port import Account, AuditEvent, Registration, WindowHit
from app.wire import (
    AccountView,
    AgentInfo,
    AnonymousRegistered,
    AnonymousRegistration,
    ClaimBlock,
    ClaimScopes,
    Identity,
    Quotas,
)

MAX_AGENT_FIELD = 128


def hash_secret_token(token: str) -> str:
    """Bearer secrets (claim tokens, …) are stored as SHA-256 and looked up by hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def _agent_field(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_AGENT_FIELD or not value.isprintable():
        raise AuthError(
            "invalid_request", f"agent.{name} must be printable text of at most {MAX_AGENT_FIELD} characters"
        )
    return value


async def register_anonymous(ctx: Context, req: AnonymousRegistration, source: str) -> AnonymousRegistered:
    s = ctx.settings
    if not s.anonymous_enabled:
        raise AuthError("anonymous_not_enabled", "anonymous registration is turned off on this service")
    agent = req.agent or AgentInfo()
    agent_name = _agent_field(agent.name, "name")
    agent_platform = _agent_field(agent.platform, "platform")

    src = source_key(source)
    src_hit, all_hit = await enforce(
        ctx,
        [WindowHit(f"reg:src:{src}", s.register_limit_per_source), WindowHit("reg:all", s.register_limit_global)],
    )
    needed = challenge.required(ctx, src_hit.count, all_hit.count)
    if req.proof_of_work is not None:
        # A proof is checked whenever one is sent, so a client never learns to send bad ones.
        await challenge.redeem(ctx, req.proof_of_work, needed or challenge.difficulty_for(ctx, src_hit.count))
    elif needed is not None:
        raise AuthError(
            "proof_of_work_required",
            "this service asks for a proof of work before it creates an account",
            extra={"challenge": challenge.challenge_body(ctx, needed)},
        )

    now = int(ctx.clock.now())
    expires_at = now + s.anonymous_ttl_seconds
    claim_token = new_id("clm", 32)
    account = Account(
        id=new_id("acct"),
        kind="temporary",
        created_at=now,
        expires_at=expires_at,
        quota_notes=s.quota_notes,
        quota_note_bytes=s.quota_note_bytes,
    )
    registration = Registration(
        id=new_id("reg"),
        type="anonymous",
        account_id=account.id,
        scopes=tuple(s.pre_claim_scopes),
        created_at=now,
        expires_at=expires_at,
        claim_token_hash=hash_secret_token(claim_token),
        claim_expires_at=expires_at,
        agent_name=agent_name,
        agent_platform=agent_platform,
    )
    event = AuditEvent(
        at=ctx.clock.now(),
        type="registration.created",
        account_id=account.id,
        registration_id=registration.id,
        data={"type": "anonymous", "source": src, "agent": {"name": agent_name, "platform": agent_platform}},
    )
    await ctx.store.create_registration(account, registration, event)
    assertion = identity_assertion(ctx, registration, account.id, expires_at)
    return AnonymousRegistered(
        id=registration.id,
        type="anonymous",
        identity=Identity(assertion=assertion, expires_at=rfc3339(expires_at)),
        scopes=ClaimScopes(pre_claim=list(s.pre_claim_scopes), post_claim=list(s.post_claim_scopes)),
        claim=ClaimBlock(token=claim_token, expires_at=rfc3339(expires_at), url=ctx.endpoints.url(CLAIM)),
        account=account_view(account),
    )


def account_view(account: Account) -> AccountView:
    return AccountView(
        id=account.id,
        type=account.kind,
        expires_at=rfc3339(account.expires_at) if account.expires_at is not None else None,
        quotas=Quotas(notes=account.quota_notes, note_bytes=account.quota_note_bytes),
    )


def identity_assertion(ctx: Context, registration: Registration, account_id: str, expires_at: int) -> str:
    """Our own assertion type: presented to our token endpoint only (RFC 7523 §3: aud = our issuer)."""
    now = int(ctx.clock.now())
    return mint(
        ctx,
        TYP_IDENTITY,
        {
            "iss": ctx.settings.issuer,
            "sub": account_id,
            "aud": ctx.settings.issuer,
            "iat": now,
            "exp": expires_at,
            "jti": new_id("ida"),
            "reg": registration.id,
            "gen": registration.generation,
            "scope": " ".join(registration.scopes),
        },
    )
