"""People on Redis: users, emails, logins and delegations across slots (first writer wins at each
step, orphans unreachable), and browser sessions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Sequence

from app.errors import StoreUnavailable
from app.events import Event
from app.store.port import Account, Delegation, Registration, User, expired
from app.store.redis.base import GRACE_MS, SIGN_IN_ROUNDS, RedisBase, _account, _mapping, _ms, _user


class RedisPeople(RedisBase):
    def _email_key(self, email: str) -> str:
        return f"{self.prefix}email:{hashlib.sha256(email.encode()).hexdigest()}"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}{{u:{user_id}}}:user"

    def _login_key(self, issuer: str, subject: str) -> str:
        digest = hashlib.sha256((issuer + "\n" + subject).encode()).hexdigest()
        return f"{self.prefix}login:{digest}"

    def _session_key(self, session_hash: str) -> str:
        return f"{self.prefix}sess:{session_hash}"

    async def find_user_by_email(self, email: str) -> User | None:
        user_id = await self._do("get", self._email_key(email))
        if user_id is None:
            return None
        return await self.get_user(user_id)  # None: an email whose user was rolled back meanwhile

    async def get_user(self, user_id: str) -> User | None:
        fields = await self._do("hgetall", self._user_key(user_id))
        return _user(user_id, fields) if fields else None

    async def get_delegation(self, issuer: str, subject: str) -> Delegation | None:
        fields = await self._do("hgetall", self._delegation_key(issuer, subject))
        if not fields:
            return None
        return Delegation(
            issuer=fields["issuer"],
            subject=fields["subject"],
            user_id=fields["user_id"],
            account_id=fields["account_id"],
            registration_id=fields["registration_id"],
            status=fields["status"],
            created_at=int(fields["created_at"]),
        )

    async def create_user(
        self, user: User, account: Account, registration: Registration, delegation: Delegation, events: Sequence[Event]
    ) -> bool:
        # Across slots, in an order whose every crash point is safe: orphans (an account, a user) are
        # unreachable; the email and then the delegation are claimed first-writer-wins; the delegation,
        # which makes the account reachable by the provider subject, comes last. The events are written
        # with the account (its slot); a loser's rollback discards them with it (spec/events.md).
        await self._do("zadd", self._ids, {account.id: 0})
        await self._call("create_registration", *self._creation(account, registration, events, None, indexes=False))
        await self._do("hset", self._user_key(user.id), mapping=_mapping(user))
        if account.owner is not None:
            await self._do("sadd", self._owned_key(account.owner), account.id)
        email_key = self._email_key(user.email)
        claimed = await self._do("set", email_key, user.id, nx=True)
        if claimed and await self._put_delegation(delegation, "create"):
            return True
        if claimed:
            await self._do("delete", email_key)
        await self._do("delete", self._user_key(user.id))
        if account.owner is not None:
            await self._do("srem", self._owned_key(account.owner), account.id)
        await self._delete(account.id, float(account.created_at), "discard")
        return False

    async def sign_in_user(self, issuer: str, subject: str, email: str, new_user: User, new_account: Account) -> User:
        # Across slots, first writer wins at each step: the email names one user for good (SET NX), and
        # the subject is linked only to the user its email named, so racing sign-ins converge on it. A
        # loser removes what it wrote and reads the winner's records in the next round.
        login = self._login_key(issuer, subject)
        for _ in range(SIGN_IN_ROUNDS):
            stale = ""
            linked = await self._do("get", login)
            if linked is not None:
                user = await self.get_user(linked)
                if user is not None:
                    return user
                stale = linked  # a user that was rolled back: the link may be replaced
            user = await self.find_user_by_email(email)
            created = False
            if user is None:
                created = await self._create_person(new_user, new_account)
                if not created:
                    continue
                user = new_user
            if await self._call("link_login", [login], [user.id, stale]) == user.id:
                return user
            if created:  # the subject went to another user (another email) meanwhile
                await self._drop_person(new_user, new_account, release_email=True)
        raise StoreUnavailable("redis: sign-in did not settle")

    async def _create_person(self, user: User, account: Account) -> bool:
        # Unreachable orphans first, the email (which makes them reachable) last; its loser rolls back.
        await self._do("zadd", self._ids, {account.id: 0})
        await self._do("hset", self._a(account.id, "acct"), mapping=_mapping(account))
        await self._do("hset", self._user_key(user.id), mapping=_mapping(user))
        await self._do("sadd", self._owned_key(user.id), account.id)
        if await self._do("set", self._email_key(user.email), user.id, nx=True):
            return True
        await self._drop_person(user, account, release_email=False)
        return False

    async def _drop_person(self, user: User, account: Account, *, release_email: bool) -> None:
        if release_email:
            await self._do("delete", self._email_key(user.email))  # first: never an email naming no user
        await self._do("delete", self._user_key(user.id), self._owned_key(user.id))
        await self._delete(account.id, float(account.created_at), "live")

    async def owned_accounts(self, user_id: str, now: float) -> list[Account]:
        index = self._owned_key(user_id)
        ids = sorted(await self._do("smembers", index))
        rows = await asyncio.gather(*(self._do("hgetall", self._a(account_id, "acct")) for account_id in ids))
        accounts = []
        for account_id, fields in zip(ids, rows, strict=True):
            if not fields:
                # Deleted: an entry is only added once its account exists, and ids are never reused.
                await self._do("srem", index, account_id)
                continue
            account = _account(account_id, fields)
            if account.owner == user_id and not expired(account.expires_at, now):
                accounts.append(account)
        return sorted(accounts, key=lambda a: (a.created_at, a.id))

    async def put_session(self, session_hash: str, data: bytes, expires_at: float) -> None:
        # No ``now`` here: the space-only TTL counts from the wall clock and never drops below the grace
        # period, so a caller's clock that runs a little behind cannot lose a live session early.
        ttl = _ms(max(0.0, expires_at - time.time())) + GRACE_MS
        value = f"{float(expires_at)!r} {base64.b64encode(data).decode()}"  # the client decodes replies as text
        await self._do("set", self._session_key(session_hash), value, px=ttl)

    async def get_session(self, session_hash: str, now: float) -> bytes | None:
        value = await self._do("get", self._session_key(session_hash))
        if value is None:
            return None
        expires_at, _, data = value.partition(" ")
        return None if expired(float(expires_at), now) else base64.b64decode(data)

    async def delete_session(self, session_hash: str) -> None:
        await self._do("delete", self._session_key(session_hash))
