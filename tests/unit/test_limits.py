"""Who a request is attributed to (client_source) and the unit it is counted in (source_key)."""

from __future__ import annotations

import pytest

from app.flows.limits import client_source, source_key
from app.store.window import LocalWindows

PROXIES = ["10.0.0.0/8", "192.168.1.1", "::1"]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        # No trusted proxies: the header is never read.
        ("203.0.113.5", "198.51.100.7", [], "203.0.113.5"),
        # An untrusted peer cannot speak for anyone.
        ("203.0.113.5", "198.51.100.7", PROXIES, "203.0.113.5"),
        ("203.0.113.5", "10.0.0.9", PROXIES, "203.0.113.5"),
        # A trusted peer: the nearest untrusted hop, read from the right.
        ("10.0.0.1", "198.51.100.7", PROXIES, "198.51.100.7"),
        ("192.168.1.1", "198.51.100.7", PROXIES, "198.51.100.7"),
        ("::1", "2001:db8::7", PROXIES, "2001:db8::7"),
        # A chain of trusted proxies is skipped.
        ("10.0.0.1", "198.51.100.7, 10.0.0.2, 192.168.1.1", PROXIES, "198.51.100.7"),
        ("10.0.0.1", "198.51.100.7,10.0.0.2", PROXIES, "198.51.100.7"),
        # Entries the client prepended (spoofs) are never reached.
        ("10.0.0.1", "6.6.6.6, 1.2.3.4, 198.51.100.7", PROXIES, "198.51.100.7"),
        ("10.0.0.1", "10.0.0.3, 198.51.100.7, 10.0.0.2", PROXIES, "198.51.100.7"),
        ("10.0.0.1", "garbage, 198.51.100.7", PROXIES, "198.51.100.7"),
        # Garbage where a hop should be: stop at the last trusted hop.
        ("10.0.0.1", "198.51.100.7, garbage", PROXIES, "10.0.0.1"),
        ("10.0.0.1", "198.51.100.7, 10.0.0.2, garbage", PROXIES, "10.0.0.1"),
        ("10.0.0.1", "198.51.100.7, garbage, 10.0.0.2", PROXIES, "10.0.0.2"),
        ("10.0.0.1", "198.51.100.7:4711", PROXIES, "10.0.0.1"),
        ("10.0.0.1", "unknown", PROXIES, "10.0.0.1"),
        ("10.0.0.1", "198.51.100.7, ", PROXIES, "10.0.0.1"),
        # No header, or only trusted hops in it.
        ("10.0.0.1", None, PROXIES, "10.0.0.1"),
        ("10.0.0.1", "", PROXIES, "10.0.0.1"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES, "10.0.0.3"),
    ],
)
def test_client_source(peer: str, forwarded_for: str | None, trusted: list[str], expected: str) -> None:
    assert client_source(peer, forwarded_for, trusted) == expected


def test_client_source_without_a_usable_peer() -> None:
    assert client_source(None, "198.51.100.7", PROXIES) == "unknown"
    assert client_source("", "198.51.100.7", PROXIES) == "unknown"
    assert client_source("not-an-ip", "198.51.100.7", PROXIES) == "not-an-ip"


def test_client_source_normalises_addresses() -> None:
    assert client_source("2001:DB8:0:0::1", None, []) == "2001:db8::1"
    assert client_source("10.0.0.1", "2001:DB8:0::7", PROXIES) == "2001:db8::7"


def test_ipv4_mapped_peer_of_a_trusted_ipv4_proxy_is_trusted() -> None:
    # A dual-stack listener reports an IPv4 proxy as ::ffff:a.b.c.d; it is the same proxy.
    assert client_source("::ffff:10.0.0.1", "198.51.100.7", PROXIES) == "198.51.100.7"


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("10.0.0.1", "10.0.0.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::ffff:c000:0201", "192.0.2.1"),
        ("unknown", "unknown"),
    ],
)
def test_source_key(source: str, key: str) -> None:
    assert source_key(source) == key


def test_one_ipv6_subscriber_prefix_counts_as_one_source() -> None:
    same = {source_key(f"2001:db8:aa:bb:{i:x}::{i:x}") for i in range(1, 50)}
    assert same == {"2001:db8:aa:bb::/64"}
    assert source_key("2001:db8:aa:bc::1") != source_key("2001:db8:aa:bb::1")
    assert source_key("203.0.113.5") != source_key("203.0.113.6")


def test_local_windows_reserve_up_to_the_limit_and_say_when_one_more_fits() -> None:
    windows = LocalWindows(window=600)
    t0 = 1_800_000_000.0
    for n in range(1, 4):
        taken = windows.reserve("a", 3, t0)
        assert taken.allowed and taken.count == pytest.approx(float(n))
    full = windows.reserve("a", 3, t0)
    assert full.allowed is False and full.count == pytest.approx(3.0) and full.retry_after > 0
    assert windows.reserve("b", 3, t0).allowed  # another key is untouched
    # The sliding window forgets: once the retry_after has passed, one more fits.
    assert windows.reserve("a", 3, t0 + full.retry_after + 0.001).allowed


def test_a_refund_gives_a_place_back() -> None:
    windows = LocalWindows(window=600)
    t0 = 1_800_000_000.0
    assert windows.reserve("a", 1, t0).allowed
    assert not windows.reserve("a", 1, t0).allowed
    windows.refund("a", t0)
    assert windows.reserve("a", 1, t0).allowed
    # Refunded in the next bucket: the place comes from the previous one.
    windows.refund("a", t0 + 600)
    assert windows.reserve("a", 1, t0 + 600).allowed
    windows.refund("never-reserved", t0)  # nothing to give back: no-op
    assert windows.reserve("never-reserved", 1, t0).allowed


def test_local_windows_forget_the_least_recently_touched_key_first() -> None:
    windows = LocalWindows(window=600, max_keys=2)
    for key in ("a", "b", "a", "c"):  # "b" is now the least recently touched
        windows.reserve(key, 10, 1_800_000_000.0)
    assert not windows.reserve("a", 2, 1_800_000_000.0).allowed  # remembered: 2 already
    assert not windows.reserve("c", 1, 1_800_000_000.0).allowed
    assert windows.reserve("b", 1, 1_800_000_000.0).allowed  # forgotten: starts again
