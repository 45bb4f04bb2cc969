"""The admin API's walks (app/flows/admin/query.py) on the real app's store (SQLite), with the walk
bounds made small: a list that reaches its bound still returns a cursor that goes on, so every
registration is listed once whatever the filter; a look-up by id that reaches it says so; the events
filter by type and family."""

from __future__ import annotations

import pytest

from app import events as ev
from app.errors import AuthError
from app.flows import grants
from app.flows.admin import query

pytestmark = pytest.mark.anyio


async def _walk(harness, **filters):  # type: ignore[no-untyped-def]
    """Every registration the filters match, page by page; and the size of each page."""
    found, sizes, cursor = [], [], None
    while True:
        page, cursor = await query.registrations_page(
            harness.ctx.store, harness.clock.now(), cursor=cursor, limit=2, **filters
        )
        found += page
        sizes.append(len(page))
        if cursor is None:
            return found, sizes


async def test_a_bounded_walk_lists_everything_once_through_its_cursors(harness, monkeypatch):
    regs = [await harness.agent().register() for _ in range(7)]
    for reg in regs[::2]:  # four revoked, three active: sparse matches for either status
        assert await grants.revoke_grant(harness.ctx, reg["account"]["id"], reg["id"], by="operator", operator="t")
    expected = sorted((r["account"]["id"], r["id"]) for r in regs)
    everything, sizes = await _walk(harness, status=None, type_=None, account=None)
    assert [(v.account_id, v.id) for v in everything] == expected and sizes == [2, 2, 2, 1]
    active, sizes = await _walk(harness, status="active", type_=None, account=None)
    assert sizes == [2, 1]

    monkeypatch.setattr(query, "SCAN_ACCOUNTS", 2)  # each request walks at most two accounts
    bounded, _ = await _walk(harness, status=None, type_=None, account=None)
    assert [(v.account_id, v.id) for v in bounded] == expected
    active, sizes = await _walk(harness, status="active", type_=None, account=None)
    assert len(sizes) > 2 and min(sizes[:-1]) < 2  # pages cut short by the bound, each with a cursor
    assert sorted(v.id for v in active) == sorted(r["id"] for r in regs[1::2])
    assert {v.status for v in active} == {"active"}
    revoked, _ = await _walk(harness, status="revoked", type_=None, account=None)
    assert sorted(v.id for v in revoked) == sorted(r["id"] for r in regs[::2])
    one, _ = await _walk(harness, status=None, type_=None, account=regs[3]["account"]["id"])
    assert [v.id for v in one] == [regs[3]["id"]]


async def test_a_lookup_by_id_that_reaches_its_bound_says_so(harness, monkeypatch):
    regs = [await harness.agent().register() for _ in range(3)]
    last = max(regs, key=lambda r: r["account"]["id"])
    store, now = harness.ctx.store, harness.clock.now()
    assert (await query.registration(store, last["id"], None, now)).account_id == last["account"]["id"]
    monkeypatch.setattr(query, "SCAN_ACCOUNTS", 1)
    with pytest.raises(AuthError) as bounded:
        await query.registration(store, last["id"], None, now)
    assert bounded.value.code == "not_found" and "first 1 accounts" in bounded.value.description
    assert "?account=" in bounded.value.hint
    found = await query.registration(store, last["id"], last["account"]["id"], now)  # the hint skips the walk
    assert found.id == last["id"]
    assert await query.find_registration(store, last["id"], now, bounded=False) is not None  # the CLI's walk


async def test_events_pages_filter_by_type_and_family(harness, monkeypatch):
    reg = await harness.agent().register()
    assert await grants.revoke_grant(harness.ctx, reg["account"]["id"], reg["id"], by="operator", operator="t")
    store = harness.ctx.store
    kinds = [ev.type_of(e) for e in (await query.events_page(store, query.Filter(None, []), "", 100))[0]]
    assert kinds == [
        "agent_registration.created",
        "agent_registration.credential_issued",
        "agent_registration.revoked",
        "operator.action",
    ]
    only, cursor = await query.events_page(store, query.Filter(None, ["operator.*"]), "", 100)
    assert [ev.type_of(e) for e in only] == ["operator.action"] and cursor is None
    monkeypatch.setattr(query, "SCAN_EVENTS", 1)  # one event read per request: the cursor goes on
    first, cursor = await query.events_page(store, query.Filter(None, ["agent_registration.*"]), "", 100)
    assert [ev.type_of(e) for e in first] == ["agent_registration.created"] and cursor == first[0].id
    with pytest.raises(AuthError) as bad:
        await query.events_page(store, query.Filter(None, []), "not-an-id", 10)
    assert bad.value.code == "invalid_request"
