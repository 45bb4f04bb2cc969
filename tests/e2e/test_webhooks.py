"""Webhooks against real servers: `authmd serve` processes deliver to a real receiver (an HTTP server in
this process), which checks every signature with the standardwebhooks package and with an independent
verifier, and records what arrived, when, and whether a delivery was ever in flight twice at once.
What the store holds is read as an operator would, with `authmd admin`."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.common import IDENTITY, REVOKE, shared_env
from tests.e2e.conftest import ROOT, ServerProcess, StartServer, wait_until
from tests.e2e.test_admin import admin
from tests.e2e.test_admin_api import READER, WRITER, Admin, admin_config, walk
from tests.redis_servers import RedisServer
from tests.webhook_receiver import Receiver, verify

pytestmark = pytest.mark.e2e
FAST = {
    "webhook_poll_seconds": 0.05,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_seconds": 0.2,
    "webhook_timeout_seconds": 1.0,
}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def write_config(path: Path, receiver: Receiver, secret: str, **settings: Any) -> Path:
    values = {**FAST, **settings}
    hook = values.pop("hook", {})
    lines = [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in values.items()]
    lines += ["[[webhooks]]", 'name = "crm"', f'url = "{receiver.url}"', f'secret = "{secret}"']
    lines += [f'{k} = "{v}"' for k, v in hook.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


def register(http: httpx.Client, server: ServerProcess, name: str) -> dict[str, Any]:
    r = http.post(f"{server.origin}{IDENTITY}", json={"type": "anonymous", "agent": {"name": name}})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def store_events(server: ServerProcess) -> list[dict[str, Any]]:
    run = admin(server, "events", "--json")
    assert run.code == 0, run
    events: list[dict[str, Any]] = run.json()
    return events


def arrived_ids(receiver: Receiver) -> set[str]:
    return {r.webhook_id for r in receiver.received()}


def all_arrived(
    server: ServerProcess, receiver: Receiver, at_least: int, before: frozenset[str] = frozenset()
) -> list[dict[str, Any]] | None:
    """The store's events (once there are ``at_least``) if every one not in ``before`` has arrived."""
    events = store_events(server)
    wanted = {e["id"] for e in events} - before
    return events if len(events) >= at_least and wanted <= arrived_ids(receiver) else None


def test_every_event_arrives_signed_and_in_order_per_account(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "app", "keys", "webhook-secret"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    secret = made.stdout.strip()  # what an operator pastes into the [[webhooks]] entry
    config = write_config(tmp_path / "authmd.toml", receiver, secret)
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    regs = [register(http, server, f"agent-{i}") for i in range(3)]
    r = http.post(f"{server.origin}{REVOKE}", data={"token": regs[0]["identity"]["assertion"]})
    assert r.status_code == 200  # the agent ends its temporary account: agent_registration.deleted
    # created + credential_issued each, then the deletion
    events = wait_until(lambda: all_arrived(server, receiver, 7), 30, "every event at the receiver")
    assert {e["type"] for e in events} >= {
        "agent_registration.created",
        "agent_registration.credential_issued",
        "agent_registration.deleted",
    }
    first_seen: dict[str, int] = {}
    for n, got in enumerate(receiver.received()):
        # Both verifiers accept every request; the body is the event, under its own id.
        Webhook(secret).verify(got.body, got.headers)
        assert verify(secret, got.headers, got.body)
        assert not verify(new_secret(), got.headers, got.body)
        body = got.json()
        assert body["id"] == got.webhook_id and got.headers["content-type"] == "application/json"
        assert body["timestamp"].endswith("Z") and "at" not in body["data"]
        first_seen.setdefault(got.webhook_id, n)
    by_id = {e["id"]: e for e in events}
    for got in receiver.received():
        stored, body = by_id[got.webhook_id], got.json()
        assert (body["type"], body["data"]["account_id"]) == (stored["type"], stored["account_id"])
    per_account: dict[str, list[str]] = defaultdict(list)
    for e in events:
        per_account[e["account_id"]].append(e["id"])
    for account_id, ids in per_account.items():
        assert sorted(ids, key=first_seen.__getitem__) == ids, f"out of order for {account_id}"
    assert receiver.overlaps == []
    # Nothing secret in what was sent: no assertion, no claim token.
    sent = b"".join(r.body for r in receiver.received())
    for reg in regs:
        assert reg["identity"]["assertion"].encode() not in sent
        assert reg["claim"]["token"].encode() not in sent


def test_an_endpoint_down_for_a_while_gets_everything_once_up(
    start_server: StartServer, tmp_path: Path, http: httpx.Client
) -> None:
    receiver = Receiver()  # not started: its port refuses connections
    secret = new_secret()
    config = write_config(tmp_path / "authmd.toml", receiver, secret, webhook_max_attempts=10_000)
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    for i in range(4):
        register(http, server, f"agent-{i}")

    def retried() -> list[dict[str, Any]] | None:
        run = admin(server, "webhooks", "deliveries", "--json")
        found: list[dict[str, Any]] = run.json()
        heads = [d for d in found if d["event_type"] == "agent_registration.created"]
        return found if len(found) == 8 and len(heads) == 4 and all(d["attempts"] >= 2 for d in heads) else None

    log = wait_until(retried, 30, "the head of every queue tried and failed at least twice")
    assert all(d["status"] == "pending" for d in log)
    # In order per account: the second event of each account waits behind its first, never tried.
    assert sorted(d["attempts"] for d in log if d["event_type"] != "agent_registration.created") == [0] * 4
    heads = [d for d in log if d["event_type"] == "agent_registration.created"]
    assert all(d["last_status"] is None and d["last_error"] == "Connection refused" for d in heads), heads
    try:
        receiver.start()
        events = wait_until(lambda: all_arrived(server, receiver, 8), 30, "the backlog delivered")
        # At least once, and exactly once per webhook-id after de-duplication.
        assert sorted(arrived_ids(receiver)) == sorted(e["id"] for e in events)
        delivered = wait_until(
            lambda: (
                [d for d in admin(server, "webhooks", "deliveries", "--json").json() if d["status"] == "delivered"]
                if all(d["status"] == "delivered" for d in admin(server, "webhooks", "deliveries", "--json").json())
                else None
            ),
            30,
            "every delivery marked delivered",
        )
        assert len(delivered) == 8 and all(d["last_status"] == 204 and d["last_error"] is None for d in delivered)
        listing = admin(server, "webhooks", "list", "--json").json()
        assert [(e["name"], e["enabled"], e["waiting"]) for e in listing] == [("crm", True, 0)]
        assert listing[0]["last_success_at"] and listing[0]["last_failure_at"]
    finally:
        receiver.stop()


def test_a_delivery_in_flight_when_the_server_is_killed_is_sent_after_the_restart(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    secret = new_secret()
    config = write_config(tmp_path / "authmd.toml", receiver, secret, webhook_timeout_seconds=3.0)
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    receiver.held.clear()  # the endpoint takes the request and does not answer
    register(http, server, "agent")
    first = wait_until(receiver.received, 30, "a delivery in flight")[0]
    server.kill()  # kill -9 while the request is open: no outcome was stored
    receiver.held.set()
    server.start()
    wait_until(lambda: [r for r in receiver.received() if r.webhook_id == first.webhook_id][1:], 30, "sent again")
    events = wait_until(lambda: all_arrived(server, receiver, 2), 30, "every event delivered")
    assert len(events) == 2 and first.webhook_id in {e["id"] for e in events}
    delivered = admin(server, "webhooks", "deliveries", "--json").json()
    assert {d["status"] for d in delivered} == {"delivered"}


def test_two_instances_on_redis_send_each_delivery_from_one_place_at_a_time(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, redis_server: RedisServer, http: httpx.Client
) -> None:
    secret = new_secret()
    config = write_config(tmp_path / "authmd.toml", receiver, secret)
    env = shared_env(redis_server, tmp_path, {"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    servers = [start_server(env), start_server(env)]
    for i in range(12):
        register(http, servers[i % 2], f"agent-{i}")
    events = wait_until(lambda: all_arrived(servers[0], receiver, 24), 60, "every event at the receiver")
    assert sorted(arrived_ids(receiver)) == sorted(e["id"] for e in events)
    assert receiver.overlaps == []  # never in flight twice at once
    for got in receiver.received():
        assert verify(secret, got.headers, got.body)


def test_a_rotation_signs_with_both_secrets(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    new, old = new_secret(), new_secret()
    config = write_config(tmp_path / "authmd.toml", receiver, new, hook={"previous_secret": old})
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    register(http, server, "agent")
    wait_until(lambda: all_arrived(server, receiver, 2), 30, "both events")
    for got in receiver.received():
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        # A receiver still on the old secret and one already on the new both accept.
        Webhook(old).verify(got.body, got.headers)
        Webhook(new).verify(got.body, got.headers)
        assert verify(old, got.headers, got.body) and verify(new, got.headers, got.body)
    # The configuration shows neither secret.
    shown = admin(server, "webhooks", "list", "--json")
    assert new not in shown.out and old not in shown.out


def test_an_endpoint_that_keeps_failing_is_disabled_then_enabled(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    secret = new_secret()
    config = write_config(tmp_path / "authmd.toml", receiver, secret, webhook_max_attempts=3)
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    receiver.status = 503
    register(http, server, "agent")

    def disabled() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = admin(server, "events", "--type", "webhook_endpoint.disabled", "--json").json()
        return found or None

    [event] = wait_until(disabled, 30, "the endpoint disabled")
    assert event["account_id"] == "service" and event["data"]["endpoint"] == "crm"
    assert event["data"]["attempts"] == 3 and event["data"]["last_error"] == "HTTP 503"
    wait_until(lambda: "the endpoint is disabled until" in server.read_log(), 10, "the log line")
    [listed] = admin(server, "webhooks", "list", "--json").json()
    assert listed["enabled"] is False and listed["disabled_at"]
    failed = [d for d in admin(server, "webhooks", "deliveries", "--json").json() if d["status"] == "failed"]
    assert [d["id"] for d in failed] == [event["data"]["delivery_id"]]
    tried = len(receiver.received())
    # While disabled nothing is sent (the next event waits); once enabled, it all flows, in order.
    receiver.status = 204
    register(http, server, "agent-2")
    assert admin(server, "webhooks", "retry", "dlv_unknown").code == 1
    assert admin(server, "webhooks", "enable", "nope").code == 1
    enabled = admin(server, "webhooks", "enable", "crm", "--json")
    assert enabled.code == 0 and enabled.json() == {"ok": True, "name": "crm"}
    assert admin(server, "webhooks", "enable", "crm").code == 1  # not disabled any more
    assert admin(server, "webhooks", "retry", failed[0]["id"]).code == 0
    wait_until(lambda: all_arrived(server, receiver, 5), 30, "the backlog and the retried delivery")
    assert len(receiver.received()) > tried
    actions = admin(server, "events", "--type", "operator.action", "--json").json()
    assert [a["data"]["action"] for a in actions] == ["webhook.enable", "webhook.retry"]


def test_a_redirect_is_a_failure_and_is_not_followed(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    elsewhere = Receiver().start()
    try:
        receiver.status, receiver.location = 307, elsewhere.url
        config = write_config(tmp_path / "authmd.toml", receiver, new_secret(), webhook_max_attempts=10_000)
        server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
        register(http, server, "agent")

        def redirected() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = admin(server, "webhooks", "deliveries", "--json").json()
            return [d for d in found if d["attempts"] >= 2] or None

        [head] = wait_until(redirected, 30, "the first delivery tried twice")
        assert (head["status"], head["last_status"]) == ("pending", 307)
        assert head["last_error"] == "HTTP 307 (redirects are not followed)"
        assert elsewhere.received() == []
    finally:
        elsewhere.stop()


def test_an_endpoint_added_later_receives_what_happens_from_then_on(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    server = start_server({"AUTHMD_POW_MODE": "off"})  # no webhooks yet: the outboxes wait, unread
    register(http, server, "before")
    history = frozenset(e["id"] for e in store_events(server))
    server.stop()
    config = write_config(tmp_path / "authmd.toml", receiver, new_secret())
    server.overrides["AUTHMD_CONFIG"] = str(config)
    server.start()
    register(http, server, "after")
    events = wait_until(lambda: all_arrived(server, receiver, 4, history), 30, "the new events")
    assert arrived_ids(receiver) == {e["id"] for e in events} - history
    assert len(arrived_ids(receiver)) == 2


def test_the_admin_api_shows_the_log_and_makes_the_two_changes(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    config = write_config(tmp_path / "authmd.toml", receiver, new_secret(), webhook_max_attempts=2)
    config.write_text(config.read_text() + admin_config(tmp_path).read_text())
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    ops, viewer = Admin(http, server, WRITER), Admin(http, server, READER)
    receiver.status = 500
    for i in range(3):
        register(http, server, f"agent-{i}")

    def disabled() -> dict[str, Any] | None:
        [endpoint] = viewer.get("/webhooks").json()["data"]
        return endpoint if not endpoint["enabled"] else None

    endpoint = wait_until(disabled, 30, "the endpoint disabled")
    assert endpoint["name"] == "crm" and endpoint["since"] and endpoint["disabled_at"] and endpoint["waiting"] >= 1
    assert "secret" not in json.dumps(endpoint)
    # The log, newest first, walked page by page to its end.
    log, pages = walk(viewer, "/webhooks/deliveries", "cursor", limit=2)
    assert len(log) == 7 and pages == 4  # 6 of the agents' events, and the one saying the endpoint is disabled
    assert [d["seq"] for d in log] == sorted((d["seq"] for d in log), reverse=True)
    failed = viewer.get("/webhooks/deliveries", status="failed").json()["data"]
    assert failed and all(d["attempts"] == 2 and d["last_status"] == 500 for d in failed)
    assert viewer.get("/webhooks/deliveries", cursor="0").status_code == 400
    # Changes need admin:write; an unknown one is 404, a pending one cannot be retried.
    assert viewer.post("/webhooks/crm/enable").status_code == 403
    assert ops.post("/webhooks/nope/enable").status_code == 404
    assert ops.post("/webhooks/deliveries/dlv_nope/retry").status_code == 404
    pending = viewer.get("/webhooks/deliveries", status="pending").json()["data"]
    assert ops.post(f"/webhooks/deliveries/{pending[0]['id']}/retry").json()["error"] == "invalid_request"
    receiver.status = 204
    enabled = ops.post("/webhooks/crm/enable")
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    assert ops.post("/webhooks/crm/enable").status_code == 400  # not disabled any more
    retried = ops.post(f"/webhooks/deliveries/{failed[0]['id']}/retry")
    assert retried.status_code == 200 and (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)

    def settled() -> dict[str, str] | None:
        found = {d["id"]: d["status"] for d in walk(viewer, "/webhooks/deliveries", "cursor")[0]}
        return found if "pending" not in found.values() else None

    # What waited is delivered, the retried one too; another that was given up stays failed until retried.
    statuses = wait_until(settled, 30, "what waited, and the retried delivery, delivered")
    assert statuses[failed[0]["id"]] == "delivered"
    assert sorted(statuses.values()).count("failed") == len(failed) - 1
    actions = [a["data"] for a in admin(server, "events", "--type", "operator.action", "--json").json()]
    assert [(a["operator"], a["action"]) for a in actions] == [
        ("admin-key:ops", "webhook.enable"),
        ("admin-key:ops", "webhook.retry"),
    ]


def test_several_endpoints_each_receive_the_events_they_asked_for(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    claims = Receiver().start()
    try:
        secret, other = new_secret(), new_secret()
        config = write_config(tmp_path / "authmd.toml", receiver, secret, hook={"name": "everything"})
        config.write_text(
            config.read_text().replace('name = "crm"\n', "")
            + f'[[webhooks]]\nname = "ends"\nurl = "{claims.url}"\nsecret = "{other}"\n'
            + 'events = ["agent_registration.deleted", "account.*"]\n'
        )
        server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
        reg = register(http, server, "agent")
        assert http.post(f"{server.origin}{REVOKE}", data={"token": reg["identity"]["assertion"]}).status_code == 200
        events = wait_until(lambda: all_arrived(server, receiver, 3), 30, "every event at the first endpoint")
        [deleted] = wait_until(claims.received, 30, "the deletion at the second endpoint")
        assert deleted.json()["type"] == "agent_registration.deleted"
        assert verify(other, deleted.headers, deleted.body) and not verify(secret, deleted.headers, deleted.body)
        assert {e["id"] for e in events} == arrived_ids(receiver) and len(claims.received()) == 1
        names = [e["name"] for e in admin(server, "webhooks", "list", "--json").json()]
        assert names == ["everything", "ends"]
    finally:
        claims.stop()


def test_a_slow_endpoint_times_out(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    config = write_config(
        tmp_path / "authmd.toml", receiver, new_secret(), webhook_timeout_seconds=0.5, webhook_max_attempts=10_000
    )
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    receiver.held.clear()  # it takes requests and never answers them
    register(http, server, "agent")

    def timed_out() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = admin(server, "webhooks", "deliveries", "--json").json()
        return [d for d in found if d["last_error"] == "timed out"] or None

    [slow] = wait_until(timed_out, 30, "an attempt that timed out")
    assert slow["status"] == "pending" and slow["last_status"] is None and slow["last_latency_ms"] >= 450
    receiver.held.set()


def test_an_answer_body_is_never_read(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, http: httpx.Client
) -> None:
    """An endpoint that announces a gigabyte and sends a kilobyte: the status decides, the body is left
    unread (no memory spent, no timeout waiting for the rest)."""
    receiver.status, receiver.declared_body = 200, 1 << 30  # (a 204 has no body by definition)
    config = write_config(tmp_path / "authmd.toml", receiver, new_secret(), webhook_timeout_seconds=2.0)
    server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    register(http, server, "agent")

    def delivered() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = admin(server, "webhooks", "deliveries", "--json").json()
        return found if len(found) == 2 and all(d["status"] == "delivered" for d in found) else None

    log = wait_until(delivered, 30, "both deliveries delivered")
    assert all(d["attempts"] == 1 and d["last_error"] is None and d["last_status"] == 200 for d in log)


def test_another_instance_sends_what_a_killed_one_had_in_flight(
    start_server: StartServer, tmp_path: Path, receiver: Receiver, redis_server: RedisServer, http: httpx.Client
) -> None:
    config = write_config(tmp_path / "authmd.toml", receiver, new_secret(), webhook_timeout_seconds=2.0)
    env = shared_env(redis_server, tmp_path, {"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off"})
    first = start_server(env)
    receiver.held.clear()
    register(http, first, "agent")
    [in_flight] = wait_until(receiver.received, 30, "a delivery in flight from the first instance")
    first.kill()
    receiver.held.set()
    second = start_server(env)  # another process on the same Redis: it takes over once the lease runs out
    wait_until(lambda: [r for r in receiver.received() if r.webhook_id == in_flight.webhook_id][1:], 30, "sent again")
    wait_until(lambda: all_arrived(second, receiver, 2), 30, "every event delivered")
    assert {d["status"] for d in admin(second, "webhooks", "deliveries", "--json").json()} == {"delivered"}
