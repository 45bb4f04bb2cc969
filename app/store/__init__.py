"""Where state lives. ``open_store`` picks the adapter from the store URL."""

from __future__ import annotations

from app.config import ConfigError
from app.store.port import Store


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        from app.store.sqlite import SQLiteStore

        try:
            return SQLiteStore.from_url(url)
        except ValueError as exc:
            raise ConfigError(f"store_url: {exc}") from exc
    if url.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")):
        from app.store.redis import RedisStore

        return RedisStore(url)
    raise ConfigError("store_url: expected sqlite:///PATH, redis://, rediss://, redis+cluster:// or rediss+cluster://")
