"""When a failed attempt is tried again: base x 4^(n-1) seconds after the n-th failure, capped, with
±20% jitter so endpoints that fail together do not retry together. With the defaults (5 s base, 10 h
cap, 10 attempts) the retries span about 27 hours: an endpoint down for most of a day loses nothing."""

from __future__ import annotations

import random

from app.config import Settings


def retry_delay(failures: int, settings: Settings, rng: random.Random | None = None) -> float:
    base: float = settings.webhook_retry_base_seconds * 4.0 ** (failures - 1)
    return min(settings.webhook_retry_max_seconds, base) * (rng or random).uniform(0.8, 1.2)


def gives_up(attempts: int, settings: Settings) -> bool:
    return attempts >= settings.webhook_max_attempts
