"""Webhook endpoints and deliveries as the operator sees them (the admin API and ``authmd admin
webhooks``): typed views, never a delivery's body or an endpoint's secret."""

from __future__ import annotations

import msgspec

from app.config import Settings, redact_url
from app.flows.admin.views import iso
from app.store.port import Delivery, DeliveryStatus, Store

WAITING_COUNTED = 1000  # deliveries waiting per endpoint, counted up to this


class EndpointView(msgspec.Struct, kw_only=True):
    name: str
    url: str
    events: list[str] | None
    enabled: bool
    since: str | None
    disabled_at: str | None
    last_success_at: str | None
    last_failure_at: str | None
    waiting: int  # pending deliveries, counted up to WAITING_COUNTED


class DeliveryView(msgspec.Struct, kw_only=True):
    id: str
    seq: int
    endpoint: str
    event_id: str
    event_type: str
    account_id: str
    status: DeliveryStatus
    attempts: int
    created_at: str | None
    next_at: str | None  # when a pending one is due
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    last_latency_ms: int | None
    delivered_at: str | None


class DeliveryList(msgspec.Struct, kw_only=True):
    data: list[DeliveryView]
    next_cursor: str | None  # the ``cursor`` of the next (older) page


class EndpointList(msgspec.Struct, kw_only=True):
    data: list[EndpointView]


def delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        id=d.id,
        seq=d.seq,
        endpoint=d.endpoint,
        event_id=d.event_id,
        event_type=d.event_type,
        account_id=d.account_id,
        status=d.status,
        attempts=d.attempts,
        created_at=iso(d.created_at),
        next_at=iso(d.next_at) if d.status == "pending" else None,
        last_attempt_at=iso(d.last_attempt_at),
        last_status=d.last_status,
        last_error=d.last_error,
        last_latency_ms=d.last_latency_ms,
        delivered_at=iso(d.delivered_at),
    )


async def endpoints(settings: Settings, store: Store, only: str | None = None) -> list[EndpointView]:
    """Every configured endpoint (or the one named ``only``) with its state (one the store has never seen
    is enabled)."""
    states = {s.name: s for s in await store.endpoint_states()}
    found = []
    for hook in settings.webhooks:
        if only is not None and hook.label != only:
            continue
        state = states.get(hook.label)
        waiting = await store.list_deliveries(endpoint=hook.label, status="pending", limit=WAITING_COUNTED)
        found.append(
            EndpointView(
                name=hook.label,
                url=redact_url(hook.url),
                events=hook.events,
                enabled=state is None or state.disabled_at is None,
                since=iso(state.since) if state else None,
                disabled_at=iso(state.disabled_at) if state else None,
                last_success_at=iso(state.last_success_at) if state else None,
                last_failure_at=iso(state.last_failure_at) if state else None,
                waiting=len(waiting),
            )
        )
    return found


async def deliveries_page(
    store: Store, *, endpoint: str | None, status: DeliveryStatus | None, cursor: int, limit: int
) -> DeliveryList:
    """The delivery log, newest first; ``cursor`` (0: the newest) is the previous page's ``next_cursor``."""
    found = await store.list_deliveries(endpoint=endpoint, status=status, before=cursor, limit=limit)
    next_cursor = str(found[-1].seq) if len(found) == limit else None
    return DeliveryList(data=[delivery_view(d) for d in found], next_cursor=next_cursor)
