"""The ``store`` fixture: every contract test runs once per backend.

Adding a backend is one branch in ``_adapter_factory``: return a callable that builds a new,
unopened adapter instance over this test's data. The Redis backends use one real redis-server (AOF,
appendfsync always) and one real 3-master Redis Cluster per session, each test under its own prefix.
``StoreInstances`` opens instances, lets a test close one and open a fresh one over the same data
(``reopen``: durability), and closes whatever is still open at teardown.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from app.store.port import Store
from app.store.sqlite import SQLiteStore

BACKENDS = ["sqlite", "redis", "cluster"]

AdapterFactory = Callable[[], Store]
Reopen = Callable[[Store], Awaitable[Store]]


def _adapter_factory(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AdapterFactory:
    if backend == "sqlite":
        url = "sqlite:///" + str(tmp_path / "store" / "authmd.sqlite3")  # absolute path: sqlite:////...
        return lambda: SQLiteStore.from_url(url)
    if backend in ("redis", "cluster"):
        from app.store.redis import RedisStore

        # One server (or cluster) per session; each test gets its own key prefix.
        server = request.getfixturevalue("shared_redis" if backend == "redis" else "redis_cluster")
        url = f"{server.url}?prefix=t{uuid.uuid4().hex[:12]}:"
        return lambda: RedisStore(url)
    raise AssertionError(f"no adapter for backend {backend!r}")


class StoreInstances:
    """Adapter instances over one test's data: several may be open at once (racing callers)."""

    def __init__(self, build: AdapterFactory) -> None:
        self._build = build
        self._open: list[Store] = []

    async def open(self) -> Store:
        store = self._build()
        await store.open()
        self._open.append(store)
        return store

    async def close(self, store: Store) -> None:
        self._open.remove(store)
        await store.close()

    async def reopen(self, store: Store) -> Store:
        """Close ``store`` and open a fresh adapter instance on the same data."""
        await self.close(store)
        return await self.open()

    async def close_all(self) -> None:
        while self._open:
            await self.close(self._open[-1])


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def stores(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[StoreInstances]:
    instances = StoreInstances(_adapter_factory(backend, tmp_path, request))
    try:
        yield instances
    finally:
        await instances.close_all()


@pytest.fixture
async def store(stores: StoreInstances) -> Store:
    return await stores.open()


@pytest.fixture
def reopen(stores: StoreInstances) -> Reopen:
    return stores.reopen
