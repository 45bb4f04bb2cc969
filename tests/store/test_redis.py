"""What only the Redis adapter has: URLs, the eviction-policy guard, script reloads, TTLs that only
reclaim space, outages as StoreUnavailable and recovery without reopening, AOF durability."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from redis.crc import key_slot
from redis.exceptions import ResponseError

from app import events as ev
from app.config import ConfigError
from app.errors import StoreUnavailable
from app.store.port import Account, Delivery, Registration
from app.store.redis import RedisStore, parse_redis_url
from app.store.redis.pipeline import MAX_BATCH, AutoPipeline
from tests.redis_servers import RedisCluster, RedisServer

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000


def _records(account_id: str = "acct_r", kind: str = "temporary") -> tuple[Account, Registration, list[ev.Event]]:
    expires = T0 + 3600 if kind == "temporary" else None
    account = Account(
        id=account_id,
        kind=kind,
        created_at=T0,
        expires_at=expires,
        quota_notes=5,  # type: ignore[arg-type]
        quota_note_bytes=100,
    )
    registration = Registration(
        id=f"reg_{account_id}",
        type="anonymous",
        account_id=account_id,
        scopes=("notes:read",),
        created_at=T0,
        expires_at=expires,
    )
    created = ev.new(
        ev.RegistrationCreated, T0, account_id, registration.id, method="anonymous", scopes=("notes:read",)
    )
    return account, registration, [created]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/2", ("redis://127.0.0.1:6380/2", False, "authmd:")),
        ("rediss://u:p@cache:6380/0?prefix=svc1:", ("rediss://u:p@cache:6380/0", False, "svc1:")),
        ("redis+cluster://10.0.0.1:7000,10.0.0.2:7000", ("redis://10.0.0.1:7000,10.0.0.2:7000", True, "authmd:")),
        ("rediss+cluster://h:7000?prefix=a:", ("rediss://h:7000", True, "a:")),
        (
            "redis://h:1/0?max_connections=8&pool_timeout=0.5&prefix=p:",
            ("redis://h:1/0", False, "p:", 8, 0.5),
        ),
    ],
)
def test_urls(url: str, expected: tuple[object, ...]) -> None:
    assert parse_redis_url(url) == (*expected, 64, 3.0)[:5]


@pytest.mark.parametrize(
    "url",
    [
        "http://h",
        "redis://h?prefix=",
        "redis://h?prefix={x}",
        "redis://h?max_connections=0",
        "redis://h?max_connections=x",
        "redis://h?pool_timeout=0",
        "redis://h?pool_timeout=nan",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_redis_url(url)


async def test_refuses_a_redis_that_may_evict(tmp_path) -> None:
    with RedisServer(tmp_path / "lru", extra_args=["--maxmemory-policy", "allkeys-lru"]) as server:
        store = RedisStore(server.url)
        with pytest.raises(ConfigError, match="noeviction"):
            await store.open()
        await store.close()


async def test_temporary_keys_carry_a_ttl_beyond_their_expiry_persistent_ones_none(redis_server) -> None:
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        for kind in ("temporary", "persistent"):
            account, registration, event = _records(f"acct_{kind}", kind)
            await store.create_registration(account, registration, event)
            ttl_ms = int(redis_server.command("PTTL", f"authmd:{{a:{account.id}}}:acct"))
            if kind == "temporary":
                assert ttl_ms > 3600 * 1000  # reclaims space only after the stored expiry (plus grace)
            else:
                assert ttl_ms == -1
        assert await store.consume_once("pow", "c1", T0 + 60, T0)
        assert int(redis_server.command("PTTL", "authmd:m:pow:c1")) > 60 * 1000
    finally:
        await store.close()


async def test_the_service_outbox_persists_having_no_account_to_outlive(redis_server) -> None:
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        action = ev.new(
            ev.OperatorAction, T0, ev.SERVICE, None, operator="ada", action="webhook.enable", endpoint="crm"
        )
        await store.add_deliveries(
            [Delivery(id="d1", endpoint="crm", event_id="e1", event_type="t", account_id="a", body="{}", created_at=T0)]
        )
        [leased] = await store.lease_deliveries(["crm"], T0, "i1", 30, 1)
        failed = msgspec.structs.replace(leased, status="failed", attempts=1, last_attempt_at=T0)
        disabled = ev.new(
            ev.WebhookEndpointDisabled, T0, ev.SERVICE, None, endpoint="crm", delivery_id="d1", attempts=1,
            last_status=None, last_error="timed out",
        )  # fmt: skip
        assert await store.finish_delivery(failed, "i1", [disabled])
        assert await store.enable_endpoint("crm", T0, [action])
        assert await store.read_outbox(ev.SERVICE) == [disabled, action]
        assert int(redis_server.command("PTTL", "authmd:{a:service}:events")) == -1
    finally:
        await store.close()


async def test_scripts_are_reloaded_after_a_flush(redis_server) -> None:
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        redis_server.command("SCRIPT", "FLUSH")
        account, registration, event = _records()
        await store.create_registration(account, registration, event)  # the pipelined path
        redis_server.command("SCRIPT", "FLUSH")
        state = await store.access_state(account.id, registration.id, None, T0)  # the single-call path
        assert state is not None and state.account == account
    finally:
        await store.close()


async def test_the_calls_of_one_turn_share_a_pipeline_and_each_gets_its_own_answer(redis_server, monkeypatch) -> None:
    """app/store/redis/pipeline.py: scripts called together go out as one pipeline; a script's error
    reply reaches its caller alone; after a SCRIPT FLUSH the refused calls reload and run again."""
    batches: list[int] = []
    execute = AutoPipeline._execute

    async def counted(self: AutoPipeline, batch: list) -> list:  # type: ignore[type-arg]
        batches.append(len(batch))
        return await execute(self, batch)

    monkeypatch.setattr(AutoPipeline, "_execute", counted)
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        records = [_records(f"acct_p{i}") for i in range(6)]
        results = await asyncio.gather(
            *(store.create_registration(*r) for r in [*records, records[2]]), return_exceptions=True
        )
        assert batches == [7]
        assert results[:6] == [[]] * 6
        assert isinstance(results[6], ResponseError) and "already exists" in str(results[6])
        redis_server.command("SCRIPT", "FLUSH")
        batches.clear()
        states = await asyncio.gather(*(store.access_state(a.id, r.id, None, T0) for a, r, _ in records))
        assert batches == [6, 6]  # refused with NOSCRIPT, then run again after the reload
        assert [s.account.id for s in states if s is not None] == [a.id for a, _, _ in records]
    finally:
        await store.close()


async def test_a_full_batch_goes_out_before_the_turn_ends(redis_server, monkeypatch) -> None:
    """MAX_BATCH commands make a pipeline at once (Redis starts on them while the turn goes on); the rest
    of the turn goes out at its end; every caller gets its own answer."""
    sent: list[int] = []
    flush = AutoPipeline._flush

    def counted(self: AutoPipeline) -> None:
        sent.append(len(self._queue))
        flush(self)

    monkeypatch.setattr(AutoPipeline, "_flush", counted)
    store = RedisStore(redis_server.url)
    await store.open()
    try:
        records = [_records(f"acct_b{i}") for i in range(2 * MAX_BATCH + 3)]
        assert await asyncio.gather(*(store.create_registration(*r) for r in records)) == [[]] * len(records)
        assert sent == [MAX_BATCH, MAX_BATCH, 3]
        states = await asyncio.gather(*(store.access_state(a.id, r.id, None, T0) for a, r, _ in records))
        assert [s.account.id for s in states if s is not None] == [a.id for a, _, _ in records]
    finally:
        await store.close()


async def test_outage_is_store_unavailable_and_recovery_needs_no_reopen(tmp_path) -> None:
    with RedisServer(tmp_path / "r") as server:
        store = RedisStore(server.url)
        await store.open()
        try:
            account, registration, event = _records()
            await store.create_registration(account, registration, event)
            server.kill()  # SIGKILL: acknowledged writes must survive (appendfsync always)
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.access_state(account.id, registration.id, None, T0)
            with pytest.raises(StoreUnavailable):
                await store.consume_once("pow", "c2", T0 + 60, T0)
            server.restart()  # same port, state from the AOF; the store reconnects by itself
            await store.ping()
            state = await store.access_state(account.id, registration.id, None, T0)
            assert state is not None and state.registration == registration
            assert await store.consume_once("pow", "c2", T0 + 60, T0) is True
            assert [ev.type_of(e) for e in await store.events()] == ["agent_registration.created"]
        finally:
            await store.close()


async def test_a_cluster_finds_pending_outboxes_while_a_slot_moves(tmp_path) -> None:
    """The pending-outbox walk reads each node's slots in one script; a slot that moved since the client
    last looked fails that script, and the walk falls back to slot-by-slot reads (which follow MOVED):
    a resharding never hides a committed event from the reader."""
    with RedisCluster(tmp_path / "cluster") as cluster:
        store = RedisStore(cluster.url)
        await store.open()
        try:
            ids = [f"acct_{i}" for i in range(6)]
            for account_id in ids:
                await store.create_registration(*_records(account_id))
            assert sorted(await store.outboxes_with_pending()) == ids
            slot = key_slot(b"a:acct_0")
            _move_slot(cluster, slot)
            # The client's map is stale now: the script of the node that lost the slot fails.
            with pytest.raises(ResponseError, match="non local key"):
                await store._walk_nodes("pending", 0, None)
            assert sorted(await store.outboxes_with_pending()) == ids
            state = await store.access_state("acct_0", "reg_acct_0", None, T0)  # the account moved whole
            assert state is not None and [e.account_id for e in await store.read_outbox("acct_0")] == ["acct_0"]
            assert sorted(await store.outboxes_with_pending()) == ids  # the map refreshed: one script a node
            assert len(await store._walk_nodes("pending", 0, None)) == 3
        finally:
            await store.close()


def _move_slot(cluster: RedisCluster, slot: int) -> None:
    """Reshard one slot to another master, keys and all (what ``redis-cli --cluster reshard`` does)."""
    ids = {server: server.command("CLUSTER", "MYID") for server in cluster.servers}
    owner = next(s for s in cluster.servers if int(s.command("CLUSTER", "COUNTKEYSINSLOT", str(slot))) > 0)
    target = next(s for s in cluster.servers if s is not owner)
    target.command("CLUSTER", "SETSLOT", str(slot), "IMPORTING", ids[owner])
    owner.command("CLUSTER", "SETSLOT", str(slot), "MIGRATING", ids[target])
    keys = owner.command("CLUSTER", "GETKEYSINSLOT", str(slot), "1000")
    owner.command("MIGRATE", target.host, str(target.port), "", "0", "5000", "KEYS", *keys)
    for server in cluster.servers:
        server.command("CLUSTER", "SETSLOT", str(slot), "NODE", ids[target])
