"""Clients: OAuth clients that registered themselves (RFC 7591), gone once unused past their expiry.

The store contract, one file per port. Written only against the port (app/store/port.py); the
``store`` fixture (tests/store/conftest.py) runs each test on every backend. Time is always an explicit
``now``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

import asyncio

import pytest

from app.store.port import ClientRecord, Store
from tests.store.conftest import Reopen
from tests.store.records import T0

pytestmark = pytest.mark.anyio


def make_client(client_id: str = "dcr_1", *, expires_at: int = T0 + 100) -> ClientRecord:
    return ClientRecord(
        client_id=client_id,
        client_name="Notes Desktop ✓",
        redirect_uris=("http://127.0.0.1/callback", "com.example.notes:/cb"),
        application_type="native",
        grant_types=("authorization_code", "refresh_token"),
        created_at=T0,
        expires_at=expires_at,
        source="ip:203.0.113.9",
    )


async def test_a_client_round_trips_every_field_and_survives_a_reopen(store: Store, reopen: Reopen) -> None:
    client = make_client()
    await store.put_client(client)
    assert await store.get_client(client.client_id, T0) == client
    store = await reopen(store)
    assert await store.get_client(client.client_id, T0 + 99) == client


async def test_a_client_is_gone_at_exactly_its_expiry_and_unknown_ids_are_none(store: Store) -> None:
    await store.put_client(make_client())
    assert await store.get_client("dcr_1", T0 + 99.999) is not None
    assert await store.get_client("dcr_1", T0 + 100) is None
    assert await store.get_client("dcr_nobody", T0) is None
    assert await store.touch_client("dcr_1", T0 + 500, T0 + 100) is False  # too late: it is gone
    assert await store.get_client("dcr_1", T0 + 100) is None


async def test_a_use_moves_the_expiry_forward_never_back(store: Store) -> None:
    await store.put_client(make_client())
    assert await store.touch_client("dcr_1", T0 + 300, T0 + 50) is True
    assert await store.touch_client("dcr_1", T0 + 200, T0 + 60) is True  # earlier: no move
    got = await store.get_client("dcr_1", T0 + 250)
    assert got is not None and got.expires_at == T0 + 300
    assert await store.get_client("dcr_1", T0 + 300) is None
    assert await store.touch_client("dcr_nobody", T0 + 300, T0) is False


async def test_racing_uses_keep_the_latest_expiry(store: Store) -> None:
    await store.put_client(make_client())
    ends = [T0 + 1000 + i for i in range(20)]
    assert all(await asyncio.gather(*(store.touch_client("dcr_1", e, T0) for e in ends)))
    got = await store.get_client("dcr_1", T0)
    assert got is not None and got.expires_at == max(ends)


async def test_the_sweep_reclaims_expired_clients_and_keeps_live_ones(store: Store) -> None:
    await store.put_client(make_client("dcr_old", expires_at=T0 + 10))
    await store.put_client(make_client("dcr_live", expires_at=T0 + 1000))
    await store.sweep(T0 + 10, 100)
    assert await store.get_client("dcr_live", T0 + 10) is not None
    # Gone to every read already; after the sweep, a touch cannot bring it back either.
    assert await store.touch_client("dcr_old", T0 + 5000, T0 + 10) is False
    assert await store.get_client("dcr_old", T0 + 10) is None
