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
      own), or a registration id together with --account. Shows each registration (type, scopes, agent,
      created, revoked or pending, generation) and its claim, if one was started.
        authmd admin show acct_Q2x...
        authmd admin show ada@example.com --json
        authmd admin show reg_7fK... --account acct_Q2x...

  revoke ACCOUNT_ID [REGISTRATION_ID] [--yes] [--json]
      Revoke one registration, or every live one of the account: their tokens fail at their next use.
      Asks first on a terminal, unless --yes.
        authmd admin revoke acct_Q2x... reg_7fK...
        authmd admin revoke acct_Q2x... --yes

  revoke-all EMAIL|ACCOUNT_ID --yes [--json]
      Revoke every grant of a person (of every account they own) or of one account. Without --yes it
      only says what it would revoke, and exits 2.
        authmd admin revoke-all ada@example.com --yes

Exit status: 0 done; 1 not found or nothing to do; 2 usage or configuration error; 3 store unavailable.
With --json, stdout carries exactly one JSON value; messages and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from app.clock import SystemClock, rfc3339
from app.config import ConfigError, load_settings, redact_url
from app.errors import StoreUnavailable
from app.store import open_store
from app.store.port import Account, AccountKind, AuditEvent, Claim, Registration, Store, User
from app.text import normalize_email

OK, NOT_FOUND, USAGE, UNAVAILABLE = 0, 1, 2, 3
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


class Exit(Exception):
    """Stop with a message on stderr and an exit status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="TOML file (default: $AUTHMD_CONFIG)")
    # Also accepted after the verb: SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="TOML file (default: $AUTHMD_CONFIG)")
    common.add_argument("--json", action="store_true", help="print one JSON value on stdout")
    verbs = p.add_subparsers(dest="admin_cmd", required=True, metavar="{list,show,revoke,revoke-all}")

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
        ["show acct_Q2x...", "show ada@example.com --json", "show reg_7fK... --account acct_Q2x..."],
    )
    show.add_argument("id", metavar="ID", help="an account id, an email, or a registration id (with --account)")
    show.add_argument("--account", metavar="ACCOUNT_ID", help="the account of the registration ID")

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


def run(args: argparse.Namespace) -> int:
    try:
        if args.admin_cmd == "list" and not 1 <= args.limit <= MAX_LIMIT:
            raise Exit(USAGE, f"--limit must be between 1 and {MAX_LIMIT}")
        out = asyncio.run(_run(args))
    except Exit as stop:
        print(f"authmd admin: {stop}", file=sys.stderr)
        return stop.status
    except ConfigError as exc:
        print(f"authmd admin: configuration error: {exc}", file=sys.stderr)
        return USAGE
    except StoreUnavailable as exc:
        print(f"authmd admin: the store is unavailable ({exc})", file=sys.stderr)
        return UNAVAILABLE
    if args.json:
        print(json.dumps(out.value, indent=2))
    else:
        for line in out.lines:
            print(line)
    return OK


class Output:
    """What a verb found: one JSON value, and the same for a human."""

    def __init__(self, value: Any, lines: list[str]) -> None:
        self.value = value
        self.lines = lines


async def _run(args: argparse.Namespace) -> Output:
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
        admin = Admin(store, SystemClock().now())
        match args.admin_cmd:
            case "list":
                return await admin.list_accounts(args.kind, args.limit, args.after)
            case "show":
                return await admin.show(args.id, args.account)
            case "revoke":
                return await admin.revoke(args.account_id, args.registration_id, args.yes)
            case _:
                return await admin.revoke_all(args.target, args.yes)
    finally:
        await store.close()


# ---------------------------------------------------------------------------------------------------
# Views: records as JSON values (epoch seconds) and as text (RFC 3339)
# ---------------------------------------------------------------------------------------------------


def _when(ts: int | float | None, none: str = "never") -> str:
    return none if ts is None else rfc3339(ts)


def _status(reg: Registration) -> str:
    return "revoked" if reg.revoked_at is not None else "pending" if reg.pending else "active"


def _claim_view(claim: Claim, now: float) -> dict[str, Any]:
    # Never the hashes: the operator needs the state of the ceremony, not its secrets' fingerprints.
    return {
        "status": claim.status,
        "expires_at": claim.expires_at,
        "attempts": [
            {
                "id": a.id,
                "expires_at": a.expires_at,
                "login_hint": a.login_hint,
                "method": a.method,
                "confirmed_by": a.confirmed_by,
                "code_expires_at": a.code_expires_at if a.code_live(now) else None,
            }
            for a in claim.attempts
            if a.live(now)
        ],
        "window_failures": claim.window_failures,
        "failures": claim.failures,
        "provider": claim.provider,
        "subject": claim.subject,
        "claimed_by": claim.claimed_by,
        "claimed_at": claim.claimed_at,
    }


def _registration_view(reg: Registration, claim: Claim | None, now: float) -> dict[str, Any]:
    return {
        "id": reg.id,
        "type": reg.type,
        "status": _status(reg),
        "scopes": list(reg.scopes),
        "agent_name": reg.agent_name,
        "agent_platform": reg.agent_platform,
        "created_at": reg.created_at,
        "expires_at": reg.expires_at,
        "revoked_at": reg.revoked_at,
        "pending": reg.pending,
        "generation": reg.generation,
        "not_before": reg.not_before,
        "source": reg.source,
        "claim": None if claim is None else _claim_view(claim, now),
    }


def _account_view(account: Account, owner: User | None, regs: Sequence[Registration]) -> dict[str, Any]:
    return {
        "id": account.id,
        "kind": account.kind,
        "created_at": account.created_at,
        "expires_at": account.expires_at,
        "owner": account.owner,
        "owner_email": owner.email if owner else None,
        "registrations": len(regs),
        "active_registrations": sum(_status(r) == "active" for r in regs),
        "notes": account.note_count,
        "quota_notes": account.quota_notes,
        "quota_note_bytes": account.quota_note_bytes,
    }


def _user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "account_id": user.account_id, "created_at": user.created_at}


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

    # ---- list --------------------------------------------------------------------------------
    async def list_accounts(self, kind: AccountKind | None, limit: int, after: str | None) -> Output:
        page = await self.store.list_accounts(after, limit + 1, self.now, kind)
        more = len(page) > limit
        page = page[:limit]
        views = []
        for account in page:
            regs = await self.store.registrations_of(account.id, self.now)
            views.append(_account_view(account, await self._user(account.owner), regs))
        next_after = page[-1].id if more else None
        rows = [["ID", "KIND", "CREATED", "EXPIRES", "OWNER", "REGS", "ACTIVE", "NOTES"]]
        for v in views:
            rows.append(
                [
                    v["id"],
                    v["kind"],
                    _when(v["created_at"]),
                    _when(v["expires_at"]),
                    v["owner_email"] or ("-" if v["owner"] is None else v["owner"]),
                    str(v["registrations"]),
                    str(v["active_registrations"]),
                    f"{v['notes']}/{v['quota_notes']}",
                ]
            )
        lines = _table(rows) if views else ["no live accounts" + (f" after {after}" if after else "")]
        if next_after:
            lines.append(f"next page: authmd admin list --after {next_after}" + (f" --kind {kind}" if kind else ""))
        return Output({"accounts": views, "next_after": next_after}, lines)

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
        else:
            raise Exit(USAGE, f"{ident} is not an account id (acct_...) or an email; for a registration add --account")
        views: list[dict[str, Any]] = []
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
            view = _account_view(account, owner, regs)
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
                reg_views.append(_registration_view(reg, claim, self.now))
                state = _status(reg) + (f" at {_when(reg.revoked_at)}" if reg.revoked_at is not None else "")
                lines += [
                    f"  registration {reg.id}  {reg.type}  {state}  generation {reg.generation}",
                    f"    scopes   {' '.join(reg.scopes) or '-'}",
                    f"    agent    {_agent(reg)}",
                    f"    created  {_when(reg.created_at)}, expires {_when(reg.expires_at)}",
                ]
                if claim is not None:
                    lines.append(f"    claim    {_claim_line(claim, self.now)}")
            del view["active_registrations"]
            view["registrations"] = reg_views  # here the registrations themselves, not their count
            views.append(view)
        return Output({"user": None if user is None else _user_view(user), "accounts": views}, lines)

    # ---- revoke ------------------------------------------------------------------------------
    async def _plan(self, accounts: Sequence[Account]) -> list[Registration]:
        plan = []
        for account in accounts:
            plan += [r for r in await self.store.registrations_of(account.id, self.now) if r.revoked_at is None]
        return plan

    async def _revoke(self, plan: Sequence[Registration]) -> Output:
        done = []
        for reg in plan:
            event = AuditEvent(
                at=self.now,
                type="registration.revoked",
                account_id=reg.account_id,
                registration_id=reg.id,
                data={"by": "operator"},
            )
            # False: revoked or expired meanwhile (by its owner, another operator): nothing to report.
            if await self.store.revoke_registration(reg.account_id, reg.id, self.now, event):
                done.append(reg)
        if not done:
            raise Exit(NOT_FOUND, "nothing revoked: every grant was already revoked or gone")
        value = {
            "revoked": [{"account_id": r.account_id, "registration_id": r.id, "type": r.type} for r in done],
            "at": int(self.now),
        }
        lines = [f"revoked {r.account_id} {r.id} ({r.type}, agent {_agent(r)})" for r in done]
        return Output(value, lines)

    async def revoke(self, account_id: str, registration_id: str | None, yes: bool) -> Output:
        account = await self._account(account_id)
        if registration_id is not None:
            reg = await self.store.get_registration(account.id, registration_id, self.now)
            if reg is None:
                raise Exit(NOT_FOUND, f"no live registration {registration_id} in account {account.id}")
            if reg.revoked_at is not None:
                raise Exit(NOT_FOUND, f"{registration_id} was already revoked at {_when(reg.revoked_at)}")
            plan = [reg]
        else:
            plan = await self._plan([account])
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
        plan = await self._plan(accounts)
        if not plan:
            raise Exit(NOT_FOUND, f"{whose} has no live registration to revoke")
        if not yes:
            listed = "\n".join(f"  {r.account_id} {r.id} ({r.type}, {_status(r)})" for r in plan)
            raise Exit(
                USAGE,
                f"would revoke {len(plan)} grant(s) of {whose}:\n{listed}\nnothing changed; run again with --yes",
            )
        return await self._revoke(plan)
