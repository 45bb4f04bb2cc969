"""Refresh tokens of claimed grants: ``POST {identity_endpoint}`` ``{"type":"refresh","refresh_token"}``.

A refresh token is ``art_{account}.{registration}.{seq}.{mac}``, the MAC under a server key over
(account, registration, family, seq): nothing secret is stored, only the family id and the live
``seq``. Rotation (OAuth 2.0 Security BCP, RFC 9700 §4.14.2) advances ``seq``; the presented token is
spent. A spent token is refused and, as reuse signals theft, revokes the family (the grant) — except
the token just before the live one, within a short grace after the rotation: a client that lost the
response to its refresh gets the same successor again (it is recomputed, never stored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from app import events as ev
from app import observe, tokens
from app.clock import rfc3339
from app.context import Context
from app.errors import AuthError
from app.flows import claim as claims
from app.flows import grants
from app.flows.issue import identity_assertion
from app.store.port import AccessState, Account, Registration
from app.wire import IdentityWithRefresh, Refreshed, RefreshTokenView


def refresh_token(ctx: Context, registration: Registration, seq: int) -> str:
    assert registration.refresh_family is not None
    key = ctx.keys.derive("refresh-token")
    return tokens.refresh_token(key, registration.account_id, registration.id, registration.refresh_family, seq)


def identity_with_refresh(ctx: Context, registration: Registration, seq: int) -> IdentityWithRefresh:
    """The ``identity`` object of a claim completion or a refresh (spec/protocol.md)."""
    expires_at = int(ctx.clock.now()) + ctx.settings.identity_assertion_ttl_seconds
    assert registration.refresh_expires_at is not None
    return IdentityWithRefresh(
        assertion=identity_assertion(ctx, registration, registration.account_id, expires_at),
        expires_at=rfc3339(expires_at),
        refresh_token=RefreshTokenView(
            value=refresh_token(ctx, registration, seq), expires_at=rfc3339(registration.refresh_expires_at)
        ),
    )


def _invalid(description: str) -> AuthError:
    return AuthError(
        "invalid_refresh_token",
        description,
        "Ask the human to claim again, or register again at the identity endpoint.",
    )


def _genuine(ctx: Context, reg: Registration | None, token: str, seq: int) -> bool:
    """Minted by us for this grant's family (a live, spent or forged-looking token is told apart here)."""
    if reg is None or reg.refresh_family is None or seq > reg.refresh_seq:
        return False
    return tokens.same(refresh_token(ctx, reg, seq), token)


async def revoke(ctx: Context, token: str) -> None:
    """RFC 7009 for a refresh token: the grant (its whole family and every token derived) dies."""
    located = tokens.locate_refresh(token)
    if located is None:
        return
    account_id, registration_id, seq = located
    state = await ctx.store.access_state(account_id, registration_id, None, ctx.clock.now())
    if state is not None and _genuine(ctx, state.registration, token, seq):
        await grants.revoke_grant(ctx, account_id, registration_id, by="agent", reason="token_revoked")


class Rotated(msgspec.Struct, frozen=True):
    """A refresh that landed: the grant as it is now, and the live sequence number and its expiry."""

    registration: Registration
    account: Account
    seq: int
    expires_at: int


async def rotate(
    ctx: Context,
    token: Any,
    invalid: Callable[[str], AuthError],
    admit: Callable[[Registration], None] = lambda _: None,
) -> Rotated:
    """Spend a refresh token (RFC 9700 §4.14.2 rotation) and return the grant's live successor.

    ``invalid`` makes the endpoint's own error (the identity endpoint's ``invalid_refresh_token``, the
    token endpoint's ``invalid_grant``); ``admit`` checks the grant belongs to the caller (RFC 6749 §6:
    the token endpoint's client) before anything changes."""
    located = tokens.locate_refresh(token)
    if located is None:
        raise invalid("refresh_token is not a refresh token from this service")
    account_id, registration_id, seq = located
    now = ctx.clock.now()

    async def step() -> Rotated | claims.Lost:
        state = await ctx.store.access_state(account_id, registration_id, None, now)
        reg = state.registration if state is not None else None
        if reg is None or reg.refresh_family is None or not _genuine(ctx, reg, token, seq):
            raise invalid("the refresh token is not valid")
        admit(reg)
        assert state is not None
        if reg.revoked_at is not None or reg.pending:
            raise invalid("the grant of this refresh token was revoked")
        if seq == reg.refresh_seq:
            if reg.refresh_expires_at is None or reg.refresh_expires_at <= now:
                raise invalid("the refresh token has expired")
            expires_at = int(now) + ctx.settings.refresh_token_ttl_seconds
            events: list[ev.Event] = [
                ev.new(ev.RefreshRotated, now, account_id, registration_id, seq=seq + 1, expires_at=expires_at)
            ]
            if reg.type != "mcp":  # an agent also gets an identity assertion; an MCP client only tokens
                events.append(
                    ev.new(
                        ev.CredentialIssued,
                        now,
                        account_id,
                        registration_id,
                        kind="refresh",
                        generation=reg.generation,
                        expires_at=expires_at,
                    )
                )
            family = reg.refresh_family
            if await ctx.store.rotate_refresh(account_id, registration_id, family, seq, expires_at, now, events):
                observe.emitted(ctx.tally, events)
                return _rotated(state, seq + 1, expires_at, now)
            return claims.LOST  # a racing refresh of the same token rotated first: look again (grace or reuse)
        rotated_at = reg.refresh_rotated_at or 0
        if seq == reg.refresh_seq - 1 and now - rotated_at <= ctx.settings.refresh_grace_seconds:
            assert reg.refresh_expires_at is not None
            return _rotated(state, reg.refresh_seq, reg.refresh_expires_at, now)
        # A superseded refresh token came back: someone holds a copy. The grant dies as a precaution.
        await grants.revoke_grant(ctx, account_id, registration_id, by="agent", reason="refresh_token_reused")
        raise invalid("this refresh token was already used; the grant is revoked as a precaution")

    return await claims.settle(step, rounds=3, give_up=_rotating)


def _agents_only(reg: Registration) -> None:
    """An MCP client's refresh token belongs to the token endpoint and its client, never here."""
    if reg.type == "mcp":
        raise _invalid("this refresh token belongs to an OAuth client: use it at the token endpoint")


def _rotated(state: AccessState, seq: int, expires_at: int, now: float) -> Rotated:
    current = msgspec.structs.replace(
        state.registration, refresh_seq=seq, refresh_rotated_at=int(now), refresh_expires_at=expires_at
    )
    return Rotated(current, state.account, seq, expires_at)


async def refresh(ctx: Context, token: Any) -> Refreshed:
    """The identity endpoint's refresh (spec/protocol.md): a new identity assertion and refresh token."""
    rotated = await rotate(ctx, token, _invalid, _agents_only)
    reg = rotated.registration
    return Refreshed(id=reg.id, type="refresh", identity=identity_with_refresh(ctx, reg, rotated.seq))


def _rotating() -> AuthError:
    return AuthError(
        "temporarily_unavailable", "the refresh token is being rotated; retry", headers={"Retry-After": "1"}
    )
