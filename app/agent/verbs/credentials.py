"""The stored credential behind every verb: which one a command means, a live access token for it (a
grant the service refuses is forgotten), and how a claim that ended without landing reads."""

from __future__ import annotations

import time
from typing import Any

from app.agent.client import Client, Credentials, CredentialStore, Service, ServiceError
from app.agent.verbs.output import EXIT_NOTHING, EXIT_REFUSED, EXIT_USAGE, Exit, GrantRefused, Output, command, iso
from app.protocol import origin, parse_rfc3339

# What the service answers for a stored grant it will never honour again (revoked, or ended early).
GRANT_REFUSED = ("invalid_grant", "invalid_refresh_token")

METADATA_TTL_SECONDS = 3600


def stored(store: CredentialStore, issuer: str | None, url: str | None = None) -> Credentials:
    issuers = store.issuers()
    if issuer is None and url is not None:
        wanted = origin(url)
        matching = [i for i in issuers if origin(i) == wanted]
        issuer = matching[0] if len(matching) == 1 else None
    if issuer is None:
        if len(issuers) == 1:
            issuer = issuers[0]
        elif not issuers:
            raise Exit(EXIT_NOTHING, "nothing is stored yet", f"Run {command(store, 'register', 'URL')} first.")
        else:
            raise Exit(EXIT_USAGE, "several services are stored", "Say which with --issuer: " + ", ".join(issuers))
    creds = store.load(issuer.rstrip("/"))
    if creds is None:
        raise Exit(EXIT_NOTHING, f"nothing is stored for {issuer}", f"Run {command(store, 'register', issuer)} first.")
    return creds


def service_of(client: Client, creds: Credentials) -> Service:
    """The service's metadata as stored at registration, refreshed once an hour (no discovery per call)."""
    fetched = creds.metadata_fetched_at or 0.0
    if creds.metadata and time.time() - fetched < METADATA_TTL_SECONDS:
        return Service(issuer=creds.issuer, metadata=creds.metadata)
    service = client.discover(creds.issuer)
    creds.metadata, creds.metadata_fetched_at = service.metadata, time.time()
    return service


def ensure_token(client: Client, store: CredentialStore, creds: Credentials, *, force: bool = False) -> str:
    """A live access token: the stored one (unless ``force``: then always a new one, which the service
    issues only while the grant lives), else by exchanging the assertion, else after refreshing it.
    A grant the service refuses is forgotten (GrantRefused)."""
    if not force and (token := creds.live(creds.access_token, creds.access_expires_at)):
        return token
    service = service_of(client, creds)
    try:
        try:
            return _new_token(client, store, creds, service)
        except ServiceError as exc:
            # A refused assertion with a refresh token at hand: the refresh token decides. For a claimed
            # account it may be all that is left, and it is not dropped on the assertion's word.
            live_refresh = creds.live(creds.refresh_token, creds.refresh_expires_at, margin=0)
            if exc.code != "invalid_grant" or creds.assertion is None or not live_refresh:
                raise
            creds.assertion = creds.assertion_expires_at = None
            return _new_token(client, store, creds, service)
    except ServiceError as exc:
        if exc.code not in GRANT_REFUSED:
            raise
        creds.end_claim("revoked")
        store.save(creds)
        raise GrantRefused(
            EXIT_REFUSED,
            f"the service refused the stored credential ({exc}): the registration was revoked or has ended, "
            "and is forgotten",
            f"Register again: {command(store, 'register', creds.issuer)}.",
            {"error": exc.code, "status": exc.status, "claim_status": "revoked"},
        ) from exc


def _new_token(client: Client, store: CredentialStore, creds: Credentials, service: Service) -> str:
    assertion = creds.live(creds.assertion, creds.assertion_expires_at)
    if assertion is None and creds.live(creds.refresh_token, creds.refresh_expires_at, margin=0):
        assert creds.refresh_token is not None
        refreshed = client.refresh(service, creds.refresh_token)
        creds.take_identity(refreshed["identity"])
        store.save(creds)  # the presented refresh token is spent: keep its successor at once
        assertion = creds.assertion
    if assertion is None and creds.claim_outcome:
        over = claim_over(creds.claim_outcome, creds, store)
        raise Exit(EXIT_NOTHING, f"nothing usable is stored: {over.message}", over.hint, over.data)
    if assertion is None:
        pending = creds.claim_token is not None and creds.type == "service_auth" and not creds.claimed
        raise Exit(
            EXIT_NOTHING,
            "no usable credential is stored for " + creds.issuer,
            f"Finish the claim with {command(store, 'claim', issuer=creds.issuer)}."
            if pending
            else f"Register again: {command(store, 'register', creds.issuer)}.",
        )
    issued = client.exchange(service, assertion)
    creds.access_token = str(issued["access_token"])
    creds.access_expires_at = time.time() + float(issued["expires_in"])
    creds.scope = issued.get("scope")
    store.save(creds)
    return creds.access_token


def claim_over(outcome: str, creds: Credentials, store: CredentialStore) -> Exit:
    """The claim ended without landing (its credentials are already forgotten)."""
    data = {"claim_status": outcome, "registration_id": creds.registration_id}
    if outcome == "denied":
        return Exit(
            EXIT_REFUSED,
            'the human refused this claim ("This wasn\'t me"): the registration is revoked',
            "Do not send the link again; ask your user before registering anew: "
            f"{command(store, 'register', creds.issuer)}.",
            {"error": "claim_denied", **data},
        )
    if outcome == "revoked":
        return Exit(
            EXIT_REFUSED,
            "the registration was revoked: it can no longer be claimed or used",
            f"Register again: {command(store, 'register', creds.issuer)}.",
            {"error": "claim_revoked", **data},
        )
    return Exit(
        EXIT_REFUSED,
        "the claim window has closed",
        "The account stays usable until it expires; for a new claim, register anew: "
        f"{command(store, 'register', creds.issuer, '--new')}.",
        {"error": "claim_expired", **data},
    )


def end_claim(store: CredentialStore, creds: Credentials, outcome: str) -> Exit:
    creds.end_claim(outcome)
    store.save(creds)
    return claim_over(outcome, creds, store)


def take_claim(creds: Credentials, claim: Any) -> None:
    if isinstance(claim, dict) and isinstance(claim.get("token"), str):
        creds.claim_token, creds.claim_url = claim["token"], claim.get("url")
        creds.claim_expires_at = (
            parse_rfc3339(claim["expires_at"]) if isinstance(claim.get("expires_at"), str) else None
        )


def show_link(out: Output, attempt: dict[str, Any]) -> None:
    out.say("Ask the human to open this link, sign in and authorize. It is a secret for them alone:")
    out.say(f"  {attempt.get('verification_uri')}")
    out.say(f"The link works until {attempt.get('expires_at')}. The page will show them a 6-digit code.")


def summary_of(creds: Credentials, **extra: Any) -> dict[str, Any]:
    return {
        "ok": True,
        "issuer": creds.issuer,
        "registration_id": creds.registration_id,
        "type": creds.type,
        "claimed": creds.claimed,
        "scope": creds.scope,
        "account": creds.account or None,
        "assertion_expires_at": iso(creds.assertion_expires_at),
        "access_token_expires_at": iso(creds.access_expires_at),
        "refresh_token_expires_at": iso(creds.refresh_expires_at),
        "claim_expires_at": iso(creds.claim_expires_at),
        **extra,
    }
