"""One verb per state change (issue 13): the human pages, the HTTP routes and the operator CLI change
state only through a flow, never by calling a store write themselves; and the events of a grant's end
(``agent_registration.revoked``, ``agent_registration.deleted``, ``operator.action``) are made only in
the verbs' own modules (grants, and the webhook verbs).

Read from the source with ``ast``. Every method of the ``Store`` protocol is classified here, as a write
or not: a new store method fails this test until someone says which it is.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from app.store.port import Store

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ("app/routes", "app/cli")

# Store methods that change state: limits and marks, accounts and grants, people, sessions, the claim,
# notes, expiry, delivery, webhooks (taking a lease too). A session is browser state, not an account's,
# but it is still written through app/flows/session.py, so the rule holds without exceptions.
WRITES = {
    "hit_windows",
    "consume_once",
    "create_registration",
    "put_registration",
    "put_client",
    "touch_client",
    "revoke_token",
    "revoke_registration",
    "delete_account",
    "create_user",
    "save_pending_link",
    "sign_in_user",
    "put_session",
    "delete_session",
    "save_claim",
    "check_code",
    "complete_claim",
    "rotate_refresh",
    "set_not_before",
    "add_note",
    "delete_note",
    "sweep",
    "mark_delivered",
    "add_deliveries",
    "lease_deliveries",
    "finish_delivery",
    "retry_delivery",
    "enable_endpoint",
    "trim_deliveries",
    "open_endpoints",
    "add_counts",
    "trim_counts",
}
# Reads, and the connection's life (open, close, ping change no state an account or a person sees).
READS = {
    "open",
    "close",
    "ping",
    "get_registration",
    "get_account",
    "list_accounts",
    "access_state",
    "find_user_by_email",
    "get_delegation",
    "get_user",
    "owned_accounts",
    "registrations_of",
    "get_session",
    "get_client",
    "get_claim",
    "list_notes",
    "get_note",
    "events",
    "outboxes_with_pending",
    "read_outbox",
    "get_delivery",
    "list_deliveries",
    "endpoint_states",
    "read_counts",
    "account_events",
    "count_temporary",
}
# The events of a grant's end and of an operator's action, and the modules of verbs that make them.
END_EVENTS = {"RegistrationRevoked", "AccountDeleted", "OperatorAction"}
VERBS_MODULES = {"app/flows/grants.py", "app/webhooks/verbs.py"}


def _store_methods() -> set[str]:
    return {name for name, member in inspect.getmembers(Store, inspect.isfunction) if not name.startswith("_")}


def _sources(*folders: str) -> dict[str, ast.Module]:
    return {
        str(path.relative_to(ROOT)): ast.parse(path.read_text())
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


def store_writes(trees: dict[str, ast.Module]) -> list[str]:
    """``file:line name`` of every use of a store write's name as an attribute (a call, or a bound method
    taken to call later), whatever the receiver: ``ctx.store``, ``self.store``, an alias of either."""
    return [
        f"{path}:{node.lineno} {node.attr}"
        for path, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in WRITES
    ]


def end_events(trees: dict[str, ast.Module]) -> list[str]:
    """``file:line name`` of every mention of an end-of-grant event class outside the verbs' module."""
    found = []
    for path, tree in trees.items():
        if path in VERBS_MODULES:
            continue
        for node in ast.walk(tree):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in END_EVENTS:
                found.append(f"{path}:{node.lineno} {name}")
    return found


def test_every_store_method_is_classified() -> None:
    methods = _store_methods()
    assert not WRITES & READS
    assert methods - WRITES - READS == set(), "classify each new store method as a write or a read here"
    assert (WRITES | READS) - methods == set(), "these are no longer store methods: drop them here"


def test_routes_and_cli_change_state_only_through_verbs() -> None:
    assert store_writes(_sources(*ENTRY_POINTS)) == []


def test_end_of_grant_events_are_made_by_the_verbs_only() -> None:
    assert end_events(_sources("app/flows", "app/webhooks", *ENTRY_POINTS)) == []


def test_the_checks_see_a_direct_write() -> None:
    """The checks are not vacuous: the code this test replaced (a route revoking by hand) is caught."""
    before = ast.parse(
        "async def revoke(ctx, a, r, now):\n"
        "    revoked = ev.new(ev.RegistrationRevoked, now, a, r, by='human')\n"
        "    await ctx.store.revoke_registration(a, r, now, [revoked])\n"
    )
    assert store_writes({"app/routes/web.py": before}) == ["app/routes/web.py:3 revoke_registration"]
    assert end_events({"app/routes/web.py": before}) == ["app/routes/web.py:2 RegistrationRevoked"]
