"""The console's counters end to end in-process: what the app counts reaches the store through the
flusher (real SQLite file, real Redis server), counts survive a store that does not answer, and the
sweeper's pass sets the temporary accounts gauge."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from app import metrics, observe
from app.asgi import create_app
from app.clock import ManualClock
from app.errors import StoreUnavailable
from app.flows.expire import tend_counters
from app.store.redis import RedisStore
from app.store.sqlite import SQLiteStore
from tests.conftest import Harness, make_settings
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.anyio


async def test_a_registration_is_counted_and_flushed(harness: Harness) -> None:
    _reg, _token = await harness.agent().start()
    ctx, minute = harness.ctx, int(harness.clock.now() // 60)
    # What the flows will hand observe once they report their events (not wired in this branch).
    observe.emitted(ctx.tally, await ctx.store.events("", 10))
    assert ctx.tally.counts == {("registered:anonymous", minute): 1}

    await observe.flush(ctx.tally, ctx.store)

    assert ctx.tally.counts == {}
    assert await ctx.store.read_counts(["registered:anonymous"], minute, minute + 1, 1) == {"registered:anonymous": [1]}
    hour = minute - minute % 60
    assert await ctx.store.read_counts(["registered:anonymous"], hour, hour + 60, 60) == {"registered:anonymous": [1]}
    # The sweeper's pass sets the gauge from the store: the new account is temporary and live.
    assert await tend_counters(ctx, None) == harness.clock.now()
    assert metrics.TEMPORARY_ACCOUNTS._value.get() == 1  # type: ignore[attr-defined]


async def test_counts_stay_when_the_store_is_closed(harness: Harness) -> None:
    ctx = harness.ctx
    ctx.tally.add("code:wrong", harness.clock.now(), 3)
    await ctx.store.close()
    with pytest.raises(StoreUnavailable):
        await observe.flush(ctx.tally, ctx.store)
    assert sum(ctx.tally.counts.values()) == 3  # put back for the next flush
    # The sweeper's counter upkeep logs the failures and goes on.
    assert await tend_counters(ctx, None) is None
    await ctx.store.open()  # the harness closes it on the way out


async def test_counts_wait_for_a_stopped_redis(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        tally, minute = observe.Tally(), 30_000_000
        tally.add("pow:challenges", minute * 60, 2)
        redis_server.stop()
        with pytest.raises(StoreUnavailable):
            await observe.flush(tally, store)
        assert tally.counts == {("pow:challenges", minute): 2}
        tally.add("pow:challenges", minute * 60 + 1)
        redis_server.start()
        await observe.flush(tally, store)
        assert tally.counts == {}
        assert await store.read_counts(["pow:challenges"], minute, minute + 1, 1) == {"pow:challenges": [3]}
    finally:
        await store.close()


async def test_the_server_flushes_what_it_counted_on_the_way_out(tmp_path: Path) -> None:
    """``background``: the flusher runs beside the sweeper, and shutting down flushes its last counts."""
    settings = make_settings(tmp_path)
    clock = ManualClock()
    app = create_app(settings, clock=clock, background=True)
    async with AsyncTestClient(app=app, base_url=settings.issuer_str):
        app.state.ctx.tally.add("claim:started", clock.now(), 4)
    # The flusher's interval (seconds) has not passed: only its last flush wrote this.
    store = SQLiteStore.from_url(settings.store_url_str)
    await store.open()
    try:
        minute = int(clock.now() // 60)
        assert await store.read_counts(["claim:started"], minute, minute + 1, 1) == {"claim:started": [4]}
    finally:
        await store.close()
