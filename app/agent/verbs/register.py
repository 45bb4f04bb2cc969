"""`authmd agent register`: discover the service, reuse a live stored credential or register anew
(anonymous, service_auth or an ID-JAG), solving a proof of work in a worker thread when asked."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from app.agent.client import Client, Credentials, CredentialStore, Service
from app.agent.client.core import unverified_issuer
from app.agent.verbs.credentials import ensure_token, show_link, summary_of, take_claim
from app.agent.verbs.output import (
    EXIT_REFUSED,
    EXIT_USAGE,
    Exit,
    GrantRefused,
    Output,
    command,
    due,
    http_url,
    read_arg,
)
from app.protocol import parse_rfc3339


def cmd_register(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    url = http_url(args.url)
    jag = read_arg(args.id_jag, "--id-jag").decode("utf-8", "replace").strip() if args.id_jag else None
    service = client.discover(url)
    existing = store.load(service.issuer)
    if existing is not None and existing.usable:
        try:
            if not (args.new or args.discard_claimed):
                # Reused only when the service still honours it (a new token says so).
                token = ensure_token(client, store, existing, force=True)
                out.say(f"Using the registration already stored for {service.issuer} ({existing.registration_id}).")
                out.say(
                    "A human has claimed it: --new --discard-claimed would forget it for good."
                    if existing.claimed
                    else "Run with --new to register a second one."
                )
                out.done(summary_of(existing, reused=True) | {"token_ready": bool(token)})
                return 0
            if existing.claimed and not args.discard_claimed:
                ensure_token(client, store, existing, force=True)  # only a live one is worth keeping
                raise _claimed_stored(store, existing, url)
        except GrantRefused:
            out.note(
                f"The service refused the registration stored for {service.issuer} ({existing.registration_id}): "
                "it was revoked or has ended. Registering a new one."
            )
    creds = Credentials(issuer=service.issuer, metadata=service.metadata, metadata_fetched_at=time.time())
    contract = store.save_contract(service.issuer, client.auth_md(service))
    agent = {k: v for k, v in (("name", args.name), ("platform", args.platform)) if v}
    if args.login_hint:
        if "service_auth" not in service.identity_types:
            raise Exit(EXIT_REFUSED, "this service does not offer service_auth registration", "Register anonymously.")
        body: dict[str, Any] = {
            "type": "service_auth",
            "login_hint": args.login_hint,
            **({"agent": agent} if agent else {}),
        }
        reg = _solving(client, out)(service, body)
        return _pending_claim(out, store, creds, reg, args.login_hint)
    if jag is not None:
        _check_trusted(service, jag)
        reg = client.register_id_jag(service, jag)
        if reg.get("error") == "interaction_required":
            return _pending_claim(out, store, creds, reg)
    else:
        if "anonymous" not in service.identity_types:
            raise Exit(EXIT_REFUSED, "this service does not offer anonymous registration", "See its /auth.md.")
        reg = _solving(client, out)(service, {"type": "anonymous", **({"agent": agent} if agent else {})})
    creds.registration_id, creds.type = reg.get("id"), reg.get("type")
    creds.take_identity(reg["identity"])
    take_claim(creds, reg.get("claim"))
    creds.account = reg.get("account") or {}
    store.save(creds)
    ensure_token(client, store, creds)
    expires = creds.account.get("expires_at")
    out.say(f"Registered with {service.issuer} as {creds.registration_id} ({creds.type}).")
    out.say(f"Scopes: {creds.scope}.")
    if expires:
        out.say(
            f"This is a temporary account: it is deleted with everything in it at {expires} "
            f"({due(parse_rfc3339(expires))})."
        )
        claim = command(store, "claim", "--email", "THEIR_EMAIL", issuer=creds.issuer)
        out.say(f"To keep it, hand it to a human: {claim}.")
    out.say(
        f"Call the API with {command(store, 'call', 'URL')}, or get a token with "
        f"{command(store, 'token', issuer=creds.issuer)}."
    )
    if contract is not None:
        out.say(f"The service's contract (/auth.md) is saved at {contract}.")
    out.done(summary_of(creds, auth_md=str(contract) if contract else None))
    return 0


def _claimed_stored(store: CredentialStore, creds: Credentials, url: str) -> Exit:
    """--new would forget a credential a human has claimed: the account stays theirs, but this agent
    would lose its only way in (a permanent account, a 30-day refresh token). Only on request."""
    account = creds.account.get("id") or "unknown"
    return Exit(
        EXIT_USAGE,
        f"a human has claimed the account stored for {creds.issuer} (account {account}, registration "
        f"{creds.registration_id}): --new would forget its credentials for good",
        f"Keep using it: {command(store, 'register', url)}; or forget it and register anew: "
        f"{command(store, 'register', url, '--new', '--discard-claimed')}.",
        {"error": "claimed_credential_stored", "registration_id": creds.registration_id, "account": account},
    )


def _check_trusted(service: Service, assertion: str) -> None:
    """Revision 2's trust list: an ID-JAG from a provider the service does not list is not sent."""
    trusted = service.trusted_issuers
    issuer = unverified_issuer(assertion)
    if trusted is None or issuer is None or issuer in trusted:
        return
    names = "; ".join(f"{name} ({iss})" for iss, name in trusted.items()) or "none"
    raise Exit(
        EXIT_REFUSED,
        f"this service does not trust your identity provider {issuer} (not in its issuers_supported)",
        f"Trusted providers: {names}. Register another way (anonymous, or --login-hint EMAIL).",
        {"error": "issuer_not_enabled", "issuer": issuer, "trusted": sorted(trusted)},
    )


def _pending_claim(
    out: Output, store: CredentialStore, creds: Credentials, reg: dict[str, Any], login_hint: str | None = None
) -> int:
    """service_auth registration or an ID-JAG step-up: nothing issued until the human authorizes."""
    creds.registration_id, creds.type = reg.get("id"), reg.get("type")
    take_claim(creds, reg.get("claim"))
    attempt = (reg.get("claim") or {}).get("attempt") or {}
    creds.take_attempt(attempt, login_hint)
    store.save(creds)
    show_link(out, attempt)
    out.say(f"Then run {command(store, 'claim', issuer=creds.issuer)} to enter the code they read back to you.")
    out.done(
        summary_of(creds)
        | {"verification_uri": attempt.get("verification_uri"), "attempt_expires_at": attempt.get("expires_at")}
    )
    return 0


def _progress(out: Output) -> Any:
    state = {"last": 0.0}

    def show(tried: int, expected: int) -> None:
        now = time.monotonic()
        if now - state["last"] < 0.2:
            return
        state["last"] = now
        width, done = 30, min(1.0, tried / expected)
        bar = "#" * int(width * done) + "-" * (width - int(width * done))
        out.progress(
            f"proof of work [{bar}] {tried:,} hashes (about {expected:,} expected)",
            once=f"solving the service's proof of work (about {expected:,} hashes expected)",
        )

    return show


def _solving(client: Client, out: Output) -> Any:
    """Registration with the proof of work solved in a worker thread (Ctrl-C stays responsive)."""

    def register(service: Service, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["value"] = client.register(service, body, progress=_progress(out))
            except BaseException as exc:  # handed back to the main thread below
                result["error"] = exc

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
        if "error" in result:
            raise result["error"]
        return dict(result["value"])

    return register
