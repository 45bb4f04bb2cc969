"""OAuth clients that registered themselves (RFC 7591) on Redis: one hash per client (its record as JSON
and its expiry, which ``touch_client`` moves), with a space-only TTL past that expiry."""

from __future__ import annotations

import time

import msgspec

from app.store.port import ClientRecord, expired
from app.store.redis.base import GRACE_MS, RedisBase, _ms

_JSON = msgspec.json.Encoder()


class RedisClients(RedisBase):
    def _client_key(self, client_id: str) -> str:
        return f"{self.prefix}cl:{client_id}"

    @staticmethod
    def _ttl(expires_at: float) -> int:
        # From the wall clock, as sessions: the grace keeps a caller whose clock runs behind safe.
        return _ms(max(0.0, expires_at - time.time())) + GRACE_MS

    async def put_client(self, client: ClientRecord) -> None:
        key = self._client_key(client.client_id)
        body = _JSON.encode(client).decode()
        await self._call("put_client", [key], [body, client.expires_at, self._ttl(client.expires_at)])

    async def get_client(self, client_id: str, now: float) -> ClientRecord | None:
        body, expires_at = await self._do("hmget", self._client_key(client_id), ["body", "expires_at"])
        if body is None or expires_at is None or expired(int(expires_at), now):
            return None
        return msgspec.structs.replace(msgspec.json.decode(body, type=ClientRecord), expires_at=int(expires_at))

    async def touch_client(self, client_id: str, expires_at: int, now: float) -> bool:
        key = self._client_key(client_id)
        return bool(await self._call("touch_client", [key], [expires_at, repr(float(now)), self._ttl(expires_at)]))
