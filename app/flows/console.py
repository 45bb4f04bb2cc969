"""What the operator console shows and does: who may use it, the overview's series, search, an account
with its events, revocation as the operator, and the providers' keys.

The console reads what the admin API reads (app/flows/admin/) and revokes through the same verb, so a
revocation from the console writes ``agent_registration.revoked`` and an ``operator.action`` naming the
operator as ``console:<email>``. The charts' numbers come from the per-minute counters (app/observe.py);
every read of them goes through ``_read``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.config import Settings
from app.context import Context
from app.errors import AuthError
from app.flows.admin import act, query, views
from app.flows.admin import webhooks as hooks
from app.flows.limits import LIMIT_NAMES
from app.outbound.jwks import KeysSeen
from app.store.port import Account, Registration, User

Access = Literal["operator", "everyone", "denied", "closed"]
METHODS = ("anonymous", "service_auth", "identity_assertion", "mcp")  # mcp: an MCP client connected
CLAIM_STAGES = ("started", "confirmed", "completed", "denied", "expired")
# The limits observe.refused is called with (the ``refused:{limit}`` series): the windows' names, the
# limits named where they refuse, the quota and proof-of-work refusals (app/routes/errors.py) and a 429's
# code when it names no limit. A limit not listed here is counted but not charted.
LIMITS = (
    *dict.fromkeys(LIMIT_NAMES.values()),
    "unproven_per_source",
    "claim_live_attempts",
    "connections_per_client",
    "notes_quota",
    "proof_of_work",
    "other",
    "rate_limit_exceeded",
    "too_many_attempts",
)
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed", "disabled")
SEARCH_ACCOUNTS = query.SCAN_ACCOUNTS  # accounts one search by agent name may walk
SEARCH_HITS = 50
TIMELINE_EVENTS = 200  # the newest this many of an account's events


def access(settings: Settings, user: User) -> Access:
    """Whether this signed-in person may use the console. An operator is a listed email (case-insensitive;
    a signed-in user's email is verified, or typed at the development sign-in). With no list the console is
    open to everyone only in dev mode with the development sign-in, where nobody is verified anyway."""
    admins = {a.strip().lower() for a in settings.console_admins if a.strip()}
    if not admins:
        return "everyone" if dev_open(settings) else "closed"
    return "operator" if user.email.lower() in admins else "denied"


def dev_open(settings: Settings) -> bool:
    return settings.dev_mode and settings.oidc_issuer is None and not settings.console_admins


def operator_name(user: User) -> str:
    """How the audit trail names the console's operator."""
    return f"console:{user.email}"


# ---- the overview ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    buckets: int
    step: int  # minutes per bucket: below 60 the minute totals, else a multiple of 60 (the hour totals)
    label_format: str

    def span(self, now: float) -> tuple[int, int]:
        """[start, end) in minutes since the epoch; the current minute (or hour) is the last bucket."""
        minute = int(now // 60)
        end = minute + 1 if self.step < 60 else (minute // 60 + 1) * 60
        return end - self.buckets * self.step, end


WINDOWS = {
    "hour": Window("hour", 60, 1, "%H:%M"),
    "day": Window("day", 24, 60, "%H:00"),
    "week": Window("week", 28, 360, "%d %b %H:00"),
}


@dataclass(frozen=True, slots=True)
class Overview:
    window: Window
    labels: list[str]
    registered: dict[str, list[int]]
    registration_refused: list[int]
    claims: dict[str, list[int]]
    funnel: list[tuple[str, int]]
    live: list[int]  # temporary accounts alive at the end of each bucket (derived: see live_series)
    live_now: int
    expired: list[int]
    pow_challenges: list[int]
    pow_refused: list[int]  # registrations refused for a missing or wrong proof of work
    pow_mean_bits: list[float]
    refused: dict[str, list[int]]
    webhooks: dict[str, list[int]]
    endpoints: list[hooks.EndpointView]


async def _read(ctx: Context, names: Sequence[str], window: Window, now: float) -> dict[str, list[int]]:
    """The one place the console reads the counters."""
    start, end = window.span(now)
    counts = await ctx.store.read_counts(names, start, end, window.step)
    return {name: list(counts.get(name, [0] * window.buckets)) for name in names}


def live_series(live_now: int, added: Sequence[int], removed: Sequence[int]) -> list[int]:
    """Live temporary accounts at the end of each bucket, derived (the store counts only the live ones
    now): walking back from now, undo each later bucket's new anonymous accounts and add back those that
    expired, were deleted or were claimed in it. Clamped at 0: counts flushed late or deletions of claimed
    accounts can make the estimate dip below."""
    out = [0] * len(added)
    level = live_now
    for i in range(len(added) - 1, -1, -1):
        out[i] = max(0, level)
        level += removed[i] - added[i]
    return out


async def overview(ctx: Context, window: Window) -> Overview:
    now = ctx.clock.now()
    names = [
        *(f"registered:{m}" for m in METHODS),
        *(f"registration_refused:{m}" for m in METHODS),
        *(f"claim:{s}" for s in CLAIM_STAGES),
        "accounts:expired",
        "accounts:deleted",
        "pow:challenges",
        "pow:difficulty",
        "code:wrong",
        *(f"refused:{limit}" for limit in LIMITS),
        *(f"webhook:{o}" for o in WEBHOOK_OUTCOMES),
    ]
    c = await _read(ctx, names, window, now)
    live_now = await ctx.store.count_temporary(now)
    removed = [sum(v) for v in zip(c["accounts:expired"], c["accounts:deleted"], c["claim:completed"], strict=True)]
    start, _ = window.span(now)
    labels = [
        time.strftime(window.label_format, time.gmtime((start + i * window.step) * 60)) for i in range(window.buckets)
    ]
    claims = {s: c[f"claim:{s}"] for s in CLAIM_STAGES}
    refused = {limit: c[f"refused:{limit}"] for limit in LIMITS if any(c[f"refused:{limit}"])}
    pow_refused = refused.pop("proof_of_work", [0] * window.buckets)  # charted beside the challenges
    refused["wrong claim code"] = c["code:wrong"]
    return Overview(
        window=window,
        labels=labels,
        registered={m: c[f"registered:{m}"] for m in METHODS},
        registration_refused=[sum(v) for v in zip(*(c[f"registration_refused:{m}"] for m in METHODS), strict=True)],
        claims=claims,
        funnel=[
            ("started", sum(claims["started"])),
            ("confirmed", sum(claims["confirmed"])),  # by the human, on the claim page
            ("completed", sum(claims["completed"])),
        ],
        live=live_series(live_now, c["registered:anonymous"], removed),
        live_now=live_now,
        expired=c["accounts:expired"],
        pow_challenges=c["pow:challenges"],
        pow_refused=pow_refused,
        pow_mean_bits=[b / n if n else 0.0 for b, n in zip(c["pow:difficulty"], c["pow:challenges"], strict=True)],
        refused=refused,
        webhooks={o: c[f"webhook:{o}"] for o in WEBHOOK_OUTCOMES},
        endpoints=await hooks.endpoints(ctx.settings, ctx.store),
    )


# ---- search and accounts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    account_id: str
    why: str  # what matched, in words
    registration_id: str | None = None
    agent_name: str | None = None


@dataclass(slots=True)
class Found:
    query: str
    hits: list[Hit] = field(default_factory=list)
    bound: str | None = None  # set when a walk stopped at its bound: what was searched


async def search(ctx: Context, text: str) -> Found:
    """An account id, a registration id, an email (the user's own and claimed accounts) or an agent
    name (a case-insensitive part of it, by a bounded walk of the accounts)."""
    q = text.strip()
    found = Found(q)
    now = ctx.clock.now()
    store = ctx.store
    if not q:
        return found
    if q.startswith("acct_"):
        if (account := await store.get_account(q, now)) is not None:
            found.hits.append(Hit(account.id, f"{account.kind} account"))
    elif q.startswith("reg_"):
        try:
            reg = await query.find_registration(store, q, now)
        except AuthError:
            found.bound = f"the first {query.SCAN_ACCOUNTS:,} accounts"
            reg = None
        if reg is not None:
            found.hits.append(Hit(reg.account_id, f"{reg.type} registration", reg.id, reg.agent_name))
    elif "@" in q:
        if (user := await store.find_user_by_email(q.lower())) is not None:
            for account in await store.owned_accounts(user.id, now):
                why = "their own account" if account.id == user.account_id else "an account they claimed"
                found.hits.append(Hit(account.id, f"{user.email}: {why}"))
    else:
        await _by_agent_name(ctx, q, found, now)
    return found


async def _by_agent_name(ctx: Context, q: str, found: Found, now: float) -> None:
    needle, walked = q.casefold(), 0
    async for account in query.accounts_from(ctx.store, None, now):
        if walked >= SEARCH_ACCOUNTS:
            found.bound = f"the first {SEARCH_ACCOUNTS:,} accounts"
            return
        walked += 1
        for reg in await ctx.store.registrations_of(account.id, now):
            if reg.agent_name and needle in reg.agent_name.casefold():
                found.hits.append(Hit(account.id, f"agent name ({reg.type} registration)", reg.id, reg.agent_name))
                if len(found.hits) >= SEARCH_HITS:
                    found.bound = f"the first {SEARCH_HITS} matches"
                    return


@dataclass(frozen=True, slots=True)
class AccountPage:
    account: Account
    now: float
    detail: views.AccountDetail
    events: list[views.EventView]  # newest first
    events_bound: bool  # only the newest TIMELINE_EVENTS are shown: older ones exist


async def account_page(ctx: Context, account_id: str) -> AccountPage:
    now = ctx.clock.now()
    account = await ctx.store.get_account(account_id, now)
    if account is None:
        raise AuthError("not_found", f"no live account {account_id}")
    detail = await query.account_detail(ctx.store, account, now)
    # One read by the account's own index, whatever the number of other accounts' events; one more than
    # shown tells whether older ones exist.
    events = await ctx.store.account_events(account.id, TIMELINE_EVENTS + 1)
    shown = events[-TIMELINE_EVENTS:]
    return AccountPage(account, now, detail, [views.event_view(e) for e in reversed(shown)], len(events) > len(shown))


async def live_registration(ctx: Context, account_id: str, registration_id: str) -> Registration:
    """The registration a console form names, in its account; ``not_found`` if there is none."""
    reg = await ctx.store.get_registration(account_id, registration_id, ctx.clock.now())
    if reg is None:
        raise AuthError("not_found", f"no live registration {registration_id} in {account_id}")
    return reg


async def revoke(ctx: Context, reg: Registration, user: User) -> bool:
    """Revoke as the operator; False if it was no longer live (revoked meanwhile: nothing to do)."""
    return bool(await act.revoke_each(ctx, [reg], operator_name(user)))


# ---- providers ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderRow:
    issuer: str
    name: str
    jwks_url: str
    keys: KeysSeen | None
    refused_day: int  # ID-JAGs refused in the last day


async def providers(ctx: Context) -> tuple[list[ProviderRow], int]:
    """The trust list with what this process knows of each provider's keys, and the ID-JAGs from
    untrusted issuers refused in the last day."""
    listed = ctx.settings.providers
    names = [f"idjag_refused:{p.issuer}" for p in listed] + ["idjag_refused:untrusted"]
    day = await _read(ctx, names, WINDOWS["day"], ctx.clock.now())
    rows = [
        ProviderRow(
            p.issuer, p.display_name, p.jwks_url, ctx.jwks.seen(p.jwks_url), sum(day[f"idjag_refused:{p.issuer}"])
        )
        for p in listed
    ]
    return rows, sum(day["idjag_refused:untrusted"])
