"""What every step of the claim ceremony shares: the claim's rules (``claimable``), the events of a step
(``claim_events``), and the one compare-and-set retry loop (``settle``) every writing step goes through.

A claim is one record on the account (one hash slot on Redis Cluster); a step reads it, decides the
next one and saves it only if nobody changed it meanwhile. A lost race is not an error the client sees:
``settle`` runs the step again on what won, and gives up with a 503 only after ``CAS_ROUNDS`` losses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import msgspec

from app import events as ev
from app import observe, text, tokens, wire
from app.clock import rfc3339
from app.context import Context
from app.endpoints import CLAIM
from app.errors import AuthError
from app.flows.limits import rate_limited
from app.store.port import AccessState, Attempt, Claim, CodeBudget
from app.tokens import Located, new_id

T = TypeVar("T")

ATTEMPT_TTL_SECONDS = 600
CODE_TTL_SECONDS = 600  # spec/protocol.md: codes live 10 minutes
MAX_ATTEMPT_FAILURES = 5  # wrong codes per window of live attempts: then every one of them ends
MAX_CLAIM_FAILURES = 15  # over the claim's life: a guesser cannot just start new attempts forever
BUDGET = CodeBudget(per_window=MAX_ATTEMPT_FAILURES, per_claim=MAX_CLAIM_FAILURES)
# Compare-and-set rounds before giving up: each lost round means another request changed the claim, and
# those are few (at most 5 charged codes per attempt, rate-limited attempt starts, one human).
CAS_ROUNDS = 16


def claim_token(ctx: Context, account_id: str, registration_id: str) -> str:
    return tokens.claim_token(ctx.keys.derive("claim-token"), account_id, registration_id)


def attempt_hash(token: str) -> str:
    return tokens.stored_hash(token)


def code_hash(ctx: Context, attempt_id: str, code: str) -> str:
    return tokens.code_hash(ctx.keys.derive("user-code"), attempt_id, code)


def verify_claim_token(ctx: Context, token: Any, *, malformed: str) -> Located:
    loc = tokens.verify_claim_token(ctx.keys.derive("claim-token"), token)
    if loc is None:
        raise AuthError(malformed, "claim_token is not a claim token from this service")
    if loc is False:
        raise AuthError("invalid_claim_token", "the claim token is not valid")
    return loc


def verification_uri(ctx: Context, attempt_token: str) -> str:
    if (page := ctx.settings.claim_page_url) is not None:
        # The operator's own page signs the human in its own way and confirms through the admin API.
        return page + ("&" if "?" in page else "?") + urlencode({"claim_attempt_token": attempt_token})
    return_to = "/claim?" + urlencode({"claim_attempt_token": attempt_token})
    return f"{ctx.settings.issuer}/login?return_to={quote(return_to, safe='')}"


def attempt_block(ctx: Context, token: str, expires_at: int) -> wire.Attempt:
    return wire.Attempt(verification_uri=verification_uri(ctx, token), expires_at=rfc3339(expires_at))


def claim_block(ctx: Context, claim: Claim, attempt: tuple[str, Attempt]) -> wire.ClaimBlockWithAttempt:
    """The ``claim`` object of a response that just started an attempt (its token and record)."""
    return wire.ClaimBlockWithAttempt(
        token=claim_token(ctx, claim.account_id, claim.registration_id),
        expires_at=rfc3339(claim.expires_at or 0),
        url=ctx.endpoints.url(CLAIM),
        attempt=attempt_block(ctx, attempt[0], attempt[1].expires_at),
    )


def check_login_hint(ctx: Context, login_hint: Any) -> str | None:
    if login_hint is None:
        if ctx.settings.claim_require_login_hint:
            raise AuthError("invalid_login_hint", "this service needs a login_hint: the email of the human who claims")
        return None
    return text.email(login_hint, "invalid_login_hint", "login_hint")


def require_claims_offered(ctx: Context) -> None:
    """For ``service_auth`` registration: it needs a human sign-in and the ``service_auth`` claim method."""
    if not ctx.settings.claims_offered:
        raise AuthError(
            "service_auth_registration_disabled",
            "no human sign-in is configured on this service, so accounts cannot be claimed",
            "Keep using the account until it expires; the operator has not configured an OpenID Connect provider.",
        )
    if "service_auth" not in ctx.settings.claim_methods:
        raise AuthError("service_auth_registration_disabled", "the operator turned service_auth claims off")


def methods_offered(ctx: Context) -> list[str]:
    """The claim methods an agent can use here: the operator's ``claim_methods`` that this
    configuration can serve (a human sign-in; for ``identity_assertion``, a trusted provider)."""
    s = ctx.settings
    if not s.claims_offered:
        return []
    return [m for m in s.claim_methods if m == "service_auth" or s.providers]


def require_method(ctx: Context, method: str) -> None:
    """Revision 2: a claim method the operator turned off (or that this service cannot serve) is
    ``auth_method_disabled`` (403), at the claim endpoint and at completion."""
    if method not in methods_offered(ctx):
        offered = ", ".join(methods_offered(ctx)) or "none"
        raise AuthError(
            "auth_method_disabled",
            f"the claim method {method} is not available on this service (available: {offered})",
        )


def new_attempt(claim: Claim, now: int, login_hint: str | None, method: str | None) -> tuple[str, Attempt]:
    """A fresh attempt for ``claim``: its link token (given out once) and its record (the token's hash)."""
    token = tokens.new_attempt_token(claim.account_id, claim.registration_id)
    expires = now + ATTEMPT_TTL_SECONDS
    if claim.expires_at is not None:
        expires = min(expires, claim.expires_at)
    attempt = Attempt(
        id=new_id("att"), link_hash=attempt_hash(token), expires_at=expires, login_hint=login_hint, method=method
    )
    return token, attempt


def with_attempt(claim: Claim, attempt: Attempt, now: int, cap: int) -> Claim:
    """``claim`` with one more live attempt (the dead ones dropped), or ``too_many_attempts`` at the cap.
    When none was live, a new window opens: its wrong-code count starts again (the life count does not)."""
    live = tuple(a for a in claim.attempts if a.live(now))
    if len(live) >= cap:
        raise rate_limited(
            min(a.ends_at for a in live) - now,
            f"this claim already has {len(live)} live attempts (at most {cap})",
            "Use a link you already gave the human, or wait until one expires (Retry-After).",
            code="too_many_attempts",
            limit="claim_live_attempts",
        )
    window = claim.window_failures if live else 0
    return msgspec.structs.replace(claim, version=claim.version + 1, attempts=(*live, attempt), window_failures=window)


def contended() -> AuthError:
    return AuthError("temporarily_unavailable", "the claim changed meanwhile; retry", headers={"Retry-After": "1"})


class Lost:
    """A step's compare-and-set lost to a concurrent change (``LOST``): decide again from what won."""


LOST = Lost()


async def settle(
    step: Callable[[], Awaitable[T | Lost]], rounds: int = CAS_ROUNDS, give_up: Callable[[], AuthError] = contended
) -> T:
    """The one compare-and-set retry loop: run ``step`` (read, decide, write if unchanged) until it lands
    a result, at most ``rounds`` times; then ``give_up`` (a 503 to retry: contention is that rare)."""
    for _ in range(rounds):
        result = await step()
        if not isinstance(result, Lost):
            return result
    raise give_up()


async def load(ctx: Context, loc: Located) -> tuple[Claim | None, AccessState | None]:
    now = ctx.clock.now()
    claim = await ctx.store.get_claim(loc.account_id, loc.registration_id, now)
    state = await ctx.store.access_state(loc.account_id, loc.registration_id, None, now)
    return claim, state


def claimable(state: AccessState | None, claim: Claim | None, now: float, *, completing: bool = False) -> Claim:
    """The claim if it can still move; the protocol's error otherwise. What the agent sees after a
    denial differs by step: ``claim_denied`` when completing, ``claim_revoked`` for a new attempt."""
    if claim is not None and claim.status == "claimed":
        raise AuthError("already_claimed", "this account was already claimed", "Use the credentials you got then.")
    if state is None or (claim is not None and claim.expires_at is not None and claim.expires_at <= now):
        raise AuthError("claim_expired", "the claim window has closed", "Register again to get a new account.")
    if claim is not None and claim.status == "denied" and completing:
        raise AuthError("claim_denied", "the human said this request was not theirs; the registration is revoked")
    if (claim is not None and claim.status in ("denied", "revoked")) or state.registration.revoked_at is not None:
        raise AuthError("claim_revoked", "the registration was revoked")
    if claim is None:
        if state.account.kind == "persistent" and not state.registration.pending:
            raise AuthError("already_claimed", "this account already belongs to a person")
        raise AuthError("invalid_claim", "no claim attempt was started for this claim token")
    if locked(claim):
        # Permanent: no Retry-After, since waiting changes nothing.
        raise AuthError(
            "claim_expired",
            f"this claim is locked for good after {MAX_CLAIM_FAILURES} wrong codes",
            "Nobody can claim this account any more; it stays usable until it expires.",
        )
    return claim


def locked(claim: Claim) -> bool:
    return claim.failures >= MAX_CLAIM_FAILURES


def claim_events(before: Claim | None, after: Claim, at: float, user_id: str | None = None) -> list[ev.Event]:
    """The events of a claim's step from ``before`` to ``after`` (saved with it): attempts created,
    authorized by a human, ended (replaced by a newer one, or dropped once dead), and a denial by
    ``user_id``. A completion is not a step of this kind: it lands with ``complete_claim``."""
    old = {a.id: a for a in before.attempts} if before is not None else {}
    new = {a.id: a for a in after.attempts}
    acct, reg = after.account_id, after.registration_id
    out: list[ev.Event] = []
    if after.status == "denied" and (before is None or before.status != "denied"):
        gone = [a for a in old if a not in new]
        attempt_id = gone[0] if len(gone) == 1 else None
        return [ev.new(ev.ClaimDenied, at, acct, reg, attempt_id=attempt_id, user_id=user_id or "")]
    for attempt_id, was in old.items():
        if attempt_id not in new:
            reason = "replaced" if was.live(at) else "ended"
            out.append(ev.new(ev.ClaimAttemptExpired, at, acct, reg, attempt_id=attempt_id, reason=reason))
    for attempt_id, attempt in new.items():
        if attempt_id not in old:
            hinted = attempt.login_hint is not None
            out.append(
                ev.new(
                    ev.ClaimAttemptCreated,
                    at,
                    acct,
                    reg,
                    attempt_id=attempt_id,
                    method=attempt.method,
                    expires_at=attempt.expires_at,
                    for_login_hint=hinted,
                )
            )
        elif attempt.confirmed_by is not None and old[attempt_id].confirmed_by is None:
            out.append(ev.new(ev.ClaimConfirmed, at, acct, reg, attempt_id=attempt_id, user_id=attempt.confirmed_by))
    return out


async def transition(
    ctx: Context,
    loc: Located,
    decide: Callable[[Claim | None, AccessState | None, int], tuple[Claim, int | None, T]],
    user_id: str | None = None,
) -> T:
    """Read the claim, let ``decide`` make the next one (or raise), save it by compare-and-set with the
    step's events (``user_id``: the human acting); a lost race decides again from the claim that won.
    ``decide`` returns (claim, expected version, result)."""

    async def step() -> T | Lost:
        now = int(ctx.clock.now())
        claim, state = await load(ctx, loc)
        updated, expected, result = decide(claim, state, now)
        events = claim_events(claim, updated, now, user_id)
        if not await ctx.store.save_claim(updated, expected, events):
            return LOST
        observe.emitted(ctx.tally, events)
        return result

    return await settle(step)


def new_claim(ctx: Context, state: AccessState) -> Claim:
    """The claim of an anonymous registration, made at its first attempt (its window: the account's life)."""
    reg = state.registration
    return Claim(
        account_id=state.account.id,
        registration_id=reg.id,
        expires_at=state.account.expires_at,
        scopes_after=tuple(ctx.settings.post_claim_scopes),
    )
