"""What every flow needs, built once per process by ``create_app`` (the only place things are wired)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.clock import Clock
from app.config import Settings
from app.endpoints import Endpoints
from app.keys import KeyRing
from app.observe import Tally
from app.store.port import Store
from app.store.window import LocalWindows

if TYPE_CHECKING:
    import httpx

    from app.outbound.cimd import ClientMetadataCache
    from app.outbound.jwks import JwksCache
    from app.outbound.oidc import Discovery
    from app.outbound.verified import VerifiedCache

log = logging.getLogger("authmd")


@dataclass
class Context:
    settings: Settings
    store: Store
    clock: Clock
    keys: KeyRing
    access_cache: VerifiedCache
    assertion_cache: VerifiedCache
    # Outbound HTTP and what it keeps (app/outbound/): provider JWKS, client metadata documents, the
    # sign-in provider's discovery document; created by create_app.
    http: httpx.AsyncClient
    jwks: JwksCache
    cimd: ClientMetadataCache
    oidc: Discovery
    # Registrations refused per source, in this worker's memory (app/flows/register.py).
    refusals: LocalWindows
    # What this process counted for the console's charts, flushed to the store (app/observe.py).
    tally: Tally = field(default_factory=Tally)
    pow_key: bytes = b""
    endpoints: Endpoints = field(init=False)
    # (client_id, sha256(secret)) pairs that passed the slow hash once in this process.
    verified_clients: set[tuple[str, str]] = field(default_factory=set)
    # Called with the new KeyRing after a reload, so published documents (JWKS) follow.
    on_keys_changed: list[Callable[[KeyRing], None]] = field(default_factory=list)
    _last_key_check: float = 0.0

    def __post_init__(self) -> None:
        self.pow_key = self.keys.derive("proof-of-work")
        self.endpoints = Endpoints(self.settings.issuer_str, self.settings.resource_str)

    @property
    def max_token_lifetime(self) -> float:
        return max_token_lifetime(self.settings)

    def reload_keys_if_changed(self, *, force: bool = False) -> bool:
        """Pick up a rotation (``authmd keys rotate``) without a restart; at most one check a second."""
        now = self.clock.now()
        if not force and now - self._last_key_check < 1.0:
            return False
        self._last_key_check = now
        manifest = Path(self.settings.data_dir) / "keys" / "manifest.json"
        try:
            mtime = os.stat(manifest).st_mtime
        except OSError:
            return False
        if mtime == self.keys.manifest_mtime and not force:
            return False
        self.keys = KeyRing.load(self.settings.data_dir, max_token_lifetime=self.max_token_lifetime, now=now)
        self.pow_key = self.keys.derive("proof-of-work")
        log.info("signing keys reloaded; current kid %s", self.keys.current.kid)
        for callback in self.on_keys_changed:
            callback(self.keys)
        return True


def max_token_lifetime(settings: Settings) -> float:
    """The longest any token we sign can live: retired keys stay published this long."""
    return float(
        max(settings.anonymous_ttl_seconds, settings.access_token_ttl_seconds, settings.identity_assertion_ttl_seconds)
    )
