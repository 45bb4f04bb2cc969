"""``authmd admin webhooks``: the configured endpoints and their health, the delivery log, and the
operator's two changes (enable a disabled endpoint, retry a failed delivery), through the verbs."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from typing import Any

from app.clock import ManualClock, rfc3339
from app.config import Settings, redact_url
from app.flows import grants
from app.store.port import Delivery, Store
from app.webhooks import verbs

LOG_LIMIT = 50


def add_arguments(verb: Callable[..., argparse.ArgumentParser]) -> None:
    hooks = verb(
        "webhooks",
        "Webhook endpoints and deliveries: list, deliveries, retry ID, enable NAME.",
        ["webhooks list", "webhooks deliveries --status failed", "webhooks retry dlv_...", "webhooks enable crm"],
    )
    sub = hooks.add_subparsers(dest="webhooks_cmd", required=True, metavar="{list,deliveries,retry,enable}")
    sub.add_parser("list", help="the configured endpoints: state, last success and failure, deliveries waiting")
    log = sub.add_parser("deliveries", help="the delivery log, newest first")
    log.add_argument("--endpoint", metavar="NAME", help="only this endpoint's")
    log.add_argument("--status", choices=["pending", "delivered", "failed"], help="only deliveries in this state")
    log.add_argument("--limit", type=int, default=LOG_LIMIT, help=f"at most this many (default {LOG_LIMIT})")
    log.add_argument("--before", type=int, default=0, metavar="SEQ", help="older than this one (the next page)")
    retry = sub.add_parser("retry", help="send a failed delivery again, next in its queue")
    retry.add_argument("delivery_id", metavar="ID")
    enable = sub.add_parser("enable", help="resume a disabled endpoint; what waits for it is sent in order")
    enable.add_argument("name", metavar="NAME")
    for parser in (sub.choices[name] for name in ("list", "deliveries", "retry", "enable")):
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="one JSON value")


def delivery_view(d: Delivery) -> dict[str, Any]:
    """A delivery as the operator sees it: never its body (the event is in `admin events`)."""
    return {
        "id": d.id,
        "seq": d.seq,
        "endpoint": d.endpoint,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "account_id": d.account_id,
        "status": d.status,
        "attempts": d.attempts,
        "created_at": rfc3339(d.created_at),
        "next_at": rfc3339(d.next_at) if d.status == "pending" else None,
        "last_attempt_at": None if d.last_attempt_at is None else rfc3339(d.last_attempt_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "last_latency_ms": d.last_latency_ms,
        "delivered_at": None if d.delivered_at is None else rfc3339(d.delivered_at),
    }


def _endpoint_line(v: dict[str, Any]) -> str:
    state = "enabled" if v["enabled"] else f"DISABLED since {v['disabled_at']}"
    return (
        f"{v['name']}  {v['url']}  {state}  waiting {v['waiting']}  "
        f"last success {v['last_success_at'] or 'never'}  last failure {v['last_failure_at'] or 'never'}"
    )


def _line(d: Delivery) -> str:
    last = f"last {d.last_status or '-'} {d.last_error or ''}".rstrip() if d.attempts else "not tried yet"
    return f"{d.id}  {d.endpoint}  {d.event_type}  {d.account_id}  {d.status}  {d.attempts} attempt(s), {last}"


async def run(args: argparse.Namespace, store: Store, settings: Settings, now: float) -> tuple[Any, list[str], bool]:
    """(JSON value, lines for a person, found): ``found`` False means exit status 1."""
    acting = grants.Actor(store, ManualClock(now))
    operator = getpass.getuser()
    match args.webhooks_cmd:
        case "list":
            states = {s.name: s for s in await store.endpoint_states()}
            value = []
            for hook in settings.webhooks:
                state = states.get(hook.label)
                waiting = await store.list_deliveries(endpoint=hook.label, status="pending", limit=1000)

                def at(ts: float | None) -> str | None:
                    return None if ts is None else rfc3339(ts)

                value.append(
                    {
                        "name": hook.label,
                        "url": redact_url(hook.url),
                        "events": hook.events,
                        "enabled": state is None or state.disabled_at is None,
                        "disabled_at": at(state.disabled_at) if state else None,
                        "last_success_at": at(state.last_success_at) if state else None,
                        "last_failure_at": at(state.last_failure_at) if state else None,
                        "waiting": len(waiting),
                    }
                )
            lines = [_endpoint_line(v) for v in value]
            return value, lines or ["no webhook endpoints are configured ([[webhooks]] in the TOML file)"], True
        case "deliveries":
            found = await store.list_deliveries(
                endpoint=args.endpoint, status=args.status, before=args.before, limit=max(1, min(args.limit, 1000))
            )
            lines = [_line(d) for d in found] or ["no deliveries"]
            if len(found) == args.limit:
                lines.append(f"next page: --before {found[-1].seq}")
            return [delivery_view(d) for d in found], lines, True
        case "retry":
            done = await verbs.retry(acting, args.delivery_id, operator=operator)
            message = "queued again, sent next" if done else "no failed delivery with this id"
            return {"ok": done, "delivery_id": args.delivery_id}, [f"{args.delivery_id}: {message}"], done
        case _:
            if args.name not in {hook.label for hook in settings.webhooks}:
                return {"ok": False, "name": args.name}, [f"{args.name}: no such webhook endpoint"], False
            done = await verbs.enable(acting, args.name, operator=operator)
            message = "enabled; what waits for it is sent now" if done else "was not disabled"
            return {"ok": done, "name": args.name}, [f"{args.name}: {message}"], done
