"""Tokens this process has already verified (or signed itself), by token string, until their ``exp``.

A signature is checked once per token per process; revocation stays exact because every use still asks
the store whether the grant and the token id are live. Bounded: the oldest entry goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class VerifiedCache:
    """Verified claims by token string, until their ``exp``; at most ``max_entries``."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._max = max_entries

    def get(self, token: str, now: float) -> dict[str, Any] | None:
        claims = self._items.get(token)
        if claims is None:
            return None
        if claims["exp"] <= now:
            del self._items[token]
            return None
        return claims

    def put(self, token: str, claims: dict[str, Any]) -> None:
        self._items[token] = claims
        if len(self._items) > self._max:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
