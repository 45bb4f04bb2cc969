"""Admin keys: which configured key a request presents, and the throttle on wrong ones.

A key is random with 256 bits, so it is stored as one SHA-256 and checked with one hash of what was
presented, compared against every configured hash in constant time (never a slow KDF per request: that
would hand anyone a way to burn the server's CPU). Wrong keys are counted per source in the shared
sliding windows; past ``admin_failures_per_source`` the source gets 429 for every admin call, a right
key too, so a throttled guesser learns nothing from its guesses.
"""

from __future__ import annotations

import hmac

from app.config import AdminKey, Settings
from app.context import Context
from app.flows.limits import enforce, source_key
from app.store.port import WindowHit
from app.tokens import admin_key_hash


def match(settings: Settings, presented: str) -> AdminKey | None:
    """The configured key whose hash is that of ``presented``, if any. Every entry is compared, so the
    time taken does not tell which entry (if any) matched."""
    digest = admin_key_hash(presented).encode()
    found = None
    for key in settings.admin_keys:
        if hmac.compare_digest(digest, key.key_hash.encode()):
            found = key
    return found


def _window(ctx: Context, source: str, *, count: bool) -> WindowHit:
    return WindowHit(f"admin:fail:{source_key(source)}", ctx.settings.admin_failures_per_source, increment=count)


async def identify(ctx: Context, presented: str | None, source: str) -> AdminKey | None:
    """The admin key presented (None: no key, or a wrong one). Raises the 429 (``rate_limit_exceeded``)
    when the source is over its allowance of wrong keys, before anything it sent is looked at."""
    await enforce(ctx, [_window(ctx, source, count=False)])
    if presented is None:
        return None
    key = match(ctx.settings, presented)
    if key is None:
        # Counted in one atomic step that refuses past the allowance: however many wrong keys arrive at
        # once, at most the allowance of them are answered as checked (401); the rest get the 429.
        await enforce(ctx, [_window(ctx, source, count=True)])
    return key
