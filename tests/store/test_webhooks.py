"""Webhooks: deliveries queued per (endpoint, account), leased one holder at a time, their outcomes, the
endpoints' states (spec/webhooks.md).

The store contract, one file per port: written only against the port (app/store/port.py), run on every
backend by the ``store`` fixture. Time is always an explicit ``now``.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from app import events as ev
from app.store.port import Delivery, Store
from tests.store.conftest import StoreInstances
from tests.store.records import T0

pytestmark = pytest.mark.anyio
LEASE = 30.0


def delivery(event_id: str, account_id: str = "acct_1", endpoint: str = "crm", **extra: object) -> Delivery:
    values: dict[str, object] = {
        "id": f"dlv_{endpoint}_{event_id}",
        "endpoint": endpoint,
        "event_id": event_id,
        "event_type": "agent_registration.created",
        "account_id": account_id,
        "body": f'{{"type":"agent_registration.created","id":"{event_id}"}}',
        "created_at": T0,
        "next_at": T0,
    }
    values.update(extra)
    return Delivery(**values)  # type: ignore[arg-type]


def sent(d: Delivery, at: float = T0 + 1, status: int = 204) -> Delivery:
    return msgspec.structs.replace(
        d, status="delivered", attempts=d.attempts + 1, last_attempt_at=at, last_status=status, delivered_at=at
    )


def failed_once(d: Delivery, at: float, next_at: float, *, final: bool = False) -> Delivery:
    return msgspec.structs.replace(
        d,
        status="failed" if final else "pending",
        attempts=d.attempts + 1,
        next_at=next_at,
        last_attempt_at=at,
        last_status=503,
        last_error="HTTP 503",
        last_latency_ms=12,
    )


def disabling(d: Delivery, at: float, attempts: int = 1, status: int | None = None) -> ev.Event:
    """The event a delivery that gives up hands in: its endpoint is disabled."""
    error = "timed out" if status is None else f"HTTP {status}"
    return ev.new(
        ev.WebhookEndpointDisabled,
        at,
        ev.SERVICE,
        None,
        endpoint=d.endpoint,
        delivery_id=d.id,
        attempts=attempts,
        last_status=status,
        last_error=error,
    )


def ids(found: list[Delivery]) -> list[str]:
    return [d.event_id for d in found]


async def test_adding_is_idempotent_and_keeps_the_record(store: Store) -> None:
    batch = [delivery("e1"), delivery("e2"), delivery("e1", endpoint="audit")]
    assert await store.add_deliveries(batch) == 3
    assert await store.add_deliveries([delivery("e1"), delivery("e3")]) == 1  # e1 once, whatever happens
    stored = await store.get_delivery("dlv_crm_e1")
    assert stored is not None and stored.seq > 0
    assert msgspec.structs.replace(stored, seq=0) == batch[0]
    assert await store.get_delivery("dlv_missing") is None


async def test_only_the_head_of_a_queue_is_leased_and_only_once(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("e2"), delivery("f1", account_id="acct_2")])
    first = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    assert sorted(ids(first)) == ["e1", "f1"]  # e2 waits behind e1: in order per account
    assert all(d.leased_by == "i1" and d.leased_until == T0 + LEASE for d in first)
    assert await store.lease_deliveries(["crm"], T0 + 1, "i2", LEASE, 10) == []  # leased, and e2 is no head
    # A holder that died: its lease runs out, another takes the same deliveries.
    again = await store.lease_deliveries(["crm"], T0 + LEASE, "i2", LEASE, 10)
    assert sorted(ids(again)) == ["e1", "f1"] and {d.leased_by for d in again} == {"i2"}
    e1 = next(d for d in first if d.event_id == "e1")
    assert await store.finish_delivery(sent(e1), "i1") is False  # i1 lost its lease: nothing written
    assert (await store.get_delivery(e1.id)).status == "pending"  # type: ignore[union-attr]


async def test_a_delivered_head_lets_the_next_one_go(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("e2")])
    [e1] = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    assert await store.finish_delivery(sent(e1), "i1") is True
    stored = await store.get_delivery(e1.id)
    assert stored is not None and (stored.status, stored.leased_by, stored.last_status) == ("delivered", None, 204)
    assert ids(await store.lease_deliveries(["crm"], T0 + 1, "i1", LEASE, 10)) == ["e2"]
    [state] = await store.endpoint_states()
    assert (state.name, state.last_success_at, state.disabled_at) == ("crm", T0 + 1, None)


async def test_a_failed_attempt_holds_the_queue_until_its_retry_is_due(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("e2")])
    [e1] = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    assert await store.finish_delivery(failed_once(e1, T0 + 1, T0 + 60), "i1")
    assert await store.lease_deliveries(["crm"], T0 + 59, "i1", LEASE, 10) == []  # e2 waits behind e1
    [retried] = await store.lease_deliveries(["crm"], T0 + 60, "i1", LEASE, 10)
    assert (retried.event_id, retried.attempts, retried.last_error) == ("e1", 1, "HTTP 503")
    [state] = await store.endpoint_states()
    assert state.last_failure_at == T0 + 1 and state.last_success_at is None


async def test_giving_up_disables_the_endpoint_with_its_event_and_the_queue_moves_on(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("e2")])
    [e1] = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    gave_up = failed_once(e1, T0 + 5, T0 + 5, final=True)
    disabled = disabling(e1, T0 + 5, status=503)
    assert await store.finish_delivery(gave_up, "i1", [disabled])
    [state] = await store.endpoint_states()
    assert state.disabled_at == T0 + 5
    assert disabled in await store.read_outbox(ev.SERVICE)
    assert (await store.get_delivery(e1.id)).status == "failed"  # type: ignore[union-attr]
    # The next one is the head now (the caller does not lease a disabled endpoint's deliveries).
    assert ids(await store.lease_deliveries(["crm"], T0 + 6, "i1", LEASE, 10)) == ["e2"]


async def test_enabling_makes_the_backlog_due_now(store: Store) -> None:
    await store.add_deliveries([delivery("e1")])
    action = ev.new(ev.OperatorAction, T0, ev.SERVICE, None, operator="ada", action="webhook.enable", endpoint="crm")
    assert await store.enable_endpoint("crm", T0, [action]) is False  # never disabled
    [e1] = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    disabled = disabling(e1, T0, attempts=3)
    # Disabled while this delivery still had a retry ahead, an hour away.
    assert await store.finish_delivery(failed_once(e1, T0, T0 + 3600), "i1", [disabled])
    assert await store.enable_endpoint("crm", T0 + 10, [action]) is True
    [state] = await store.endpoint_states()
    assert state.disabled_at is None
    assert ids(await store.lease_deliveries(["crm"], T0 + 10, "i1", LEASE, 10)) == ["e1"]
    assert action in await store.read_outbox(ev.SERVICE)
    assert await store.enable_endpoint("crm", T0 + 11, [action]) is False


async def test_a_manual_retry_sends_a_failed_delivery_next(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("e2"), delivery("e3")])
    [e1] = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    assert await store.finish_delivery(failed_once(e1, T0, T0, final=True), "i1")
    action = ev.new(ev.OperatorAction, T0, ev.SERVICE, None, operator="ada", action="webhook.retry", delivery_id=e1.id)
    assert await store.retry_delivery("dlv_crm_e2", T0, [action]) is False  # pending: nothing to retry
    assert await store.retry_delivery("dlv_missing", T0, [action]) is False
    assert await store.retry_delivery(e1.id, T0 + 1, [action]) is True
    stored = await store.get_delivery(e1.id)
    assert stored is not None and (stored.status, stored.attempts, stored.next_at) == ("pending", 0, T0 + 1)
    assert ids(await store.lease_deliveries(["crm"], T0 + 1, "i1", LEASE, 10)) == ["e1"]  # before e2
    assert action in await store.read_outbox(ev.SERVICE)


async def test_leases_only_for_the_endpoints_named(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("e1", endpoint="audit"), delivery("e2", endpoint="audit")])
    assert ids(await store.lease_deliveries(["audit"], T0, "i1", LEASE, 10)) == ["e1"]
    assert [d.endpoint for d in await store.lease_deliveries(["crm", "audit"], T0, "i1", LEASE, 10)] == ["crm"]
    assert await store.lease_deliveries([], T0, "i1", LEASE, 10) == []
    future = delivery("late", account_id="acct_9", next_at=T0 + 100)
    await store.add_deliveries([future])
    # Not due yet (e1 is leased again: its lease ran out unfinished).
    assert ids(await store.lease_deliveries(["crm"], T0 + 99, "i1", LEASE, 10)) == ["e1"]
    assert ids(await store.lease_deliveries(["crm"], T0 + 100, "i2", LEASE, 10)) == ["late"]


async def test_the_log_lists_newest_first_by_endpoint_and_status(store: Store) -> None:
    await store.add_deliveries([delivery(f"e{i}", account_id=f"acct_{i}") for i in range(5)])
    await store.add_deliveries([delivery("x1", endpoint="audit")])
    everything = await store.list_deliveries()
    assert ids(everything) == ["x1", "e4", "e3", "e2", "e1", "e0"]
    page = await store.list_deliveries(endpoint="crm", limit=2)
    assert ids(page) == ["e4", "e3"]
    assert ids(await store.list_deliveries(endpoint="crm", before=page[-1].seq, limit=2)) == ["e2", "e1"]
    [e0] = [d for d in await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10) if d.event_id == "e0"][:1]
    assert await store.finish_delivery(sent(e0), "i1")
    assert ids(await store.list_deliveries(status="delivered")) == ["e0"]
    assert ids(await store.list_deliveries(endpoint="audit", status="pending")) == ["x1"]


async def test_trimming_forgets_only_finished_deliveries_before_the_time(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("e2", account_id="acct_2")])
    [a, b] = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    assert await store.finish_delivery(sent(a), "i1")
    assert await store.trim_deliveries(T0, 100) == 0  # made at T0: not before T0
    assert await store.trim_deliveries(T0 + 1, 100) == 1
    assert await store.get_delivery(a.id) is None and await store.get_delivery(b.id) is not None


async def test_racing_holders_never_lease_the_same_delivery(stores: StoreInstances) -> None:
    instances = [await stores.open() for _ in range(3)]
    await instances[0].add_deliveries([delivery(f"e{i}", account_id=f"acct_{i}") for i in range(12)])
    leases = await asyncio.gather(
        *(instances[i % 3].lease_deliveries(["crm"], T0, f"i{i}", LEASE, 3) for i in range(8))
    )
    taken = [d.id for batch in leases for d in batch]
    assert len(taken) == len(set(taken)) == 12


async def test_an_endpoint_is_opened_once_and_keeps_its_first_time(store: Store) -> None:
    first = await store.open_endpoints(["crm", "audit"], T0)
    assert [(s.name, s.since, s.disabled_at) for s in first] == [("crm", T0, None), ("audit", T0, None)]
    later = await store.open_endpoints(["audit", "new"], T0 + 50)
    assert [(s.name, s.since) for s in later] == [("audit", T0), ("new", T0 + 50)]
    assert sorted(s.name for s in await store.endpoint_states()) == ["audit", "crm", "new"]
    # A state written by a delivery's outcome keeps the time the endpoint was opened.
    await store.add_deliveries([delivery("e1")])
    [e1] = await store.lease_deliveries(["crm"], T0 + 60, "i1", LEASE, 10)
    assert await store.finish_delivery(sent(e1, T0 + 61), "i1")
    [crm] = await store.open_endpoints(["crm"], T0 + 99)
    assert (crm.since, crm.last_success_at) == (T0, T0 + 61)


async def test_a_retry_while_the_next_one_is_in_flight_keeps_the_queue_whole(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("e2"), delivery("e3")])
    [e1] = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    assert await store.finish_delivery(failed_once(e1, T0, T0, final=True), "i1")
    [e2] = await store.lease_deliveries(["crm"], T0 + 1, "i1", LEASE, 10)
    action = ev.new(ev.OperatorAction, T0, ev.SERVICE, None, operator="ada", action="webhook.retry", delivery_id=e1.id)
    assert await store.retry_delivery(e1.id, T0 + 2, [action])
    # e1 is the head again (sent next) while e2, no longer the head, is still in flight.
    [again] = await store.lease_deliveries(["crm"], T0 + 2, "i2", LEASE, 10)
    assert again.id == e1.id
    assert await store.finish_delivery(sent(e2, T0 + 3), "i1")
    assert await store.lease_deliveries(["crm"], T0 + 3, "i3", LEASE, 10) == []  # e1 still leased
    assert await store.finish_delivery(sent(again, T0 + 4), "i2")
    assert ids(await store.lease_deliveries(["crm"], T0 + 4, "i3", LEASE, 10)) == ["e3"]
    assert ids(await store.list_deliveries(status="delivered")) == ["e2", "e1"]


async def test_two_deliveries_giving_up_disable_once_with_one_event(store: Store) -> None:
    await store.add_deliveries([delivery("e1"), delivery("f1", account_id="acct_2")])
    leased = await store.lease_deliveries(["crm"], T0, "i1", LEASE, 10)
    assert len(leased) == 2

    for n, d in enumerate(leased):
        assert await store.finish_delivery(failed_once(d, T0 + n, T0 + n, final=True), "i1", [disabling(d, T0 + n)])
    [state] = await store.endpoint_states()
    assert state.disabled_at == T0  # the first disabling's time
    written = [e for e in await store.read_outbox(ev.SERVICE) if isinstance(e, ev.WebhookEndpointDisabled)]
    assert [e.delivery_id for e in written] == [leased[0].id]
    for d in leased:
        assert (await store.get_delivery(d.id)).status == "failed"  # type: ignore[union-attr]
