"""Proof of work that prices abuse, not use (authmd extension; spec/protocol.md § Proof of work).

A challenge is ``v1.<id>.<expires_at>.<difficulty>.<mac>``: opaque to clients, HMAC-SHA256 protected
with a key derived from the server secret, carrying its own expiry and difficulty (the difficulty is
read only from inside it). A solution is a decimal ``nonce`` such that SHA-256 of the UTF-8 bytes
``challenge + ":" + nonce`` has at least ``difficulty`` leading zero bits. The server spends one MAC
and one hash per check, then redeems the challenge id once (store ``consume_once``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from app import observe
from app.clock import rfc3339
from app.context import Context
from app.errors import AuthError
from app.flows.limits import enforce, source_key
from app.protocol import meets
from app.store.port import WindowHit
from app.tokens import mint_challenge, parse_challenge
from app.wire import Challenge, ProofOfWork

MAX_NONCE_DIGITS = 32

# ---------------------------------------------------------------------------------------------------
# Policy: when a proof is required and how hard it is
# ---------------------------------------------------------------------------------------------------


def difficulty_for(ctx: Context, source_volume: float) -> int:
    """Base difficulty, plus one bit per doubling of the source's volume past its free allowance,
    so a sparse agent pays the base price and a farm pays exponentially."""
    s = ctx.settings
    free = max(s.pow_free_per_source, 1)
    extra = math.ceil(math.log2(source_volume / free)) if source_volume > free else 0
    return min(s.pow_difficulty + extra, s.pow_max_difficulty)


def volume_paid(ctx: Context, difficulty: int) -> int | None:
    """The largest source volume (this registration included) a proof of ``difficulty`` pays for: the
    inverse of ``difficulty_for``, so a challenge minted when registering was cheap stops paying once the
    source's price has risen. None: no cap (the maximum difficulty pays for any volume)."""
    s = ctx.settings
    if difficulty >= s.pow_max_difficulty:
        return None
    return max(s.pow_free_per_source, 1) << max(0, difficulty - s.pow_difficulty)


def new_challenge(ctx: Context, difficulty: int) -> Challenge:
    """A fresh challenge: the challenge endpoint's answer, and the `challenge` member of a
    proof_of_work_required / invalid_proof_of_work error body."""
    now = ctx.clock.now()
    expires_at = int(now) + ctx.settings.pow_challenge_ttl_seconds
    observe.challenge_issued(ctx.tally, difficulty, now)
    return Challenge(
        challenge=mint_challenge(ctx.pow_key, difficulty, expires_at),
        algorithm="sha256",
        difficulty=difficulty,
        expires_at=rfc3339(expires_at),
    )


def proof_required(ctx: Context, difficulty: int) -> AuthError:
    return AuthError(
        "proof_of_work_required",
        "this service asks for a proof of work before it creates an account",
        extra={"challenge": new_challenge(ctx, difficulty)},
    )


def proof_refused(ctx: Context, description: str, difficulty: int) -> AuthError:
    """Every refused proof carries a fresh challenge at the current price (one round trip teaches)."""
    return AuthError("invalid_proof_of_work", description, extra={"challenge": new_challenge(ctx, difficulty)})


async def issue_challenge(ctx: Context, source: str) -> Challenge:
    """POST {challenge_endpoint}: rate-limited; difficulty from the source's recent volume, which
    counts challenges fetched as well as registrations (stockpiling challenges gets dearer)."""
    s = ctx.settings
    src = source_key(source)
    chal_src, _chal_all, reg_src = await enforce(
        ctx,
        [
            WindowHit(f"chal:src:{src}", s.challenge_limit_per_source),
            WindowHit("chal:all", s.challenge_limit_global),
            WindowHit(f"reg:src:{src}", None, increment=False),
        ],
    )
    return new_challenge(ctx, difficulty_for(ctx, max(chal_src.count, reg_src.count)))


class Verdict(NamedTuple):
    """A submitted proof, checked without the store: the challenge it names and, when it fails, why."""

    challenge_id: str
    expires_at: int
    difficulty: int
    flaw: str | None


def verify(ctx: Context, proof: ProofOfWork) -> Verdict:
    """Our MAC, not expired, at least the base difficulty, and the hash meets the signed difficulty.
    What is left is the single use (``redeem``) and the price (the caller's limit from ``volume_paid``)."""

    def flawed(description: str) -> Verdict:
        return Verdict("", 0, 0, description)

    challenge, nonce = proof.challenge, proof.nonce
    if not (nonce.isascii() and nonce.isdigit() and 0 < len(nonce) <= MAX_NONCE_DIGITS):
        return flawed("proof_of_work.nonce must be a decimal string of at most 32 digits")
    parsed = parse_challenge(ctx.pow_key, challenge)
    if parsed is None:
        return flawed("the challenge was not issued by this service")
    challenge_id, expires_at, difficulty = parsed
    if expires_at <= ctx.clock.now():
        return flawed("the challenge has expired")
    if difficulty < ctx.settings.pow_difficulty:
        return flawed("the challenge is easier than this service now accepts")
    if not meets(challenge, nonce, difficulty):
        return flawed(f"sha256(challenge:nonce) does not have {difficulty} leading zero bits")
    return Verdict(challenge_id, expires_at, difficulty, None)


async def redeem(ctx: Context, verdict: Verdict) -> Verdict:
    """Spend a sound proof's challenge (first use wins); the verdict with a flaw if it was used."""
    if verdict.flaw is not None:
        return verdict
    if not await ctx.store.consume_once("pow", verdict.challenge_id, verdict.expires_at, ctx.clock.now()):
        return verdict._replace(flaw="the challenge was already used")
    return verdict
