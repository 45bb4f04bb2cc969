"""The human's account page: what a signed-in person owns, and revoking an agent's grant there.

A person acts only on accounts they own (``Account.owner``): a grant named by a form is looked up in
the named account and refused as ``not_found`` unless that account is theirs, whatever the form says.
The revocation itself is the one verb every entry point uses (``grants.revoke_grant``, ``by="human"``).
"""

from __future__ import annotations

from typing import NamedTuple

from app.context import Context
from app.errors import AuthError
from app.flows import grants
from app.store.port import Account, Registration, User


class Owned(NamedTuple):
    account: Account
    registrations: list[Registration]


async def person(ctx: Context, user_id: str) -> User | None:
    return await ctx.store.get_user(user_id)


async def owned(ctx: Context, user: User) -> list[Owned]:
    """Every live account the person owns (their own and those they claimed), each with its grants."""
    now = ctx.clock.now()
    return [Owned(a, await ctx.store.registrations_of(a.id, now)) for a in await ctx.store.owned_accounts(user.id, now)]


async def has_provider_link(ctx: Context, user: User) -> bool:
    """Whether an agent platform already acts for this person (a live provider link in their own account)."""
    regs = await ctx.store.registrations_of(user.account_id, ctx.clock.now())
    return any(r.type == "identity_assertion" and not r.pending for r in regs)


async def owned_grant(ctx: Context, user: User, account_id: str, registration_id: str) -> Registration:
    """The grant ``registration_id`` of ``account_id``, if that account is the person's; else ``not_found``."""
    now = ctx.clock.now()
    acct = await ctx.store.get_account(account_id, now)
    if acct is None or acct.owner != user.id:
        raise AuthError("not_found", "no such account of yours")
    reg = next((r for r in await ctx.store.registrations_of(acct.id, now) if r.id == registration_id), None)
    if reg is None:
        raise AuthError("not_found", "no such agent in this account")
    return reg


async def revoke(ctx: Context, user: User, account_id: str, registration_id: str) -> None:
    """The person revokes an agent's grant in an account of theirs (already revoked: nothing happens)."""
    reg = await owned_grant(ctx, user, account_id, registration_id)
    await grants.revoke_grant(ctx, reg.account_id, reg.id, by="human", user_id=user.id)
