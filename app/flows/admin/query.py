"""The operator's reads: registrations across accounts, one registration by id, an account, the events.

The store indexes registrations by account only (one hash slot per account on Redis Cluster), so a
look-up by registration id alone, or a list across accounts, walks the live accounts in id order. Each
walk of the admin API is bounded (``SCAN_ACCOUNTS`` accounts, ``SCAN_EVENTS`` events per request): a
list that reaches the bound returns what it found with a cursor to go on from, and a look-up by id
that reaches it says so (pass the account to skip the walk).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from app import events as ev
from app.errors import AuthError
from app.flows.admin import views
from app.store.port import Account, Registration, Store

PAGE = 1000  # records per store call when walking the accounts or the events
SCAN_ACCOUNTS = 10_000  # accounts one admin API request may walk
SCAN_EVENTS = 10_000  # events one admin API request may read to fill a filtered page
_EVENT_ID = re.compile(r"evt_[0-9a-f]{28}")  # app/events.py new_event_id
_CURSOR = re.compile(r"(acct_[A-Za-z0-9_-]{1,64})\.((?:reg_[A-Za-z0-9_-]{1,64})?)")


class Filter:
    """Which events to show (every test passes when nothing is given). A type ending in ``.*`` is a
    family: ``agent_registration.claim.*`` matches every ``agent_registration.claim.`` type."""

    def __init__(
        self, account: str | None, types: Sequence[str], since: float | None = None, until: float | None = None
    ) -> None:
        self.account = account
        self.types = [t for t in types if not t.endswith(".*")]
        self.families = [t[:-1] for t in types if t.endswith(".*")]  # "x.claim.*" -> "x.claim."
        self.since = since
        self.until = until

    def __call__(self, event: ev.Event) -> bool:
        if self.account is not None and event.account_id != self.account:
            return False
        kind = ev.type_of(event)
        if (self.types or self.families) and not (kind in self.types or any(kind.startswith(f) for f in self.families)):
            return False
        return (self.since is None or event.at >= self.since) and (self.until is None or event.at < self.until)


async def accounts_from(store: Store, after: str | None, now: float) -> AsyncIterator[Account]:
    """The live accounts with an id after ``after``, in id order, a store page at a time."""
    while page := await store.list_accounts(after, PAGE, now):
        for account in page:
            yield account
        if len(page) < PAGE:
            return
        after = page[-1].id


async def find_registration(
    store: Store, registration_id: str, now: float, *, bounded: bool = True
) -> Registration | None:
    """The live registration with this id, wherever it is (a walk of at most ``SCAN_ACCOUNTS`` accounts
    when ``bounded``). Raises ``not_found`` naming the bound when the walk stopped at it."""
    walked = 0
    async for account in accounts_from(store, None, now):
        if bounded and walked >= SCAN_ACCOUNTS:
            raise AuthError(
                "not_found",
                f"no registration {registration_id} among the first {SCAN_ACCOUNTS} accounts",
                "Pass the registration's account as ?account= to look it up directly.",
            )
        walked += 1
        for reg in await store.registrations_of(account.id, now):
            if reg.id == registration_id:
                return reg
    return None


async def registration(store: Store, registration_id: str, account_id: str | None, now: float) -> Registration:
    """One registration by id, in the given account or found by a bounded walk; ``not_found`` if none."""
    if account_id is not None:
        found = await store.get_registration(account_id, registration_id, now)
    else:
        found = await find_registration(store, registration_id, now)
    if found is None:
        raise AuthError("not_found", f"no live registration {registration_id}")
    return found


def parse_cursor(cursor: str | None) -> tuple[str | None, str]:
    """A registrations cursor is ``{account}.{registration}`` (resume after that registration) or
    ``{account}.`` (resume after that whole account)."""
    if cursor is None or cursor == "":
        return None, ""
    found = _CURSOR.fullmatch(cursor)
    if found is None:
        raise AuthError("invalid_request", "cursor is not one this API returned (pass next_cursor as it came)")
    return found.group(1), found.group(2)


async def registrations_page(
    store: Store,
    now: float,
    *,
    status: views.RegistrationStatus | None,
    type_: str | None,
    account: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[views.RegistrationView], str | None]:
    """Registrations in (account id, registration id) order matching the filters, at most ``limit``,
    and the cursor of the next page (None: nothing more)."""
    after_account, after_reg = parse_cursor(cursor)

    async def candidates() -> AsyncIterator[Account]:
        if account is not None:
            resumes = after_account is None or (after_account == account and after_reg)
            if resumes and (one := await store.get_account(account, now)) is not None:
                yield one
            return
        inside = after_account if after_reg else None  # resume inside the cursor's account
        if inside is not None and (current := await store.get_account(inside, now)) is not None:
            yield current
        async for a in accounts_from(store, after_account, now):
            yield a

    found: list[tuple[Registration, views.RegistrationView]] = []
    walked, last_walked = 0, ""
    async for acct in candidates():
        if walked >= SCAN_ACCOUNTS:  # the bound: go on from after the last account walked
            return [v for _, v in found], f"{last_walked}."
        walked, last_walked = walked + 1, acct.id
        regs = sorted(await store.registrations_of(acct.id, now), key=lambda r: r.id)
        for reg in regs:
            if acct.id == after_account and reg.id <= after_reg:
                continue
            if (status is not None and views.status(reg) != status) or (type_ is not None and reg.type != type_):
                continue
            if len(found) == limit:  # one more exists: the page is full
                last = found[-1][0]
                return [v for _, v in found], f"{last.account_id}.{last.id}"
            claim = await store.get_claim(acct.id, reg.id, now)
            found.append((reg, views.registration_view(reg, claim, now)))
    return [v for _, v in found], None


async def events_page(store: Store, matches: Filter, after: str, limit: int) -> tuple[list[ev.Event], str | None]:
    """Up to ``limit`` matching events after the id ``after``, oldest first, reading at most
    ``SCAN_EVENTS``; the cursor is the id of the last event read when more may follow (None: the end)."""
    if after and not _EVENT_ID.fullmatch(after):
        raise AuthError("invalid_request", "after must be an event id (evt_…) or empty")
    found: list[ev.Event] = []
    read = 0
    while True:
        page = await store.events(after, PAGE)
        for event in page:
            read += 1
            if matches(event):
                if len(found) == limit:
                    return found, found[-1].id
                found.append(event)
            after = event.id
            if read >= SCAN_EVENTS:
                return found, after
        if len(page) < PAGE:
            return found, None


async def account_detail(store: Store, account: Account, now: float) -> views.AccountDetail:
    regs = await store.registrations_of(account.id, now)
    owner = None if account.owner is None else await store.get_user(account.owner)
    reg_views = [views.registration_view(r, await store.get_claim(account.id, r.id, now), now) for r in regs]
    return views.account_detail(account, owner, reg_views)
