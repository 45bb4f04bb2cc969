"""The HTTP guard's arithmetic: the connection cap from the open-file limit, and the unit of the
per-client cap; the held response head. (Its behaviour against real sockets is in
tests/adversarial/test_http_limits.py.)"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys

import pytest

from app.config import ConfigError, Settings
from app.server import GC_THRESHOLDS, HeldHead, Limits, _client_key, file_budget, raise_open_file_limit, uvicorn_options


@pytest.mark.parametrize(
    ("soft", "connections", "backlog"),
    [
        # a common default: a third each for connections, their store connections and the backlog
        (1024, 256, 256),
        (20_000, 6581, 2048),  # uvicorn's backlog at most
        (1_048_576, 10_000, 2048),  # a container's limit: the ceiling bounds memory instead
        (resource.RLIM_INFINITY, 10_000, 2048),
        (256, 8, 8),  # nothing left after the reserve: still serve someone
    ],
)
def test_the_default_budget_comes_from_the_open_file_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, connections: int, backlog: int
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (soft, resource.RLIM_INFINITY))
    assert file_budget(0) == (connections, backlog)
    if soft != resource.RLIM_INFINITY and soft > 256:
        assert connections * 2 + backlog <= soft - 256


def test_a_configured_cap_must_fit_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert file_budget(500) == (500, 134)
    assert file_budget(640) == (640, 64)
    with pytest.raises(ConfigError, match=r"http_max_connections.*at most 640.*ulimit -Hn"):
        file_budget(641)


def test_limits_from_settings() -> None:
    settings = Settings(http_max_connections=50, http_max_connections_per_client=5, trusted_proxies=["10.0.0.0/8"])
    limits = Limits.from_settings(settings)
    assert (limits.max_connections, limits.max_connections_per_client) == (50, 5)
    assert (limits.max_header_bytes, limits.max_header_line_bytes) == (16_384, 8192)
    assert "50 connections a process, 5 a client" in limits.describe()
    assert uvicorn_options(settings, "127.0.0.1", 8000)["backlog"] == limits.backlog


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("::ffff:203.0.113.5", "203.0.113.5"),  # a dual-stack listener's IPv4 peer
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # one subscriber's prefix
        ("10.1.2.3", None),  # a trusted proxy speaks for many clients: no per-client cap
        ("::ffff:10.1.2.3", None),
    ],
)
def test_the_per_client_unit(peer: str, expected: str | None) -> None:
    trusted = Limits.from_settings(Settings(trusted_proxies=["10.0.0.0/8"])).trusted_proxies
    assert _client_key(peer, trusted) == expected


def test_serve_options_use_the_guard() -> None:
    options = uvicorn_options(Settings(tls_cert_file="c.pem", tls_key_file="k.pem"), "127.0.0.1", 8000)
    assert options["http"] == "app.server:GuardedProtocol" and options["ws"] == "none"
    assert (options["ssl_certfile"], options["ssl_keyfile"]) == ("c.pem", "k.pem")


def test_serve_raises_the_soft_open_file_limit_to_the_hard_one(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = {resource.RLIMIT_NOFILE: (1024, 524_288)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits[which])
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: limits.__setitem__(which, value))
    assert raise_open_file_limit() == (1024, 524_288)
    assert limits[resource.RLIMIT_NOFILE] == (524_288, 524_288)
    assert raise_open_file_limit() == (524_288, 524_288)  # nothing left to raise


class _Socket(asyncio.Transport):
    """What reaches the socket, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", b""))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", b""))

    def is_closing(self) -> bool:
        return self.closing


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


@pytest.mark.anyio
async def test_a_response_head_leaves_with_its_body_in_one_write() -> None:
    socket = _Socket()
    held = HeldHead(socket, asyncio.get_running_loop())
    held.write(HEAD)
    assert socket.calls == []  # held for the body
    held.write(b"{}")
    assert socket.calls == [("write", HEAD + b"{}")]
    held.write(b"more")  # not a head: straight through
    assert socket.calls[-1] == ("write", b"more")
    await asyncio.sleep(0)
    assert len(socket.calls) == 2  # nothing was left to release at the end of the turn


@pytest.mark.anyio
async def test_a_head_without_its_body_leaves_at_the_end_of_the_turn() -> None:
    socket = _Socket()
    held = HeldHead(socket, asyncio.get_running_loop())
    held.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before sending the body
    assert socket.calls == []
    await asyncio.sleep(0)
    assert socket.calls == [("write", b"HTTP/1.1 100 Continue\r\n\r\n")]


@pytest.mark.anyio
async def test_ending_or_closing_the_connection_releases_the_held_head_first() -> None:
    loop = asyncio.get_running_loop()
    socket = _Socket()
    held = HeldHead(socket, loop)
    held.write(HEAD)
    held.write_eof()
    held.write(HEAD)
    held.close()
    assert socket.calls == [("write", HEAD), ("eof", b""), ("write", HEAD), ("close", b"")]
    aborted = _Socket()
    dropped = HeldHead(aborted, loop)
    dropped.write(HEAD)
    dropped.abort()  # an abort sends nothing more
    await asyncio.sleep(0)
    assert aborted.calls == [("abort", b"")]


def test_a_settled_heap_leaves_the_startup_objects_out_of_collections() -> None:
    # In a process of its own: freezing the test runner's heap would keep its garbage for good.
    code = (
        "import gc, json; from app.server import settle_heap; before = gc.get_freeze_count(); settle_heap(); "
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    before, frozen, thresholds = json.loads(out.stdout)
    assert before == 0 and frozen > 10_000  # the imported modules' objects and more
    assert tuple(thresholds) == GC_THRESHOLDS and GC_THRESHOLDS[0] > 700
