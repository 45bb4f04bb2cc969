"""Webhooks on Redis: every key in the service pseudo-account's slot (see the key layout in
app/store/redis/__init__.py), so each method is one single-slot step (a script; one command for
``get_delivery``), and the three that write events write them to the service outbox, in that same slot,
in the same script.

A delivery is a hash: its record as msgspec JSON (``data``, written only here) beside the fields the
scripts change (status, seq, attempts, next_at, leased_by, leased_until) as strings written here, which
win over ``data`` when read. Lua never re-encodes a record: cjson would round times to 14 digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from app import events as ev
from app.events import Event
from app.store.port import Delivery, DeliveryStatus, EndpointState
from app.store.redis.base import RedisBase

_DELIVERY = msgspec.json.Decoder(Delivery)
_ENCODE = msgspec.json.Encoder()


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _delivery(fields: dict[str, str]) -> Delivery:
    return msgspec.structs.replace(
        _DELIVERY.decode(fields["data"]),
        status=fields["status"],  # written only from DeliveryStatus values
        seq=int(fields["seq"]),
        attempts=int(fields["attempts"]),
        next_at=float(fields["next_at"]),
        leased_by=fields.get("leased_by"),
        leased_until=_float(fields.get("leased_until")),
    )


def _state(name: str, fields: dict[str, str]) -> EndpointState:
    return EndpointState(
        name=name,
        since=_float(fields.get("since")),
        disabled_at=_float(fields.get("disabled_at")),
        last_success_at=_float(fields.get("last_success_at")),
        last_failure_at=_float(fields.get("last_failure_at")),
    )


def _time(value: float | None) -> str:
    """A time as scripts store it: repr keeps every digit of the float (``float()`` reads it back)."""
    return "" if value is None else repr(float(value))


class RedisWebhooks(RedisBase):
    @property
    def _wh(self) -> str:
        """The prefix of every webhook key, in the service account's slot."""
        return self._a(ev.SERVICE, "wh:")

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        args: list[Any] = [self._wh]
        for d in deliveries:
            stored = msgspec.structs.replace(d, seq=0, status="pending", leased_by=None, leased_until=None)
            args += [d.id, d.endpoint, d.account_id, _time(d.next_at), d.attempts, _time(d.created_at)]
            args.append(_ENCODE.encode(stored).decode())
        return int(await self._call("add_deliveries", [self._wh + "seq"], args))

    async def lease_deliveries(
        self, endpoints: Sequence[str], now: float, holder: str, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        if not endpoints or limit <= 0:
            return []
        keys = [self._wh + f"due:{name}" for name in endpoints]
        args = [self._wh, _time(now), _time(now + lease_seconds), holder, limit, *endpoints]
        return [_delivery(_pairs(flat)) for flat in await self._call("lease_deliveries", keys, args)]

    async def finish_delivery(self, delivery: Delivery, holder: str, events: Sequence[Event] = ()) -> bool:
        done = msgspec.structs.replace(delivery, leased_by=None, leased_until=None)
        keys = [self._wh + f"d:{delivery.id}", self._wh + "done"]
        disable = any(isinstance(e, ev.WebhookEndpointDisabled) for e in events)
        args = [
            self._wh,
            holder,
            _ENCODE.encode(done).decode(),
            done.status,
            done.attempts,
            _time(done.next_at),
            _time(done.last_attempt_at),
            "1" if disable else "",
        ]
        return bool(await self._emit("finish_delivery", ev.SERVICE, events, keys, args))

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        fields = await self._do("hgetall", self._wh + f"d:{delivery_id}")
        return _delivery(fields) if fields else None

    async def list_deliveries(
        self, *, endpoint: str | None = None, status: DeliveryStatus | None = None, before: int = 0, limit: int = 100
    ) -> list[Delivery]:
        if limit <= 0:
            return []
        if endpoint is not None and status is not None:
            index = f"log:es:{status}:{endpoint}"
        elif endpoint is not None:
            index = f"log:e:{endpoint}"
        else:
            index = "log" if status is None else f"log:s:{status}"
        args = [self._wh, f"({before}" if before else "+inf", limit]
        return [_delivery(_pairs(flat)) for flat in await self._call("list_deliveries", [self._wh + index], args)]

    async def retry_delivery(self, delivery_id: str, now: float, events: Sequence[Event]) -> bool:
        keys = [self._wh + f"d:{delivery_id}", self._wh + "done"]
        return bool(await self._emit("retry_delivery", ev.SERVICE, events, keys, [self._wh, _time(now)]))

    async def open_endpoints(self, names: Sequence[str], now: float) -> list[EndpointState]:
        if not names:
            return []
        pairs = await self._call("open_endpoints", [self._wh + "eps"], [self._wh, _time(now), *names])
        return [_state(name, _pairs(flat)) for name, flat in pairs]

    async def endpoint_states(self) -> list[EndpointState]:
        pairs = await self._call("endpoint_states", [self._wh + "eps"], [self._wh])
        return sorted((_state(name, _pairs(flat)) for name, flat in pairs), key=lambda s: s.name)

    async def enable_endpoint(self, name: str, now: float, events: Sequence[Event]) -> bool:
        keys = [self._wh + f"ep:{name}", self._wh + f"due:{name}"]
        return bool(await self._emit("enable_endpoint", ev.SERVICE, events, keys, [self._wh, name, _time(now)]))

    async def trim_deliveries(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        return int(await self._call("trim_deliveries", [self._wh + "done"], [self._wh, _time(before), limit]))
