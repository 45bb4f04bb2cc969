"""Shared fixtures. In-process tests run the real app on a real SQLite file with a ManualClock;
end-to-end tests (tests/e2e) start the real server as a subprocess."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.asgi import create_app
from app.clock import ManualClock
from app.config import Settings
from app.context import Context
from tests.browser import browser, new_context, page  # noqa: F401 (fixtures for every test)
from tests.helpers import Agent
from tests.oidc_server import (  # noqa: F401 (fixtures for every test)
    oidc_provider,
    oidc_provider_claims_in_id_token,
    oidc_provider_each_placement,
    oidc_provider_factory,
)
from tests.provider import es256_provider_fixture, provider_fixture  # noqa: F401 (fixtures for every test)
from tests.redis_servers import redis_cluster, redis_server, shared_redis  # noqa: F401 (fixtures for every test)
from tests.tls import tls_files  # noqa: F401 (fixtures for every test)

ISSUER_HOST, ISSUER_PORT = "127.0.0.1", 8000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": str(tmp_path / "data"), "pow_mode": "off", "access_log": False}
    values.update(overrides)
    return Settings(**values).resolve(ISSUER_HOST, ISSUER_PORT)


class Harness:
    """The real app in-process: real store file, real keys, a clock the test moves."""

    def __init__(self, client: AsyncTestClient[Any], clock: ManualClock, settings: Settings) -> None:
        self.client = client
        self.clock = clock
        self.settings = settings

    @property
    def ctx(self) -> Context:
        ctx: Context = self.client.app.state.ctx
        return ctx

    def agent(self) -> Agent:
        return Agent(self.client, self.settings)


HarnessFactory = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def harness_factory(tmp_path: Path) -> HarnessFactory:
    @contextlib.asynccontextmanager
    async def factory(clock: ManualClock | None = None, **overrides: Any) -> AsyncIterator[Harness]:
        clock = clock or ManualClock()
        settings = make_settings(tmp_path, **overrides)
        app = create_app(settings, clock=clock, background=False)
        async with AsyncTestClient(app=app, base_url=settings.issuer_str) as client:
            yield Harness(client, clock, settings)

    return factory


@pytest.fixture
async def harness(harness_factory: HarnessFactory) -> AsyncIterator[Harness]:
    async with harness_factory() as h:
        yield h
