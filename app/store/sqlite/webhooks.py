"""Webhook deliveries on SQLite: one row per delivery (its record as JSON beside the columns queries
select on), one row per endpoint that has a state. Each method is one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from app import events as ev
from app.events import Event
from app.store.port import Delivery, DeliveryStatus, EndpointState
from app.store.sqlite.base import SQLiteBase
from app.store.sqlite.commit import writes

_DELIVERY = msgspec.json.Decoder(Delivery)
_STATE = msgspec.json.Decoder(EndpointState)
_ENCODE = msgspec.json.Encoder()
# The oldest pending delivery of its (endpoint, account) queue: the only one that may be sent.
_HEAD = (
    "NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.endpoint = d.endpoint AND e.account_id = d.account_id "
    "AND e.status = 'pending' AND e.ord < d.ord)"
)


class SQLiteWebhooks(SQLiteBase):
    def _put(self, conn: sqlite3.Connection, d: Delivery) -> None:
        conn.execute(
            "UPDATE deliveries SET status = ?, next_at = ?, leased_until = ?, data = ? WHERE id = ?",
            (d.status, d.next_at, d.leased_until, _ENCODE.encode(d), d.id),
        )

    @writes
    def _add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        added = 0
        with self._write() as conn:
            for d in deliveries:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO deliveries (id, endpoint, account_id, ord, status, next_at, created_at, "
                    "data) VALUES (?, ?, ?, 0, 'pending', ?, ?, x'')",
                    (d.id, d.endpoint, d.account_id, d.next_at, d.created_at),
                )
                if cur.rowcount:
                    seq = cur.lastrowid
                    stored = msgspec.structs.replace(d, seq=seq, status="pending", leased_by=None, leased_until=None)
                    conn.execute(
                        "UPDATE deliveries SET ord = ?, data = ? WHERE seq = ?", (seq, _ENCODE.encode(stored), seq)
                    )
                    added += 1
        return added

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        return await self._run(self._add_deliveries, deliveries)

    @writes
    def _lease_deliveries(
        self, endpoints: Sequence[str], now: float, holder: str, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        if not endpoints:
            return []
        marks = ", ".join("?" for _ in endpoints)
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT data FROM deliveries d WHERE d.status = 'pending' AND d.endpoint IN ({marks}) "
                f"AND d.next_at <= ? AND COALESCE(d.leased_until, 0) <= ? AND {_HEAD} "
                "ORDER BY d.next_at, d.seq LIMIT ?",
                (*endpoints, now, now, limit),
            ).fetchall()
            leased = [
                msgspec.structs.replace(_DELIVERY.decode(r[0]), leased_by=holder, leased_until=now + lease_seconds)
                for r in rows
            ]
            for d in leased:
                self._put(conn, d)
        return leased

    async def lease_deliveries(
        self, endpoints: Sequence[str], now: float, holder: str, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        return await self._run(self._lease_deliveries, endpoints, now, holder, lease_seconds, limit)

    def _state(self, conn: sqlite3.Connection, name: str) -> EndpointState:
        row = conn.execute("SELECT data FROM webhook_endpoints WHERE name = ?", (name,)).fetchone()
        return _STATE.decode(row[0]) if row else EndpointState(name=name)

    def _put_state(self, conn: sqlite3.Connection, state: EndpointState) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO webhook_endpoints (name, data) VALUES (?, ?)", (state.name, _ENCODE.encode(state))
        )

    @writes
    def _finish_delivery(self, delivery: Delivery, holder: str, events: Sequence[Event]) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT data FROM deliveries WHERE id = ?", (delivery.id,)).fetchone()
            if row is None:
                return False
            stored = _DELIVERY.decode(row[0])
            if stored.status != "pending" or stored.leased_by != holder:
                return False
            done = msgspec.structs.replace(delivery, seq=stored.seq, leased_by=None, leased_until=None)
            self._put(conn, done)
            state = self._state(conn, delivery.endpoint)
            at = delivery.last_attempt_at
            if done.status == "delivered":
                state = msgspec.structs.replace(state, last_success_at=at)
            else:
                state = msgspec.structs.replace(state, last_failure_at=at)
            if any(isinstance(e, ev.WebhookEndpointDisabled) for e in events):
                if state.disabled_at is None:
                    state = msgspec.structs.replace(state, disabled_at=at)
                else:  # another delivery disabled it first: one event says so
                    events = [e for e in events if not isinstance(e, ev.WebhookEndpointDisabled)]
            self._put_state(conn, state)
            self._append(conn, events)
        return True

    async def finish_delivery(self, delivery: Delivery, holder: str, events: Sequence[Event] = ()) -> bool:
        return await self._run(self._finish_delivery, delivery, holder, events)

    def _get_delivery(self, delivery_id: str) -> Delivery | None:
        row = self.conn.execute("SELECT data FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return _DELIVERY.decode(row[0]) if row else None

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        return await self._run(self._get_delivery, delivery_id)

    def _list_deliveries(
        self, endpoint: str | None, status: DeliveryStatus | None, before: int, limit: int
    ) -> list[Delivery]:
        where: list[str] = ["seq < ?"]
        args: list[object] = [before or 2**62]
        if endpoint is not None:
            where.append("endpoint = ?")
            args.append(endpoint)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        rows = self.conn.execute(
            f"SELECT data FROM deliveries WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?", (*args, limit)
        )
        return [_DELIVERY.decode(r[0]) for r in rows.fetchall()]

    async def list_deliveries(
        self, *, endpoint: str | None = None, status: DeliveryStatus | None = None, before: int = 0, limit: int = 100
    ) -> list[Delivery]:
        return await self._run(self._list_deliveries, endpoint, status, before, limit)

    @writes
    def _retry_delivery(self, delivery_id: str, now: float, events: Sequence[Event]) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT data FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None or (d := _DELIVERY.decode(row[0])).status != "failed":
                return False
            first = conn.execute(
                "SELECT MIN(ord) FROM deliveries WHERE endpoint = ? AND account_id = ? AND status = 'pending'",
                (d.endpoint, d.account_id),
            ).fetchone()[0]
            again = msgspec.structs.replace(d, status="pending", attempts=0, next_at=now)
            self._put(conn, again)
            if first is not None:  # sent next: before the queue's oldest pending one
                conn.execute("UPDATE deliveries SET ord = ? WHERE id = ?", (first - 1, d.id))
            self._append(conn, events)
        return True

    async def retry_delivery(self, delivery_id: str, now: float, events: Sequence[Event]) -> bool:
        return await self._run(self._retry_delivery, delivery_id, now, events)

    @writes
    def _open_endpoints(self, names: Sequence[str], now: float) -> list[EndpointState]:
        with self._write() as conn:
            for name in names:
                conn.execute(
                    "INSERT OR IGNORE INTO webhook_endpoints (name, data) VALUES (?, ?)",
                    (name, _ENCODE.encode(EndpointState(name=name, since=now))),
                )
            return [self._state(conn, name) for name in names]

    async def open_endpoints(self, names: Sequence[str], now: float) -> list[EndpointState]:
        return await self._run(self._open_endpoints, names, now)

    def _endpoint_states(self) -> list[EndpointState]:
        rows = self.conn.execute("SELECT data FROM webhook_endpoints ORDER BY name").fetchall()
        return [_STATE.decode(r[0]) for r in rows]

    async def endpoint_states(self) -> list[EndpointState]:
        return await self._run(self._endpoint_states)

    @writes
    def _enable_endpoint(self, name: str, now: float, events: Sequence[Event]) -> bool:
        with self._write() as conn:
            state = self._state(conn, name)
            if state.disabled_at is None:
                return False
            self._put_state(conn, msgspec.structs.replace(state, disabled_at=None))
            # Due now: the backlog flows at once instead of at the retry times it had when disabled.
            for (data,) in conn.execute(
                "SELECT data FROM deliveries WHERE endpoint = ? AND status = 'pending' AND next_at > ?", (name, now)
            ).fetchall():
                self._put(conn, msgspec.structs.replace(_DELIVERY.decode(data), next_at=now))
            self._append(conn, events)
        return True

    async def enable_endpoint(self, name: str, now: float, events: Sequence[Event]) -> bool:
        return await self._run(self._enable_endpoint, name, now, events)

    @writes
    def _trim_deliveries(self, before: float, limit: int) -> int:
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries "
                "WHERE status != 'pending' AND created_at < ? ORDER BY seq LIMIT ?)",
                (before, limit),
            )
            return cur.rowcount

    async def trim_deliveries(self, before: float, limit: int) -> int:
        return await self._run(self._trim_deliveries, before, limit)
