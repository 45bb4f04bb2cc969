"""Expiry: enforced at every use by the stored absolute expiry; the sweeper only reclaims.

The sweeper deletes expired temporary accounts with everything they own and writes one
``account.expired`` audit event per account, walking an expiry index (cost ∝ what expired). Several
processes may sweep at once: the store deletes (and reports) each account exactly once. Each pass also
sets the live temporary accounts gauge and, at most once a minute, trims the console's counters.
"""

from __future__ import annotations

import asyncio
import logging

from app import metrics, observe
from app.context import Context
from app.errors import StoreUnavailable

log = logging.getLogger("authmd.expire")

BATCH = 500
TRIM_SECONDS = 60.0  # totals are kept by the minute: trimming more often finds nothing new


async def sweep_once(ctx: Context) -> int:
    total = 0
    while True:
        deleted = await ctx.store.sweep(ctx.clock.now(), BATCH)
        total += len(deleted)
        for d in deleted:
            observe.account_expired(ctx.tally, d.account_id, d.registrations, d.notes, ctx.clock.now())
        if len(deleted) < BATCH:
            return total


async def tend_counters(ctx: Context, trimmed_at: float | None) -> float | None:
    """Set the temporary accounts gauge, and trim the counters if the last trim (``trimmed_at``) was a
    minute ago or more; returns when counters were last trimmed. Failures are logged, never raised."""
    now = ctx.clock.now()
    if trimmed_at is None or now - trimmed_at >= TRIM_SECONDS:
        try:
            await ctx.store.trim_counts(now)
            trimmed_at = now
        except StoreUnavailable as exc:
            log.warning("counters not trimmed, store unavailable: %s", exc)
        except Exception:
            log.exception("trimming counters failed")
    try:
        metrics.TEMPORARY_ACCOUNTS.set(await ctx.store.count_temporary(now))
    except StoreUnavailable as exc:
        log.warning("temporary accounts not counted, store unavailable: %s", exc)
    except Exception:
        log.exception("counting temporary accounts failed")
    return trimmed_at


async def run_sweeper(ctx: Context) -> None:
    """Background task of each worker process."""
    trimmed_at = None
    while True:
        try:
            await sweep_once(ctx)
        except StoreUnavailable as exc:
            log.warning("sweep skipped, store unavailable: %s", exc)
        except Exception:
            log.exception("sweep failed")
        trimmed_at = await tend_counters(ctx, trimmed_at)
        await asyncio.sleep(ctx.settings.sweep_interval_seconds)


async def run_key_watch(ctx: Context) -> None:
    """Picks up a rotation made by `authmd keys rotate` without a restart."""
    while True:
        await asyncio.sleep(ctx.settings.key_check_interval_seconds)
        try:
            ctx.reload_keys_if_changed(force=False)
        except Exception:
            log.exception("key reload failed")
