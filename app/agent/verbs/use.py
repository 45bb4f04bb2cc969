"""`authmd agent token | call | status | revoke`: using the stored credential, checked with the service
each time (a fresh token, the claim's status, the revocation)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.agent.client import Client, CredentialStore
from app.agent.verbs.credentials import claim_over, ensure_token, service_of, stored, summary_of
from app.agent.verbs.output import EXIT_REFUSED, EXIT_USAGE, Exit, GrantRefused, Output, due, http_url, iso, read_arg
from app.protocol import parse_rfc3339


def cmd_token(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    creds = stored(store, args.issuer)
    token = ensure_token(client, store, creds, force=True)  # never a stored one the service has revoked
    if out.as_json:
        out.done(
            {
                "ok": True,
                "issuer": creds.issuer,
                "access_token": token,
                "expires_at": iso(creds.access_expires_at),
                "scope": creds.scope,
            }
        )
    else:
        print(token)
    return 0


def _body(data: str | None) -> bytes:
    if data is None:
        return b""
    if data == "-" or data.startswith("@"):
        return read_arg(data.removeprefix("@"), "-d")
    return data.encode()


def cmd_call(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    url = http_url(args.url)
    headers: dict[str, str] = {}
    for raw in args.headers:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            raise Exit(EXIT_USAGE, f"bad header {raw!r}", "Use -H 'Name: value'.")
        headers[name.strip()] = value.strip()
    content = _body(args.data)
    if content and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    method = (args.method or ("POST" if content else "GET")).upper()
    creds = stored(store, args.issuer, url)
    response = client.call(method, url, ensure_token(client, store, creds), headers, content)
    if response.status_code == 401:
        # Once: a new token (re-exchange, or refresh). A grant the service refuses ends here
        # (GrantRefused: the protocol's answer is a new registration).
        response = client.call(method, url, ensure_token(client, store, creds, force=True), headers, content)
    if out.as_json:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        out.done(
            {"ok": response.is_success, "status": response.status_code, "headers": dict(response.headers), "body": body}
        )
    else:
        sys.stdout.write(response.text)
        if response.text and not response.text.endswith("\n"):
            sys.stdout.write("\n")
        if not response.is_success:
            out.note(f"HTTP {response.status_code}")
    if response.status_code == 401:
        out.note(f"The service refused even a token it had just issued: is this URL an API of {creds.issuer}?")
    return 0 if response.is_success else EXIT_REFUSED


def cmd_status(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    creds = stored(store, args.issuer)
    claim_status = creds.claim_outcome
    if claim_status is None and creds.claim_token and creds.claim_url:
        claim_status = client.claim_status(creds.claim_url, creds.claim_token)
        if claim_status in ("denied", "revoked", "expired"):
            creds.end_claim(claim_status)
            store.save(creds)
    elif claim_status is None and creds.claimed:
        claim_status = "claimed"
    refused: Exit | None = None
    if claim_status not in ("denied", "revoked") and creds.usable:
        try:
            ensure_token(client, store, creds, force=True)  # what is shown below, the service honours now
        except GrantRefused as exc:
            claim_status, refused = "revoked", exc
    out.say(f"Service:       {creds.issuer}")
    out.say(f"Registration:  {creds.registration_id} ({creds.type})")
    account = creds.account or {}
    if claim_status in ("denied", "revoked"):
        out.say("Account:       out of this agent's reach (the registration is revoked)")
    elif account.get("expires_at"):
        out.say(
            f"Account:       temporary, deleted {due(parse_rfc3339(account['expires_at']))} ({account['expires_at']})"
        )
    else:
        out.say("Account:       " + ("claimed (permanent)" if creds.claimed else account.get("type", "unknown")))
    access = "valid, expires " + due(creds.access_expires_at) if creds.access_token else "none stored"
    out.say(f"Access token:  {access}")
    out.say(
        f"Assertion:     {'valid, expires ' + due(creds.assertion_expires_at) if creds.assertion else 'none stored'}"
    )
    if creds.refresh_token:
        out.say(f"Refresh token: expires {due(creds.refresh_expires_at)}")
    if claim_status:
        out.say(f"Claim:         {CLAIM_SHOWN.get(claim_status, claim_status)}")
    if claim_status in ("denied", "revoked"):
        over = refused or claim_over(claim_status, creds, store)
        summary = {k: v for k, v in summary_of(creds).items() if k != "ok"}
        raise Exit(over.code, over.message, over.hint, summary | over.data)
    out.done(summary_of(creds, claim_status=claim_status))
    return 0


CLAIM_SHOWN = {
    "denied": 'denied (the human pressed "This wasn\'t me"; the registration is revoked)',
    "revoked": "revoked (the registration no longer works)",
    "confirmed": "confirmed (ask the human for the code)",
}


def cmd_revoke(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    creds = stored(store, args.issuer)
    service = service_of(client, creds)
    # The refresh token or the assertion kills the grant and everything derived from it (RFC 7009);
    # an unclaimed temporary account is deleted with it.
    revoked = [t for t in (creds.refresh_token, creds.assertion, creds.access_token) if t]
    for token in revoked:
        client.revoke(service, token)
    store.delete(creds.issuer)
    out.say(f"Revoked {creds.registration_id} at {creds.issuer} and forgot it.")
    out.done({"ok": True, "issuer": creds.issuer, "registration_id": creds.registration_id, "revoked": len(revoked)})
    return 0
