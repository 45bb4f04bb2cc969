"""``authmd admin webhooks``: the configured endpoints and their health, the delivery log, and the
operator's two changes (enable a disabled endpoint, retry a failed delivery), through the verbs."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from typing import Any

import msgspec

from app.clock import ManualClock
from app.config import Settings
from app.flows import grants
from app.flows.admin import webhooks as views
from app.store.port import Store
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


def _endpoint_line(v: views.EndpointView) -> str:
    state = "enabled" if v.enabled else f"DISABLED since {v.disabled_at}"
    return (
        f"{v.name}  {v.url}  {state}  waiting {v.waiting}  "
        f"last success {v.last_success_at or 'never'}  last failure {v.last_failure_at or 'never'}"
    )


def _line(d: views.DeliveryView) -> str:
    last = f"last {d.last_status or '-'} {d.last_error or ''}".rstrip() if d.attempts else "not tried yet"
    return f"{d.id}  {d.endpoint}  {d.event_type}  {d.account_id}  {d.status}  {d.attempts} attempt(s), {last}"


async def run(args: argparse.Namespace, store: Store, settings: Settings, now: float) -> tuple[Any, list[str], bool]:
    """(JSON value, lines for a person, found): ``found`` False means exit status 1."""
    acting = grants.Actor(store, ManualClock(now))
    operator = getpass.getuser()
    match args.webhooks_cmd:
        case "list":
            found = await views.endpoints(settings, store)
            lines = [_endpoint_line(v) for v in found]
            return msgspec.to_builtins(found), lines or ["no webhook endpoints are configured ([[webhooks]])"], True
        case "deliveries":
            limit = max(1, min(args.limit, 1000))
            page = await views.deliveries_page(
                store, endpoint=args.endpoint, status=args.status, cursor=args.before, limit=limit
            )
            lines = [_line(d) for d in page.data] or ["no deliveries"]
            if page.next_cursor:
                lines.append(f"next page: --before {page.next_cursor}")
            return msgspec.to_builtins(page.data), lines, True
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
