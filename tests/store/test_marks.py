"""Marks: one-time marks and revoked token ids (``consume_once``, ``revoke_token``).

The store contract, one file per port. Written only against the port (app/store/port.py); the
``store`` fixture (tests/store/conftest.py) runs each test on every backend. Time is always an explicit
``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from app.store.port import Store
from tests.store.conftest import StoreInstances
from tests.store.records import T0

pytestmark = pytest.mark.anyio


async def test_consume_once_first_writer_wins(store: Store) -> None:
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is False
    assert await store.consume_once("pow", "c1", T0 + 900, T0 + 1) is False  # a later expiry changes nothing


async def test_consume_once_keys_and_namespaces_are_independent(store: Store) -> None:
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    assert await store.consume_once("pow", "c2", T0 + 300, T0) is True
    assert await store.consume_once("jti", "c1", T0 + 300, T0) is True
    assert await store.consume_once("jti", "c1", T0 + 300, T0) is False


async def test_consume_once_mark_holds_until_expiry_then_is_reconsumable(store: Store) -> None:
    assert await store.consume_once("pow", "c1", T0 + 300, T0) is True
    assert await store.consume_once("pow", "c1", T0 + 600, T0 + 299.999) is False
    # At exactly expires_at the mark is gone: the first writer of the new period wins, once.
    assert await store.consume_once("pow", "c1", T0 + 600, T0 + 300) is True
    assert await store.consume_once("pow", "c1", T0 + 600, T0 + 300) is False
    assert await store.consume_once("pow", "c1", T0 + 600, T0 + 599.5) is False
    assert await store.consume_once("pow", "c1", T0 + 900, T0 + 600) is True


async def test_consume_once_races_between_two_instances_have_one_winner(stores: StoreInstances) -> None:
    first, second = await stores.open(), await stores.open()
    keys = [f"k{i}" for i in range(40)]
    calls = [(k, s) for k in keys for s in (first, second)]
    results = await asyncio.gather(*(s.consume_once("race", k, T0 + 60, T0) for k, s in calls))
    wins = Counter(k for (k, _s), won in zip(calls, results, strict=True) if won)
    assert wins == Counter(keys)  # every key won exactly once


async def test_revoke_token_is_independent_of_consume_once_namespaces(store: Store) -> None:
    assert await store.consume_once("jti", "tok_1", T0 + 600, T0) is True
    assert await store.revoke_token("acct_1", "tok_1", T0 + 600, T0) is True
