"""Claims on Redis: the claim ceremony, compare-and-set on the stored version inside the account's scripts."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from app.events import Event
from app.store.port import Account, Claim, CodeBudget, CodeCheck, Delegation, Registration, expired
from app.store.redis.base import _CLAIM_JSON, GRACE_MS, RedisBase, _fields, _ms


class RedisClaims(RedisBase):
    def _claim_key(self, account_id: str, registration_id: str) -> str:
        return self._a(account_id, f"claim:{registration_id}")

    async def get_claim(self, account_id: str, registration_id: str, now: float) -> Claim | None:
        keys = [self._a(account_id, "acct"), self._claim_key(account_id, registration_id)]
        reply = await self._call("read_claim", keys, [])
        if reply is None:
            return None
        account_expires_at, data = reply
        if account_expires_at != "" and float(account_expires_at) <= now:
            return None
        claim = msgspec.json.decode(data, type=Claim)
        return None if expired(claim.expires_at, now) else claim

    async def save_claim(self, claim: Claim, expected_version: int | None, events: Sequence[Event]) -> bool:
        keys = [self._a(claim.account_id, "acct"), self._claim_key(claim.account_id, claim.registration_id)]
        expected = "" if expected_version is None else expected_version
        args = [expected, claim.version, _CLAIM_JSON.encode(claim).decode()]
        return bool(await self._emit("save_claim", claim.account_id, events, keys, args))

    async def save_pending_link(
        self,
        delegation: Delegation,
        registration: Registration,
        claim: Claim,
        events: Sequence[Event],
        *,
        replace_active: bool = False,
    ) -> bool:
        if not await self._put_delegation(delegation, "force" if replace_active else "pending"):
            return False
        keys = [
            self._a(registration.account_id, "acct"),
            self._a(registration.account_id, "regs"),
            self._a(registration.account_id, f"reg:{registration.id}"),
            self._claim_key(claim.account_id, claim.registration_id),
        ]
        args = [registration.id, claim.version, _CLAIM_JSON.encode(claim).decode(), *_fields(registration)]
        return bool(await self._emit("put_registration", registration.account_id, events, keys, args))

    async def check_code(
        self,
        account_id: str,
        registration_id: str,
        digests: Mapping[str, str],
        now: float,
        budget: CodeBudget,
        ended: Sequence[Event] = (),
    ) -> CodeCheck:
        keys = [self._a(account_id, "acct"), self._claim_key(account_id, registration_id)]
        args: list[Any] = [repr(float(now)), budget.per_window, budget.per_claim]
        for attempt_id, digest in digests.items():
            args += [attempt_id, digest]
        reply = await self._emit("check_code", account_id, ended, keys, args)
        if reply is None:
            return CodeCheck(claim=None)
        outcome, data, matched = reply
        claim = msgspec.json.decode(data, type=Claim)
        return CodeCheck(claim=claim, compared=outcome != "none", matched=matched or None)

    async def complete_claim(
        self,
        claim: Claim,
        expected_version: int,
        account: Account,
        registration: Registration,
        delegation: Delegation | None,
        events: Sequence[Event],
    ) -> bool:
        keys = [
            self._a(account.id, "acct"),
            self._a(account.id, "regs"),
            self._a(account.id, "notes"),
            self._a(account.id, f"reg:{registration.id}"),
            self._claim_key(account.id, registration.id),
        ]
        # A claim normally makes the account persistent (no TTL on anything it owns); one that keeps an
        # expiry gets a space-only TTL counted from the event's time, the caller's ``now``.
        at = events[0].at if events else time.time()
        ttl = "" if account.expires_at is None else _ms(account.expires_at - at) + GRACE_MS
        args = [
            expected_version,
            claim.version,
            _CLAIM_JSON.encode(claim).decode(),
            ttl,
            account.kind,
            "" if account.expires_at is None else account.expires_at,
            account.quota_notes,
            account.quota_note_bytes,
            account.owner or "",
            self._a(account.id, "reg:"),
            self._a(account.id, "claim:"),
            registration.id,
            *_fields(registration),
        ]
        # The owner index first (the account exists already): a crash never hides a claimed account from
        # its owner, and the entry of a racer whose claim did not land is ignored by reads (another owner).
        if account.owner is not None:
            await self._do("sadd", self._owned_key(account.owner), account.id)
        if not await self._emit("complete_claim", account.id, events, keys, args):
            return False
        # Across slots, in order right after the account's own script (see the module docstring).
        if account.kind == "temporary" and account.expires_at is not None:
            await self._do("zadd", self._index, {account.id: account.expires_at})
        else:
            await self._do("zrem", self._index, account.id)
        if delegation is not None:
            await self._put_delegation(delegation, "force")
        return True
