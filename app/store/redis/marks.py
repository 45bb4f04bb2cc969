"""Marks on Redis: one-time marks (one key each, any slot) and revoked token ids (in the account's slot)."""

from __future__ import annotations

from app.store.redis.base import GRACE_MS, RedisBase, _ms


class RedisMarks(RedisBase):
    async def consume_once(self, namespace: str, key: str, expires_at: float, now: float) -> bool:
        mark = f"{self.prefix}m:{namespace}:{key}"  # one key, no tag: marks spread over the cluster
        ttl = _ms(expires_at - now) + GRACE_MS
        return bool(await self._call("consume_once", [mark], [repr(float(expires_at)), repr(float(now)), ttl]))

    async def revoke_token(self, account_id: str, token_id: str, expires_at: float, now: float) -> bool:
        mark = self._a(account_id, f"rv:{token_id}")
        ttl = _ms(expires_at - now) + GRACE_MS
        return bool(await self._call("consume_once", [mark], [repr(float(expires_at)), repr(float(now)), ttl]))
