"""Grants on Redis: accounts and their registrations, each change one script in the account's slot;
the expiry, listing and owner indexes are written in order around it (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from app.errors import StoreUnavailable
from app.events import AccountDeleted, Event
from app.store.port import (
    AccessState,
    Account,
    AccountKind,
    Admission,
    Deleted,
    Note,
    Registration,
    WindowResult,
    expired,
)
from app.store.redis.base import (
    UNAVAILABLE,
    RedisBase,
    _account,
    _fields,
    _registration,
    _window_results,
)
from app.store.redis.notes import notes_of


class RedisGrants(RedisBase):
    async def create_registration(
        self,
        account: Account,
        registration: Registration,
        events: Sequence[Event],
        admission: Admission | None = None,
    ) -> list[WindowResult]:
        counted: list[WindowResult] = []
        if self._cluster:
            # The windows, the indexes and the account live in different slots: the same steps, in the
            # same order, one by one (redis-py refuses scripts in cluster pipelines).
            if admission is not None:
                counted = await self._count_windows(admission.hits, admission.now, admission.window)
                if not all(c.allowed for c in counted):
                    return counted
            if account.expires_at is not None:
                await self._do("zadd", self._index, {account.id: account.expires_at})
            await self._do("zadd", self._ids, {account.id: 0})
            await self._call("create_registration", *self._creation(account, registration, events, None, False))
            if account.owner is not None:
                await self._do("sadd", self._owned_key(account.owner), account.id)
            return counted
        # One script, one round trip: windows, indexes, the account and its events (module docstring).
        keys, args = self._creation(account, registration, events, admission, True)
        return _window_results(await self._call("create_registration", keys, args))

    async def get_registration(self, account_id: str, registration_id: str, now: float) -> Registration | None:
        state = await self._state(account_id, registration_id, None)
        if state is None or expired(state[0].expires_at, now):
            return None
        return state[0]

    async def get_account(self, account_id: str, now: float) -> Account | None:
        fields = await self._do("hgetall", self._a(account_id, "acct"))
        if not fields:
            return None
        account = _account(account_id, fields)
        return None if expired(account.expires_at, now) else account

    async def list_accounts(
        self, after: str | None, limit: int, now: float, kind: AccountKind | None = None
    ) -> list[Account]:
        # An index rather than SCAN: SCAN walks every key of every primary (registrations, notes, marks,
        # counters) for each page, in no order, so paging by id would mean reading everything each time.
        # The index is one sorted set: one slot, ordered by id, a page costs O(log N + page).
        # Entries of accounts that are gone (a crash between a deletion and its ZREM) or expired (until
        # the sweeper deletes them) are skipped. A read never removes an entry: one can be written just
        # before its account exists (a pipeline retried after NOSCRIPT), so a reader cannot tell it stale.
        await self._complete_ids_index()
        found: list[Account] = []
        cursor = after
        while len(found) < limit:
            batch = min(max(limit - len(found), 100), 1000)
            low = "-" if cursor is None else f"({cursor}"
            ids = await self._do("zrangebylex", self._ids, low, "+", start=0, num=batch)
            if not ids:
                break
            for account_id, fields in zip(ids, await self._read_accounts(ids), strict=True):
                if not fields:
                    continue
                account = _account(account_id, fields)
                if not expired(account.expires_at, now) and kind in (None, account.kind):
                    found.append(account)
                    if len(found) == limit:
                        break
            if len(ids) < batch:
                break
            cursor = ids[-1]
        return found

    async def _read_accounts(self, ids: list[str]) -> list[dict[str, str]]:
        """HGETALL of each account hash in one pipelined round trip (per node on a cluster)."""
        pipe = self._client.pipeline(transaction=False) if not self._cluster else self._client.pipeline()
        for account_id in ids:
            pipe.hgetall(self._a(account_id, "acct"))
        try:
            rows: list[dict[str, str]] = await pipe.execute()
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        return rows

    async def _complete_ids_index(self) -> None:
        """Accounts written by a version of authmd before the listing index existed are added once, by
        one SCAN over every primary; ``P{ids}:indexed`` then records that the index is complete. Racing
        writers and deleters are harmless: ZADD is idempotent and reads skip entries of deleted accounts.
        (During a rolling upgrade, accounts that older instances create after this walk stay unlisted.)"""
        if await self._do("exists", self._ids_complete):
            return
        # Keys of account hashes: P{a:ID}:acct (the prefix has no { }; glob characters are escaped).
        head = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "{a:"
        pattern, tail = head + "*}:acct", "}:acct"
        start = len(self.prefix) + len("{a:")
        try:
            batch: list[str] = []
            async for key in self._client.scan_iter(match=pattern, count=1000, _type="hash"):
                batch.append(key[start : -len(tail)])
                if len(batch) >= 500:
                    await self._client.zadd(self._ids, dict.fromkeys(batch, 0))
                    batch = []
            if batch:
                await self._client.zadd(self._ids, dict.fromkeys(batch, 0))
            await self._client.set(self._ids_complete, "1")
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def registrations_of(self, account_id: str, now: float) -> list[Registration]:
        keys = [self._a(account_id, "acct"), self._a(account_id, "regs")]
        reply = await self._call("read_registrations", keys, [self._a(account_id, "reg:")])
        if reply is None:
            return []
        row = msgspec.json.decode(reply)
        if row["e"] != "" and float(row["e"]) <= now:
            return []
        # cjson writes an empty table as {}, a list as [...]
        regs = [_registration(fields) for fields in (row["r"] or [])]
        return sorted((r for r in regs if not expired(r.expires_at, now)), key=lambda r: (r.created_at, r.id))

    async def _state(
        self, account_id: str, registration_id: str, token_id: str | None, notes: bool = False
    ) -> tuple[Registration, Account, str | None, list[Note] | None] | None:
        keys = [
            self._a(account_id, "acct"),
            self._a(account_id, f"reg:{registration_id}"),
            self._a(account_id, f"rv:{token_id or ''}"),
            self._a(account_id, "notes"),
        ]
        reply = await self._call("access_state", keys, [token_id or "", "1" if notes else ""])
        if reply is None:
            return None
        row = msgspec.json.decode(reply)
        listed = notes_of(account_id, row["n"]) if notes else None
        return _registration(row["r"]), _account(account_id, row["a"]), row.get("m"), listed

    async def access_state(
        self, account_id: str, registration_id: str, token_id: str | None, now: float, *, notes: bool = False
    ) -> AccessState | None:
        state = await self._state(account_id, registration_id, token_id, notes)
        if state is None:
            return None
        registration, account, mark, listed = state
        if expired(registration.expires_at, now) or expired(account.expires_at, now):
            return None
        revoked = mark is not None and float(mark) > now
        return AccessState(registration=registration, account=account, token_revoked=revoked, notes=listed)

    async def put_registration(self, registration: Registration, now: float, events: Sequence[Event]) -> bool:
        account_id = registration.account_id
        keys = [self._a(account_id, "acct"), self._a(account_id, "regs"), self._a(account_id, f"reg:{registration.id}")]
        args = [repr(float(now)), registration.id, *_fields(registration)]
        return bool(await self._emit("put_grant", account_id, events, keys, args))

    async def revoke_registration(
        self, account_id: str, registration_id: str, now: float, events: Sequence[Event]
    ) -> bool:
        key = self._a(account_id, f"reg:{registration_id}")
        return bool(await self._emit("revoke_registration", account_id, events, [key], [repr(float(now)), int(now)]))

    async def rotate_refresh(
        self,
        account_id: str,
        registration_id: str,
        family: str,
        seq: int,
        expires_at: int,
        now: float,
        events: Sequence[Event],
    ) -> bool:
        key = self._a(account_id, f"reg:{registration_id}")
        args = [family, seq, expires_at, repr(float(now)), int(now)]
        return bool(await self._emit("rotate_refresh", account_id, events, [key], args))

    async def set_not_before(
        self, account_id: str, registration_id: str, not_before: int, events: Sequence[Event]
    ) -> bool:
        key = self._a(account_id, f"reg:{registration_id}")
        return bool(await self._emit("set_not_before", account_id, events, [key], [not_before]))

    async def delete_account(self, account_id: str, now: float, event: AccountDeleted) -> Deleted | None:
        deleted = await self._delete(account_id, now, "live", event)
        if not isinstance(deleted, Deleted):
            return None
        await self._do("zrem", self._index, account_id)
        return deleted
