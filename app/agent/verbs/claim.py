"""`authmd agent claim`: start an attempt (or show the last live link again), wait for the human to
authorize, take the code they read back, and store the post-claim credentials."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from app.agent.client import Client, Credentials, CredentialStore, ServiceError, rate_limited
from app.agent.client.core import CLAIM_ENDED
from app.agent.verbs.credentials import claim_over, end_claim, ensure_token, show_link, stored, summary_of
from app.agent.verbs.output import (
    EXIT_NOT_CONFIRMED,
    EXIT_NOTHING,
    EXIT_REFUSED,
    EXIT_USAGE,
    Exit,
    Output,
    command,
    exit_for,
    iso,
)
from app.protocol import parse_rfc3339


def cmd_claim(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    creds = stored(store, args.issuer)
    if creds.claim_outcome:
        raise claim_over(creds.claim_outcome, creds, store)
    if creds.claimed:
        raise Exit(EXIT_REFUSED, "this registration is already claimed", "Nothing left to do.")
    if creds.claim_token is None or creds.claim_url is None:
        raise Exit(
            EXIT_NOTHING,
            "no claim token is stored (the claim window has closed)",
            f"For a new claim, register anew: {command(store, 'register', creds.issuer, '--new')}.",
        )
    token, url = creds.claim_token, creds.claim_url
    if args.code and not args.email:
        return _complete(client, store, creds, out, args.code)
    deadline = time.monotonic() + args.wait
    while True:
        attempt, reused = _start_attempt(client, store, creds, args.email, out)
        show_link(out, attempt)
        if args.no_wait:
            out.done(
                summary_of(creds)
                | {
                    "verification_uri": attempt["verification_uri"],
                    "attempt_expires_at": attempt["expires_at"],
                    "reused_link": reused,
                }
            )
            return 0
        outcome = _wait_for_human(client, url, token, parse_rfc3339(attempt["expires_at"]), deadline, out)
        if outcome == "confirmed":
            break
        if outcome in ("denied", "revoked", "expired"):
            raise end_claim(store, creds, outcome)
        if outcome == "claimed":
            raise Exit(EXIT_REFUSED, "the claim is claimed", "")
        if time.monotonic() >= deadline:
            raise Exit(
                EXIT_NOT_CONFIRMED,
                "the human has not authorized yet",
                f"Run {command(store, 'claim', issuer=creds.issuer)} again later.",
            )
        out.say("The link expired before the human authorized; starting a new attempt.")
    code = args.code or _ask_code(out)
    return _complete(client, store, creds, out, code)


def _same_email(a: str | None, b: str | None) -> bool:
    return (a or "").strip().casefold() == (b or "").strip().casefold()


def _start_attempt(
    client: Client, store: CredentialStore, creds: Credentials, email: str | None, out: Output
) -> tuple[dict[str, Any], bool]:
    """A new attempt, or (revision 2, past the service's cap of live attempts) the last link shown if it
    still lives and is meant for the same human: (attempt, reused)."""
    assert creds.claim_url is not None and creds.claim_token is not None
    try:
        attempt: dict[str, Any] = client.start_claim(creds.claim_url, creds.claim_token, email)["attempt"]
    except ServiceError as exc:
        if exc.code in CLAIM_ENDED and exc.code != "already_claimed":
            raise end_claim(store, creds, CLAIM_ENDED[exc.code]) from exc
        if exc.code != "too_many_attempts":
            raise
        last = creds.live(creds.claim_attempt_uri, creds.claim_attempt_expires_at)
        fits = email is None or _same_email(email, creds.claim_attempt_login_hint)
        if last and creds.claim_attempt_expires_at is not None and fits:
            out.say("The service allows no more live claim links (too_many_attempts); the last one still works.")
            return {"verification_uri": last, "expires_at": iso(creds.claim_attempt_expires_at)}, True
        wait = f" (the service says: retry in {exc.retry_after:g} s)" if exc.retry_after is not None else ""
        raise Exit(
            EXIT_REFUSED,
            "the service already has as many live claim links for this registration as it allows "
            f"(too_many_attempts){wait}",
            "The human can still use a link you gave them; or wait until one expires (links live about "
            f"10 minutes), then run {command(store, 'claim', issuer=creds.issuer)} again.",
            {"error": exc.code, "status": exc.status, "retry_after": exc.retry_after},
        ) from exc
    creds.take_attempt(attempt, email)
    store.save(creds)
    return attempt, False


def _wait_for_human(client: Client, url: str, token: str, attempt_ends: float, deadline: float, out: Output) -> str:
    """Poll the claim status (*ext*) until the human authorized, the attempt ended or time ran out."""
    spinner = "|/-\\"
    tick = 0
    while time.monotonic() < deadline and time.time() < attempt_ends:
        try:
            status = client.claim_status(url, token)
        except ServiceError as exc:
            if not rate_limited(exc):
                raise
            # Slowed down by the service: wait as asked (within our own deadline), then poll again.
            time.sleep(min(max(exc.retry_after or 2.0, 2.0), max(0.0, deadline - time.monotonic())))
            continue
        if status is None:
            return "confirmed"  # no status endpoint: ask for the code straight away
        if status != "pending":
            return status
        out.progress(
            f"waiting for the human to authorize {spinner[tick % 4]}",
            once="waiting for the human to authorize (asking the service every 2 s)",
        )
        tick += 1
        time.sleep(2.0)  # a polite polling interval for the service, not test synchronisation
    return "timeout"


def _ask_code(out: Output) -> str:
    out.clear()
    if sys.stdin.isatty():
        return input("Code the human read back: ")
    out.note("Code the human read back (one line on stdin):")
    line = sys.stdin.readline()
    if not line:
        raise Exit(EXIT_USAGE, "no code given", "Pass --code CODE.")
    return line


def _complete(client: Client, store: CredentialStore, creds: Credentials, out: Output, code: str) -> int:
    assert creds.claim_url is not None and creds.claim_token is not None
    code = code.strip()  # as the human read it: the service ignores spaces and hyphens (revision 2)
    try:
        done = client.complete_claim(creds.claim_url, creds.claim_token, code)
    except ServiceError as exc:
        if exc.code == "claim_not_confirmed":
            raise Exit(EXIT_NOT_CONFIRMED, "the human has not authorized yet", exc.hint) from exc
        if exc.code in CLAIM_ENDED and exc.code != "already_claimed":
            raise end_claim(store, creds, CLAIM_ENDED[exc.code]) from exc
        if exc.code == "invalid_user_code" and re.search(r"[^0-9]", code):
            refusal = exit_for(exc)
            refusal.hint = " ".join(
                x for x in (exc.hint, "A service older than revision 2 wants the digits alone, e.g. 870581.") if x
            )
            raise refusal from exc
        raise
    creds.take_identity(done["identity"])
    creds.registration_id = done.get("id", creds.registration_id)
    creds.claimed = True
    # The temporary account's quotas lifted with the claim (the service does not say the new ones).
    creds.account = {"id": creds.account.get("id"), "type": "persistent", "expires_at": None}
    store.save(creds)  # also forgets the claim token: it has served its purpose
    ensure_token(client, store, creds)
    out.say(f"Claimed: the account now belongs to the human, permanently. Scopes: {creds.scope}.")
    out.done(summary_of(creds))
    return 0
