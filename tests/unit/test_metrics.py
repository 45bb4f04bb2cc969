"""The metrics' parts in-process: metrics_bind's form, the start-up warning, the /metrics route (where it
is served, what it labels), the multi-process collector dropping dead workers' live gauges, and the
README's list of every family."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from app import metrics
from app.asgi import create_app
from app.config import ConfigError, Settings, parse_bind, warnings
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
PROD = {"issuer": "https://auth.example.com"}


@pytest.mark.parametrize(
    ("bind", "parsed"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("[::1]:9100", ("::1", 9100)),
        ("metrics.internal:1", ("metrics.internal", 1)),
        ("[::]:65535", ("::", 65535)),
    ],
)
def test_metrics_bind_is_host_and_port(bind: str, parsed: tuple[str, int]) -> None:
    assert parse_bind(bind) == parsed


@pytest.mark.parametrize(
    "bind", ["9100", ":9100", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "::1:9100", "[host]:80", "a b:80"]
)
def test_a_malformed_metrics_bind_is_a_config_error(tmp_path: Path, bind: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics_bind: .* is not host:port"):
        make_settings(tmp_path, metrics_bind=bind)


def test_public_metrics_outside_dev_mode_are_warned_about(tmp_path: Path) -> None:
    def warned(**overrides: object) -> bool:
        settings = Settings(data_dir=str(tmp_path), **overrides).resolve()
        return any("metrics_bind" in w for w in warnings(settings))

    assert warned(metrics=True, **PROD)
    assert not warned(metrics=True, metrics_bind="127.0.0.1:9100", **PROD)
    assert not warned(**PROD)  # off by default outside dev mode
    assert not warned(issuer="http://127.0.0.1:8000")  # dev mode: on, on loopback
    # metrics_bind alone does not turn them on: the operator hears that nothing is served there.
    assert warned(metrics_bind="127.0.0.1:9100", **PROD)


def test_the_route_is_served_where_the_settings_say(tmp_path: Path) -> None:
    cases = [
        ({}, 200),  # dev mode: on by default
        ({"metrics": False}, 404),
        ({"metrics_bind": "127.0.0.1:9100"}, 404),  # served by `authmd serve` on that address instead
    ]
    for overrides, status in cases:
        app = create_app(make_settings(tmp_path, **overrides), background=False)
        with TestClient(app) as client:
            assert client.get("/metrics").status_code == status, overrides
            assert "/metrics" not in client.get("/schema/openapi.json").json()["paths"]
    prod = Settings(data_dir=str(tmp_path / "data"), pow_mode="off", **PROD).resolve()
    with TestClient(create_app(prod, background=False)) as client:
        assert client.get("/metrics").status_code == 404


def test_requests_are_labelled_by_route_template(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path), background=False)) as client:
        before = _requests(client.get("/metrics").text)
        assert client.get("/api/notes/note_abc").status_code == 401
        assert client.get("/nowhere/7d1e").status_code == 404
        assert client.request("BREW", "/healthz").status_code == 405
        body = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert body.headers["content-type"].startswith("application/openmetrics-text")
        after = _requests(client.get("/metrics").text)
    moved = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert moved[("/api/notes/{note_id}", "GET", "401")] == 1
    assert moved[("(unmatched)", "GET", "404")] == 1
    assert moved[("(unmatched)", "OTHER", "405")] == 1  # a method outside the list is not a label
    assert moved[("/metrics", "GET", "200")] == 2
    assert not any("7d1e" in route or "note_abc" in route for route, _, _ in after)


def _requests(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "authmd_http_requests_total"
    }


def test_a_dead_workers_live_gauges_are_dropped_at_scrape(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    pids = {"dead": int(dead.stdout), "alive": os.getpid()}
    name = "authmd_webhook_queue_depth"
    for who, pid in pids.items():
        db = MmapedDict(str(tmp_path / f"gauge_livesum_{pid}.db"))
        db.write_value(mmap_key(name, name, ["endpoint"], ["crm"], "queue"), 5.0 if who == "dead" else 2.0, 0.0)
        db.close()
    text = metrics.exposition("", str(tmp_path))[0].decode()
    [sample] = [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]
    assert sample.value == 2.0  # the live worker's alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"gauge_livesum_{pids['alive']}.db"]


def test_the_readme_lists_every_metric_family() -> None:
    section = _readme_section("Metrics")
    families = [v for v in vars(metrics).values() if isinstance(v, Counter | Gauge | Histogram)]
    assert len(families) >= 15
    for family in families:
        kind = type(family).__name__.lower()
        name = family._name + ("_total" if kind == "counter" else "")
        row = re.search(rf"^\| {kind} \| `{name}` \| ([^|]*) \|", section, flags=re.MULTILINE)
        assert row, f"README § Metrics has no row for {name} ({kind})"
        for label in family._labelnames:
            assert f"`{label}`" in row.group(1), f"README § Metrics: {name} does not name its label {label}"


def _readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def test_a_flushed_tally_is_what_observing_one_by_one_gives() -> None:
    """The hot paths tally and flush in batches (through the histogram's own bucket values): the samples
    must be those of observe() called for each, on every bucket boundary and past the last."""
    durations = [0.0, 0.001, 0.0010001, 0.003, 0.05, 0.05, 2.5, 9.9, 10.0, 10.5, 60.0]
    for seconds in durations:
        metrics.store_timed("test_batched", seconds)
        metrics.STORE_DURATION.labels("test_observed").observe(seconds)
    metrics.flush()

    def samples(operation: str) -> dict[tuple[str, str], float]:
        text = metrics.exposition()[0].decode()
        return {
            (s.name, s.labels.get("le", "")): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.labels.get("operation") == operation and not s.name.endswith("_created")
        }

    batched, observed = samples("test_batched"), samples("test_observed")
    assert batched == pytest.approx(observed)
    assert batched[("authmd_store_operation_duration_seconds_count", "")] == len(durations)
    assert batched[("authmd_store_operation_duration_seconds_bucket", "+Inf")] == len(durations)
