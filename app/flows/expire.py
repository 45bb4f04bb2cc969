"""Expiry: enforced at every use by the stored absolute expiry; the sweeper only reclaims.

The sweeper deletes expired temporary accounts with everything they own and writes one
``account.expired`` audit event per account, walking an expiry index (cost ∝ what expired). Several
processes may sweep at once: the store deletes (and reports) each account exactly once.
"""

from __future__ import annotations

import asyncio
import logging

from app import observe
from app.context import Context
from app.errors import StoreUnavailable

log = logging.getLogger("authmd.expire")

BATCH = 500


async def sweep_once(ctx: Context) -> int:
    total = 0
    while True:
        deleted = await ctx.store.sweep(ctx.clock.now(), BATCH)
        total += len(deleted)
        for d in deleted:
            observe.account_expired(ctx.tally, d.account_id, d.registrations, d.notes, ctx.clock.now())
        if len(deleted) < BATCH:
            return total


async def run_sweeper(ctx: Context) -> None:
    """Background task of each worker process."""
    while True:
        try:
            await sweep_once(ctx)
        except StoreUnavailable as exc:
            log.warning("sweep skipped, store unavailable: %s", exc)
        except Exception:
            log.exception("sweep failed")
        await asyncio.sleep(ctx.settings.sweep_interval_seconds)


async def run_key_watch(ctx: Context) -> None:
    """Picks up a rotation made by `authmd keys rotate` without a restart."""
    while True:
        await asyncio.sleep(ctx.settings.key_check_interval_seconds)
        try:
            ctx.reload_keys_if_changed(force=False)
        except Exception:
            log.exception("key reload failed")
