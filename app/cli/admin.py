"""Operator verbs on the configured store: the same settings as `authmd serve` (--config FILE or
$AUTHMD_CONFIG, then AUTHMD_* variables), so run it where the server runs, with its environment.
Changes take effect at once on every running instance: each use of a token reads its grant.

  list [--kind temporary|persistent] [--limit N] [--after ID] [--json]
      Live accounts in id order: kind, created, expires, owner's email, registrations, notes.
      Pages: pass the last id shown (or the printed next page) as --after.
        authmd admin list --kind persistent --limit 20
        authmd admin list --after acct_Q2x... --json

  show ID [--account ACCOUNT_ID] [--json]
      ID is an account id (acct_...), an email (the person: their own account and every account they
      own), or a registration id (its account is looked up, or given with --account, which is faster).
      Shows each registration (type, scopes, agent, created, revoked or pending, generation) and its
      claim, if one was started.
        authmd admin show acct_Q2x...
        authmd admin show ada@example.com --json
        authmd admin show reg_7fK...

  revoke ACCOUNT_ID [REGISTRATION_ID] [--yes] [--json]
      Revoke one registration, or every live one of the account: their tokens fail at their next use.
      Asks first on a terminal, unless --yes.
        authmd admin revoke acct_Q2x... reg_7fK...
        authmd admin revoke acct_Q2x... --yes

  revoke-all EMAIL|ACCOUNT_ID --yes [--json]
      Revoke every grant of a person (of every account they own) or of one account. Without --yes it
      only says what it would revoke, and exits 2.
        authmd admin revoke-all ada@example.com --yes

  events [--account ACCOUNT_ID] [--type TYPE]... [--since WHEN] [--until WHEN] [--follow] [--json]
      The domain events, oldest first (spec/events.md): registrations created, claim attempts, claims
      completed, credentials issued, revocations, deletions, expiries, operator actions. WHEN is an
      ISO 8601 time (2026-12-04T21:00:00Z) or a duration back from now (90s, 15m, 1h, 7d); --since
      includes it, --until excludes it. A TYPE ending in .* is a family (agent_registration.claim.*).
      --follow prints the matching events, then each new one as it is written (the store is polled
      every second) until interrupted (Ctrl-C, exit 0); with --json it prints JSON lines, one object
      per event, instead of one array.
        authmd admin events --since 1h
        authmd admin events --account acct_Q2x... --type agent_registration.revoked --json
        authmd admin events --follow --since 10m

  webhooks list | deliveries [--endpoint NAME] [--status S] [--before SEQ] | retry ID | enable NAME [--json]
      The webhook endpoints (state, last success and failure, deliveries waiting), the delivery log
      (newest first: attempts, last status, latency, last error), and the two changes: send a failed
      delivery again (next in its queue), resume a disabled endpoint (spec/webhooks.md).
        authmd admin webhooks deliveries --status failed
        authmd admin webhooks enable crm

Exit status: 0 done; 1 not found or nothing to do; 2 usage or configuration error; 3 store unavailable.
With --json, stdout carries exactly one JSON value (JSON lines with events --follow), an error too:
{"ok": false, "exit": N, "message": "..."}; messages go to stderr as well. Times are RFC 3339 in UTC.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from app import events as ev
from app import observe
from app.cli import admin_webhooks
from app.clock import ManualClock, SystemClock, rfc3339
from app.config import ConfigError, load_settings, redact_url
from app.errors import StoreUnavailable
from app.flows import grants
from app.flows.admin import act, query, views
from app.store import open_store
from app.store.port import Account, AccountKind, Claim, Registration, Store, User
from app.text import normalize_email

OK, NOT_FOUND, USAGE, UNAVAILABLE = 0, 1, 2, 3
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
FOLLOW_POLL_SECONDS = 1.0
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Exit(Exception):
    """Stop with a message on stderr and an exit status (and ``data`` for the JSON error value)."""

    def __init__(self, status: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.data = data or {}


def _json_error(status: int, message: str, data: dict[str, Any] | None = None) -> str:
    return json.dumps({"ok": False, "exit": status, "message": message, **(data or {})})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description, p.formatter_class = __doc__, argparse.RawDescriptionHelpFormatter
    p.add_argument("--config", default=None, help="TOML file (default: $AUTHMD_CONFIG)")
    # Also accepted after the verb: SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="TOML file (default: $AUTHMD_CONFIG)")
    common.add_argument("--json", action="store_true", help="print one JSON value on stdout")
    verbs = p.add_subparsers(dest="admin_cmd", required=True, metavar="{list,show,revoke,revoke-all,events,webhooks}")

    def verb(name: str, summary: str, examples: Sequence[str]) -> argparse.ArgumentParser:
        return verbs.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog="examples:\n" + "\n".join(f"  authmd admin {e}" for e in examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    listing = verb(
        "list",
        "List live accounts in id order, a page at a time.",
        ["list --kind persistent --limit 20", "list --after acct_Q2x... --json"],
    )
    listing.add_argument("--kind", choices=["temporary", "persistent"], help="only accounts of this kind")
    listing.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"accounts per page (1-{MAX_LIMIT}, default {DEFAULT_LIMIT})"
    )
    listing.add_argument("--after", metavar="ID", help="start after this account id (the last one of a page)")

    show = verb(
        "show",
        "Show accounts with their registrations and claims: by account id, email, or registration id.",
        ["show acct_Q2x...", "show ada@example.com --json", "show reg_7fK...", "show reg_7fK... --account acct_Q2x..."],
    )
    show.add_argument("id", metavar="ID", help="an account id, an email, or a registration id")
    show.add_argument("--account", metavar="ACCOUNT_ID", help="the account of the registration ID (else looked up)")

    revoke = verb(
        "revoke",
        "Revoke one registration of an account, or every live one when no registration id is given.",
        ["revoke acct_Q2x... reg_7fK...", "revoke acct_Q2x... --yes"],
    )
    revoke.add_argument("account_id", metavar="ACCOUNT_ID")
    revoke.add_argument("registration_id", metavar="REGISTRATION_ID", nargs="?")
    revoke.add_argument("--yes", action="store_true", help="do not ask (asked only on a terminal)")

    revoke_all = verb(
        "revoke-all",
        "Revoke every grant of a person (every account they own) or of one account. Needs --yes.",
        ["revoke-all ada@example.com --yes", "revoke-all acct_Q2x... --yes --json"],
    )
    revoke_all.add_argument("target", metavar="EMAIL|ACCOUNT_ID")
    revoke_all.add_argument("--yes", action="store_true", help="really revoke (without it: say what it would do)")

    events = verb(
        "events",
        "The domain events, oldest first, filtered; --follow keeps printing new events until interrupted.",
        [
            "events --since 1h",
            "events --account acct_Q2x... --type agent_registration.revoked --json",
            "events -f --since 10m",
        ],
    )
    events.add_argument("--account", metavar="ACCOUNT_ID", help="only events of this account")
    events.add_argument(
        "--type",
        dest="types",
        action="append",
        metavar="TYPE",
        help="only this type (repeatable; agent_registration.claim.* a family)",
    )
    events.add_argument("--since", metavar="WHEN", help="from this time: ISO 8601, or back from now: 90s, 15m, 1h, 7d")
    events.add_argument("--until", metavar="WHEN", help="before this time (same forms)")
    events.add_argument(
        "-f", "--follow", action="store_true", help="then print new events as they come (JSON lines with --json)"
    )

    admin_webhooks.add_arguments(verb)


def parse_when(value: str, now: float) -> float:
    """An ISO 8601 time (UTC when it has no offset) or a duration back from ``now`` (90s, 15m, 1h, 7d, 2w)."""
    value = value.strip()
    if found := _DURATION.fullmatch(value):
        return now - int(found.group(1)) * _UNIT[found.group(2)]
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Exit(USAGE, f"{value!r} is neither an ISO 8601 time (2026-12-04T21:00:00Z) nor a duration (1h)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def run(args: argparse.Namespace) -> int:
    try:
        if args.admin_cmd == "list" and not 1 <= args.limit <= MAX_LIMIT:
            raise Exit(USAGE, f"--limit must be between 1 and {MAX_LIMIT}")
        if args.admin_cmd == "events" and args.follow and args.until:
            raise Exit(USAGE, "--until cannot be combined with --follow (which runs until interrupted)")
        out = asyncio.run(_run(args))
    except Exit as stop:
        return _fail(args, stop.status, str(stop), stop.data)
    except ConfigError as exc:
        return _fail(args, USAGE, f"configuration error: {exc}")
    except StoreUnavailable as exc:
        return _fail(args, UNAVAILABLE, f"the store is unavailable ({exc})")
    except KeyboardInterrupt:  # the way to end --follow; anywhere else (at the prompt of revoke), a stop
        return OK if args.admin_cmd == "events" and args.follow else _fail(args, 130, "interrupted, nothing more done")
    if out is None:  # events --follow printed as it went
        return OK
    if args.json:
        print(json.dumps(out.value, indent=2))
    else:
        for line in out.lines:
            print(line)
    return OK


def _fail(args: argparse.Namespace, status: int, message: str, data: dict[str, Any] | None = None) -> int:
    if args.json:
        print(_json_error(status, message, data), flush=True)
    print(f"authmd admin: {message}", file=sys.stderr)
    return status


class Output:
    """What a verb found: one JSON value, and the same for a human."""

    def __init__(self, value: Any, lines: list[str]) -> None:
        self.value = value
        self.lines = lines


async def _run(args: argparse.Namespace) -> Output | None:
    now = SystemClock().now()
    if args.admin_cmd == "events":  # bad times are a usage error before the store is touched
        since = None if args.since is None else parse_when(args.since, now)
        until = None if args.until is None else parse_when(args.until, now)
    settings = load_settings(args.config).resolve()
    url = settings.store_url_str
    store = open_store(url)  # checks the URL
    if url.startswith("sqlite:///"):
        from app.store.sqlite import parse_sqlite_url

        path = parse_sqlite_url(url)[0]
        if not path.exists():  # opening would create an empty store: surely the wrong data_dir
            raise ConfigError(f"no store at {path.resolve()} (check data_dir or store_url)")
    try:
        try:
            await store.open()
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"{redact_url(url)}: {exc}") from exc
        admin = Admin(store, now)
        match args.admin_cmd:
            case "list":
                return await admin.list_accounts(args.kind, args.limit, args.after)
            case "show":
                return await admin.show(args.id, args.account)
            case "revoke":
                return await admin.revoke(args.account_id, args.registration_id, args.yes)
            case "revoke-all":
                return await admin.revoke_all(args.target, args.yes)
            case "webhooks":
                value, said, known = await admin_webhooks.run(args, store, settings, now)
                if not known:
                    raise Exit(NOT_FOUND, said[0], value)
                return Output(value, said)
            case _:
                matches = query.Filter(args.account, args.types or [], since, until)
                if not args.follow:
                    found = [e async for e in admin.events(matches, follow=False)]
                    lines = [_event_line(e) for e in found] or ["no matching events"]
                    return Output([_plain(views.event_view(e)) for e in found], lines)
                async for event in admin.events(matches, follow=True):
                    print(json.dumps(_plain(views.event_view(event))) if args.json else _event_line(event), flush=True)
                return None
    finally:
        await store.close()


# ---------------------------------------------------------------------------------------------------
# Views: records as JSON values and as text, times in RFC 3339 (UTC) in both
# ---------------------------------------------------------------------------------------------------


def _when(ts: int | float | None, none: str = "never") -> str:
    return none if ts is None else rfc3339(ts)


def _plain(view: msgspec.Struct) -> dict[str, Any]:
    """A view as the JSON value the CLI prints (the admin API encodes the same struct)."""
    value: dict[str, Any] = msgspec.to_builtins(view)
    return value


def _event_line(event: ev.Event) -> str:
    data = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in views.payload(event).items())
    ids = f"{event.account_id or '-'}  {event.registration_id or '-'}"
    return f"{rfc3339(event.at)}  {ev.type_of(event)}  {ids}  {data}".rstrip()


def _operator() -> str:
    """Who runs the command: the invoking user behind sudo, else the local user name."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except OSError:  # no name for this uid (a bare container)
        return f"uid:{os.getuid()}"


def _agent(reg: Registration) -> str:
    if reg.agent_name and reg.agent_platform:
        return f"{reg.agent_name} ({reg.agent_platform})"
    return reg.agent_name or reg.agent_platform or "-"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _claim_line(claim: Claim, now: float) -> str:
    if claim.status == "claimed":
        return f"claimed by {claim.claimed_by or '?'} at {_when(claim.claimed_at, '?')}"
    if claim.status == "denied":
        return "denied (the human said it was not them)"
    if claim.status == "revoked":
        return "revoked"
    parts = [f"pending until {_when(claim.expires_at)}"]
    for a in claim.attempts:
        if not a.live(now):
            continue
        attempt = f"attempt open until {_when(a.expires_at)}"
        if a.confirmed_by:
            attempt += f", authorized by {a.confirmed_by}"
        if a.login_hint:
            attempt += f", for {a.login_hint}"
        parts.append(attempt)
    if claim.failures:
        parts.append(f"{claim.failures} wrong code(s)")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------
# The verbs
# ---------------------------------------------------------------------------------------------------


class Admin:
    def __init__(self, store: Store, now: float) -> None:
        self.store = store
        self.now = now
        self._users: dict[str, User | None] = {}

    async def _user(self, user_id: str | None) -> User | None:
        if user_id is None:
            return None
        if user_id not in self._users:
            self._users[user_id] = await self.store.get_user(user_id)
        return self._users[user_id]

    async def _account(self, account_id: str) -> Account:
        account = await self.store.get_account(account_id, self.now)
        if account is None:
            raise Exit(NOT_FOUND, f"no live account {account_id}")
        return account

    async def _person(self, email: str) -> tuple[User, list[Account]]:
        """The user with this email, their own account first, then every other account they own."""
        user = await self.store.find_user_by_email(normalize_email(email))
        if user is None:
            raise Exit(NOT_FOUND, f"no user with the email {email.strip()}")
        owned = await self.store.owned_accounts(user.id, self.now)
        own = await self.store.get_account(user.account_id, self.now)
        accounts = [own] if own is not None else []
        accounts += [a for a in owned if a.id != user.account_id]
        return user, accounts

    async def _registration_account(self, registration_id: str) -> Account:
        """The live account holding a registration, found by walking every account (an operator's
        occasional look-up, unbounded here; --account skips it)."""
        reg = await query.find_registration(self.store, registration_id, self.now, bounded=False)
        account = None if reg is None else await self.store.get_account(reg.account_id, self.now)
        if account is None:
            raise Exit(NOT_FOUND, f"no live registration {registration_id}")
        return account

    # ---- events ------------------------------------------------------------------------------
    async def events(self, matches: query.Filter, *, follow: bool) -> AsyncIterator[ev.Event]:
        """The matching events, oldest id first; with ``follow``, then every new one, polling."""
        after = ""
        while True:
            page = await self.store.events(after, query.PAGE)
            for event in page:
                if matches(event):
                    yield event
            if page:
                after = page[-1].id
            if len(page) < query.PAGE:
                if not follow:
                    return
                await asyncio.sleep(FOLLOW_POLL_SECONDS)

    # ---- list --------------------------------------------------------------------------------
    async def list_accounts(self, kind: AccountKind | None, limit: int, after: str | None) -> Output:
        page = await self.store.list_accounts(after, limit + 1, self.now, kind)
        more = len(page) > limit
        page = page[:limit]
        summaries = []
        for account in page:
            regs = await self.store.registrations_of(account.id, self.now)
            summaries.append(_plain(views.account_summary(account, await self._user(account.owner), regs)))
        next_after = page[-1].id if more else None
        rows = [["ID", "KIND", "CREATED", "EXPIRES", "OWNER", "REGS", "ACTIVE", "NOTES"]]
        for v in summaries:
            rows.append(
                [
                    v["id"],
                    v["kind"],
                    v["created_at"],
                    v["expires_at"] or "never",
                    v["owner_email"] or ("-" if v["owner"] is None else v["owner"]),
                    str(v["registrations"]),
                    str(v["active_registrations"]),
                    f"{v['notes']}/{v['quota_notes']}",
                ]
            )
        lines = _table(rows) if summaries else ["no live accounts" + (f" after {after}" if after else "")]
        if next_after:
            lines.append(f"next page: authmd admin list --after {next_after}" + (f" --kind {kind}" if kind else ""))
        return Output({"accounts": summaries, "next_after": next_after}, lines)

    # ---- show --------------------------------------------------------------------------------
    async def show(self, ident: str, account_id: str | None) -> Output:
        user: User | None = None
        only: str | None = None
        if account_id is not None:
            accounts = [await self._account(account_id)]
            only = ident
        elif "@" in ident:
            user, accounts = await self._person(ident)
        elif ident.startswith("acct_"):
            accounts = [await self._account(ident)]
        elif ident.startswith("reg_"):
            accounts = [await self._registration_account(ident)]
            only = ident
        else:
            raise Exit(USAGE, f"{ident} is not an account id (acct_...), a registration id (reg_...) or an email")
        shown: list[dict[str, Any]] = []
        lines: list[str] = []
        if user is not None:
            lines.append(
                f"user {user.id} <{user.email}>, since {_when(user.created_at)}, own account {user.account_id}"
            )
        for account in accounts:
            regs = await self.store.registrations_of(account.id, self.now)
            if only is not None:
                regs = [r for r in regs if r.id == only]
                if not regs:
                    raise Exit(NOT_FOUND, f"no live registration {only} in account {account.id}")
            owner = await self._user(account.owner)
            reg_views = []
            lines.append(
                f"account {account.id}  {account.kind}  created {_when(account.created_at)}  "
                f"expires {_when(account.expires_at)}  owner {owner.email if owner else account.owner or '-'}  "
                f"notes {account.note_count}/{account.quota_notes}"
            )
            if not regs:
                lines.append("  (no live registrations)")
            for reg in regs:
                claim = await self.store.get_claim(account.id, reg.id, self.now)
                reg_views.append(views.registration_view(reg, claim, self.now))
                state = views.status(reg) + (f" at {_when(reg.revoked_at)}" if reg.revoked_at is not None else "")
                lines += [
                    f"  registration {reg.id}  {reg.type}  {state}  generation {reg.generation}",
                    f"    scopes   {' '.join(reg.scopes) or '-'}",
                    f"    agent    {_agent(reg)}",
                    f"    created  {_when(reg.created_at)}, expires {_when(reg.expires_at)}",
                ]
                if claim is not None:
                    lines.append(f"    claim    {_claim_line(claim, self.now)}")
            shown.append(_plain(views.account_detail(account, owner, reg_views)))
        user_view = None if user is None else _plain(views.user_view(user))
        return Output({"user": user_view, "accounts": shown}, lines)

    # ---- revoke ------------------------------------------------------------------------------
    async def _revoke(self, plan: Sequence[Registration]) -> Output:
        # The command acts at the one instant it reads at: every revocation and event of it has that time.
        tally = observe.Tally()  # the console's charts count an operator's revocations too
        done = await act.revoke_each(grants.Actor(self.store, ManualClock(self.now), tally), plan, _operator())
        await observe.flush(tally, self.store)
        if not done:
            raise Exit(NOT_FOUND, "nothing revoked: every grant was already revoked or gone")
        value = _plain(views.revocation(done, self.now))
        lines = [f"revoked {r.account_id} {r.id} ({r.type}, agent {_agent(r)})" for r in done]
        return Output(value, lines)

    async def revoke(self, account_id: str, registration_id: str | None, yes: bool) -> Output:
        account = await self._account(account_id)
        if registration_id is not None:
            reg = await self.store.get_registration(account.id, registration_id, self.now)
            if reg is None:
                raise Exit(NOT_FOUND, f"no live registration {registration_id} in account {account.id}")
            if reg.revoked_at is not None:
                raise Exit(
                    NOT_FOUND,
                    f"{registration_id} was already revoked at {_when(reg.revoked_at)}",
                    {"revoked": [], "already_revoked_at": views.iso(reg.revoked_at)},
                )
            plan = [reg]
        else:
            plan = await act.live_registrations(self.store, [account], self.now)
            if not plan:
                raise Exit(NOT_FOUND, f"account {account.id} has no live registration to revoke")
        if not yes and sys.stdin.isatty():
            names = ", ".join(r.id for r in plan)
            print(f"revoke {len(plan)} registration(s) of {account.id}: {names}? [y/N] ", end="", file=sys.stderr)
            if input().strip().lower() not in ("y", "yes"):
                raise Exit(NOT_FOUND, "nothing revoked")
        return await self._revoke(plan)

    async def revoke_all(self, target: str, yes: bool) -> Output:
        if "@" in target:
            user, accounts = await self._person(target)
            whose = f"{user.email} ({len(accounts)} account(s))"
        else:
            accounts = [await self._account(target)]
            whose = f"account {target}"
        plan = await act.live_registrations(self.store, accounts, self.now)
        if not plan:
            raise Exit(NOT_FOUND, f"{whose} has no live registration to revoke")
        if not yes:
            listed = "\n".join(f"  {r.account_id} {r.id} ({r.type}, {views.status(r)})" for r in plan)
            raise Exit(
                USAGE,
                f"would revoke {len(plan)} grant(s) of {whose}:\n{listed}\nnothing changed; run again with --yes",
                {"would_revoke": [{"account_id": r.account_id, "registration_id": r.id, "type": r.type} for r in plan]},
            )
        return await self._revoke(plan)
