"""The operator's revocations, through the verb (``grants.revoke_grant``) with the operator named, so
each one writes ``agent_registration.revoked`` and ``operator.action`` in the same store step."""

from __future__ import annotations

from collections.abc import Sequence

from app.flows import grants
from app.store.port import Account, Registration, Store


async def live_registrations(store: Store, accounts: Sequence[Account], now: float) -> list[Registration]:
    """What revoking these accounts would revoke: their registrations not yet revoked."""
    plan = []
    for account in accounts:
        plan += [r for r in await store.registrations_of(account.id, now) if r.revoked_at is None]
    return plan


async def revoke_each(acting: grants.Acting, plan: Sequence[Registration], operator: str) -> list[Registration]:
    """Revoke each registration of ``plan``; the ones that were still live (False from the verb: revoked
    or expired meanwhile, by its owner or another operator, which is nothing to report)."""
    done = []
    for reg in plan:
        if await grants.revoke_grant(acting, reg.account_id, reg.id, by="operator", operator=operator):
            done.append(reg)
    return done
