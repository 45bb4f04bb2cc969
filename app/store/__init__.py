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
    raise ConfigError("store_url: only sqlite:/// is available in this version")
