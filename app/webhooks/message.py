"""What an endpoint receives: the body (fixed when the delivery is made, so every retry sends the same
bytes) and the Standard Webhooks headers (signed at each attempt, with that attempt's time)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec
from standardwebhooks.webhooks import Webhook as Signer

from app import events as ev
from app.config import Secret, Webhook
from app.store.port import Delivery


def body(event: ev.Event) -> str:
    """``{"id", "type", "timestamp", "data"}``: the shape Standard Webhooks recommends; ``data`` holds the
    event's own fields (account, registration, payload), ``id`` is also the ``webhook-id``."""
    fields = msgspec.to_builtins(event)
    data = {k: v for k, v in fields.items() if k not in ("type", "id", "at")}
    stamp = datetime.fromtimestamp(event.at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return msgspec.json.encode({"id": event.id, "type": ev.type_of(event), "timestamp": stamp, "data": data}).decode()


def delivery_id(endpoint: str, event_id: str) -> str:
    """The same for the same pair, so a fan-out that runs twice stores one delivery."""
    return "dlv_" + hashlib.sha256(f"{endpoint}\n{event_id}".encode()).hexdigest()[:24]


def make(endpoint: Webhook, event: ev.Event, now: float) -> Delivery:
    return Delivery(
        id=delivery_id(endpoint.label, event.id),
        endpoint=endpoint.label,
        event_id=event.id,
        event_type=ev.type_of(event),
        account_id=event.account_id,
        body=body(event),
        created_at=now,
        next_at=now,
    )


def headers(delivery: Delivery, secrets: list[Secret], at: float) -> dict[str, str]:
    """``webhook-id`` (the event id: the same on every retry and for every endpoint, for de-duplication),
    ``webhook-timestamp`` and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``
    once per live secret, space-separated (both during a rotation)."""
    when = datetime.fromtimestamp(int(at), UTC)
    signatures = [Signer(s.reveal()).sign(delivery.event_id, when, delivery.body) for s in secrets]
    return {
        "content-type": "application/json",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": " ".join(signatures),
    }
