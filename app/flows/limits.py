"""Layered limits: who the caller is (its source) and sliding-window allowances per source and overall."""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Sequence

from app.context import Context
from app.errors import AuthError
from app.store.port import WindowHit, WindowResult

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def client_source(peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]) -> str:
    """The address we attribute a request to.

    Only a peer in ``trusted_proxies`` may speak for the client, through ``X-Forwarded-For``; the list
    is read from the right, skipping trusted hops, so a client cannot spoof by prepending entries.
    """
    if not trusted_proxies or not forwarded_for:
        return _peer(peer or "")
    try:
        addr = _unmapped(ipaddress.ip_address(peer or ""))
    except ValueError:
        return peer or "unknown"
    nets = _networks(tuple(trusted_proxies))
    if not any(addr in n for n in nets):
        return str(addr)
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            hop_addr = _unmapped(ipaddress.ip_address(hop))
        except ValueError:
            return str(addr)  # garbage in the chain: stop believing it at the last trusted hop
        if not any(hop_addr in n for n in nets):
            return str(hop_addr)
        addr = hop_addr
    return str(addr)


@functools.lru_cache(maxsize=4096)
def _peer(peer: str) -> str:
    """The peer address in its canonical form (an IPv4-mapped IPv6 address as IPv4), or as given."""
    try:
        return str(_unmapped(ipaddress.ip_address(peer)))
    except ValueError:
        return peer or "unknown"


@functools.lru_cache(maxsize=4096)
def source_key(source: str) -> str:
    """Counting unit for a source: an IPv4 address, or an IPv6 /64 (one subscriber's prefix)."""
    try:
        addr = ipaddress.ip_address(source)
    except ValueError:
        return source
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def _unmapped(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; compare them as IPv4."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


# What the logs and metrics call a window, by its key's first two parts (never the source or id after).
LIMIT_NAMES = {
    "reg:src": "register_per_source",
    "reg:all": "register_global",
    "chal:src": "challenge_per_source",
    "chal:all": "challenge_global",
    "claim:start": "claim_starts",
    "claim:status": "claim_status_polls",
    "introspect:client": "introspection_per_client",
    "introspect:src": "introspection_per_source",
    "admin:fail": "admin_failures_per_source",
    "web:src": "sessions_per_source",
    "dcr:src": "dcr_per_source",
    "authz:src": "authorize_per_source",
    "client:client": "client_secret_per_client",
    "client:src": "client_secret_per_source",
}


def limit_name(key: str) -> str:
    return LIMIT_NAMES.get(":".join(key.split(":", 2)[:2]), "other")


async def enforce(ctx: Context, hits: Sequence[WindowHit]) -> list[WindowResult]:
    """Count the hits; if any limited one is over, nothing is counted and the caller gets a 429."""
    results = await ctx.store.hit_windows(hits, ctx.clock.now(), ctx.settings.rate_window_seconds)
    refuse_if_over(results, hits)
    return results


def refuse_if_over(results: Sequence[WindowResult], hits: Sequence[WindowHit]) -> None:
    """The 429 for the refused results, if any (Retry-After: until the last of them would fit)."""
    refused = [(r, h) for r, h in zip(results, hits, strict=True) if not r.allowed]
    if refused:
        raise rate_limited(max(r.retry_after for r, _ in refused), limit=limit_name(refused[0][1].key))


def rate_limited(
    retry_after: float,
    description: str = "too many requests from this source or to this service",
    hint: str | None = None,
    *,
    code: str = "rate_limit_exceeded",
    limit: str,
) -> AuthError:
    """A 429 (``rate_limit_exceeded``, or ``too_many_attempts``): the wait in whole seconds, as the
    Retry-After header (RFC 9110 §10.2.3) and as a number in the body (``retry_after``, for agents
    that read only the body)."""
    wait = max(1, math.ceil(retry_after))
    return AuthError(
        code,
        description,
        hint or f"Wait {wait} seconds (Retry-After), then retry.",
        extra={"retry_after": wait},
        headers={"Retry-After": str(wait)},
        limit=limit,
    )
