"""`/metrics` on a real `authmd serve`: scraped before and after a scripted run, in 2 workers, the counts
move by what the run did (summed over both workers, whichever one answers the scrape); off by default
outside dev mode; on their own listener with `metrics_bind`; well formed again after a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.common import IDENTITY, JWT_BEARER, NOTES, REVOKE, TOKEN, bearer
from tests.e2e.conftest import HOST, ServerProcess, StartServer, free_port, wait_until
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

DISCOVERY = "/.well-known/oauth-authorization-server"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """One scrape on a new connection (so any worker may answer), parsed strictly."""
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def request_labels(route: str, method: str, status: int) -> dict[str, str]:
    return {"route": route, "method": method, "status": str(status)}


def access_pids(server: ServerProcess, line: str) -> set[int]:
    """The worker processes whose access log has ``line`` (log_format json)."""
    found = set()
    for text in server.read_log().splitlines():
        if text.startswith("{"):
            entry: dict[str, Any] = json.loads(text)
            if entry["logger"] == "authmd.access" and line in entry["message"]:
                found.add(int(entry["process"]))
    return found


def test_the_metrics_move_with_a_scripted_run_in_two_workers(start_server: StartServer) -> None:
    server = start_server(
        {"AUTHMD_WORKERS": "2", "AUTHMD_POW_MODE": "off", "AUTHMD_LOG_FORMAT": "json", "AUTHMD_ACCESS_LOG": "true"}
    )
    url = f"{server.origin}/metrics"
    before = scrape(url)
    sent: dict[tuple[str, str, int], int] = {}

    def call(method: str, path: str, route: str, status: int, **kwargs: Any) -> httpx.Response:
        # A new connection for each: the kernel hands them to either worker.
        r = httpx.request(method, f"{server.origin}{path}", timeout=10, **kwargs)
        assert r.status_code == status, r.text
        sent[(route, method, status)] = sent.get((route, method, status), 0) + 1
        return r

    def both_workers_answered() -> bool:
        call("GET", DISCOVERY, DISCOVERY, 200)
        return len(access_pids(server, f"GET {DISCOVERY} 200")) >= 2

    wait_until(both_workers_answered, 30, "discovery answered by both workers")
    registered = [call("POST", IDENTITY, IDENTITY, 200, json={"type": "anonymous"}).json() for _ in range(3)]
    assertions = [reg["identity"]["assertion"] for reg in registered]
    tokens = [
        call("POST", TOKEN, TOKEN, 200, data={"grant_type": JWT_BEARER, "assertion": a}).json()["access_token"]
        for a in assertions
    ]
    call("GET", NOTES, NOTES, 200, headers=bearer(tokens[1]))
    call("GET", f"{NOTES}/note_nothere", f"{NOTES}/{{note_id}}", 404, headers=bearer(tokens[1]))
    call("POST", REVOKE, REVOKE, 200, data={"token": assertions[0]})  # the agent deletes its temporary account
    call("GET", "/no/such/page-4f1c", "(unmatched)", 404)

    def caught_up() -> Samples | None:
        # Each worker counts a request as its last byte leaves: wait until the scrape has them all.
        after = scrape(url)
        counted = sum(moved(before, after, "authmd_http_requests_total", **request_labels(*k)) for k in sent)
        return after if counted == sum(sent.values()) else None

    after = wait_until(caught_up, 10, "every request counted")
    for (route, method, status), n in sent.items():
        assert moved(before, after, "authmd_http_requests_total", **request_labels(route, method, status)) == n
        assert moved(before, after, "authmd_http_request_duration_seconds_count", route=route, method=method) >= n
    assert sent[(DISCOVERY, "GET", 200)] >= 2  # so the discovery count is a sum over both workers
    assert not any("page-4f1c" in str(labels) for _, labels in after)  # a random path is never a label
    # The store: every step timed, by name; nothing failed.
    assert total(after, "authmd_store_operation_duration_seconds_count") > total(
        before, "authmd_store_operation_duration_seconds_count"
    )
    assert moved(before, after, "authmd_store_operation_duration_seconds_count", operation="create_registration") == 3
    assert total(after, "authmd_store_errors_total") == 0
    # The domain, moved by app/observe.py from the flows.
    assert moved(before, after, "authmd_registrations_total", method="anonymous", outcome="created") == 3
    assert moved(before, after, "authmd_tokens_issued_total", kind="identity_assertion") == 3
    assert moved(before, after, "authmd_tokens_issued_total", kind="access_token") == 3
    assert moved(before, after, "authmd_tokens_revoked_total", by="agent") == 1


def test_off_by_default_outside_dev_mode(start_server: StartServer) -> None:
    off = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_ISSUER": "https://auth.example.test"})
    assert httpx.get(f"{off.origin}/metrics", timeout=10).status_code == 404
    assert "/metrics is served on the main port" not in off.read_log()
    # Turned on without metrics_bind, they are public: the operator hears it at start-up.
    on = start_server({"AUTHMD_POW_MODE": "off", "AUTHMD_ISSUER": "https://auth.example.test", "AUTHMD_METRICS": "1"})
    assert httpx.get(f"{on.origin}/metrics", timeout=10).status_code == 200
    assert "/metrics is served on the main port" in on.read_log()


def test_metrics_bind_serves_them_on_their_own_port_only(start_server: StartServer) -> None:
    port = free_port()
    server = start_server({"AUTHMD_WORKERS": "2", "AUTHMD_POW_MODE": "off", "AUTHMD_METRICS_BIND": f"{HOST}:{port}"})
    assert httpx.get(f"{server.origin}/metrics", timeout=10).status_code == 404
    assert httpx.post(f"{server.origin}{IDENTITY}", json={"type": "anonymous"}, timeout=10).status_code == 200
    labels = {"route": IDENTITY, "method": "POST", "status": "200"}
    # The supervising process answers with what the workers counted.
    found = wait_until(
        lambda: value(scrape(f"http://{HOST}:{port}/metrics"), "authmd_http_requests_total", **labels),
        10,
        "the registration counted",
    )
    assert found == 1
    # The 404 may have been another worker's, which writes its counts on its own schedule.
    unmatched = {"route": "(unmatched)", "method": "GET", "status": "404"}
    counted = wait_until(
        lambda: value(scrape(f"http://{HOST}:{port}/metrics"), "authmd_http_requests_total", **unmatched),
        10,
        "the 404 counted",
    )
    assert counted == 1


def test_a_restart_counts_afresh_and_scrapes_well_formed(start_server: StartServer) -> None:
    server = start_server({"AUTHMD_WORKERS": "2", "AUTHMD_POW_MODE": "off"})
    url = f"{server.origin}/metrics"
    labels = {"route": IDENTITY, "method": "POST", "status": "200"}
    for _ in range(2):
        assert httpx.post(f"{server.origin}{IDENTITY}", json={"type": "anonymous"}, timeout=10).status_code == 200
    assert wait_until(lambda: value(scrape(url), "authmd_http_requests_total", **labels) == 2, 10, "two counted")
    server.restart()
    # A new run's directory: the old processes' counts are gone, not added to the new ones.
    assert value(scrape(url), "authmd_http_requests_total", **labels) == 0
    assert httpx.post(f"{server.origin}{IDENTITY}", json={"type": "anonymous"}, timeout=10).status_code == 200
    assert wait_until(lambda: value(scrape(url), "authmd_http_requests_total", **labels) == 1, 10, "one counted")


def test_webhook_attempts_are_counted_by_outcome(start_server: StartServer, tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.status = 503  # failing first: every attempt is a retry
    receiver.start()
    try:
        config = tmp_path / "authmd.toml"
        config.write_text(
            "webhook_poll_seconds = 0.05\nwebhook_retry_base_seconds = 0.05\nwebhook_retry_max_seconds = 0.2\n"
            f'[[webhooks]]\nname = "crm"\nurl = "{receiver.url}"\nsecret = "whsec_{"A" * 43}="\n'
        )
        server = start_server({"AUTHMD_CONFIG": str(config), "AUTHMD_POW_MODE": "off", "AUTHMD_WORKERS": "2"})
        url = f"{server.origin}/metrics"
        assert httpx.post(f"{server.origin}{IDENTITY}", json={"type": "anonymous"}, timeout=10).status_code == 200

        def attempts(outcome: str) -> float:
            return value(scrape(url), "authmd_webhook_deliveries_total", endpoint="crm", outcome=outcome)

        wait_until(lambda: attempts("retry") >= 1, 20, "a retried attempt counted")
        receiver.status = 204
        wait_until(lambda: attempts("delivered") >= 1, 20, "a delivered attempt counted")
        assert attempts("failed") == 0
        assert ("authmd_webhook_queue_depth", (("endpoint", "crm"),)) in scrape(url)
    finally:
        receiver.stop()
