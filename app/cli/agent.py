"""An agent's client for any auth.md service: one command from a bare API URL to authenticated calls.

  authmd agent register https://api.example.com/v1/notes      # discover, register, get a token
  authmd agent call https://api.example.com/v1/notes -X POST -d '{"text":"hi"}'
  authmd agent claim --email ada@example.com                  # hand the account to a human
  authmd agent token | status | revoke

register   URL (an API URL, whose 401 names the metadata, or an issuer): anonymous by default,
           --login-hint EMAIL (service_auth: nothing is issued until that human authorizes) or
           --id-jag FILE|- (your platform's ID-JAG; not sent when the service publishes a trust list,
           issuers_supported, without its issuer). Solves a proof of work when asked. Reuses a live
           stored credential for the service instead of creating a second account, unless --new;
           one the service refuses (revoked) is replaced. --new over a credential a human has
           claimed is refused (exit 2, naming the account) unless --discard-claimed: forgetting it
           would lose the agent's only way into a permanent account.
claim      starts a claim attempt, prints the link for the human (a secret), waits until they have
           authorized, asks for the code they read back (or takes --code), and stores the post-claim
           credentials. --no-wait only starts the attempt; --code CODE alone completes one. The code
           is sent as typed ("870 581" is fine: the service ignores spaces and hyphens). When the
           service already has as many live links as it allows (too_many_attempts), the last link
           shown is shown again if it still lives; otherwise it exits 1 (use a link already given,
           or wait for one to expire). A human who pressed "This wasn't me" (claim_denied) or a
           revoked registration (claim_revoked) ends it with exit 1, and the stored credentials,
           dead with the registration, are forgotten.
token      prints an access token the service has just issued (re-exchanging, or refreshing the
           assertion when it expired): never a stored one it may have revoked.
call       an authenticated request, curl-like (-X, -H, -d); on 401 it gets a new token once.
status     what is stored for the service and the claim's state, checked with the service (the claim
           status, and a new token for the grant).
revoke     revokes the stored grant at the service and forgets it.

A grant the service refuses (invalid_grant, invalid_refresh_token: revoked, or ended) is forgotten like
a revoked claim: exit 1 with a hint naming `authmd agent register ISSUER`, which then registers anew.
Every command a hint names works as written (it keeps --home, and adds --issuer when several
services are stored). Progress (proof of work, waiting for the human) redraws one line on a
terminal; on a pipe it is one line at most.

A rate limit (429 rate_limit_exceeded, or rate_limited) asking for at most 10 s is waited out and the
request sent once more; a longer one exits 1 with the wait in the message (and `retry_after` in --json).
Credentials live in $AUTHMD_HOME or ~/.config/authmd (directory 0700, one 0600 file per issuer).
--json prints one JSON object on stdout and nothing else. Exit codes: 0 done; 1 the service refused
(its error and hint are shown: also a rate limit, a denied or revoked claim; `status` exits 1 when
the registration is known revoked); 2 usage (also a URL that is not http(s), an unreadable file, or
--new over a claimed credential); 3 the service could not be reached (the reason is given: connection
refused, name not resolved, TLS failure, timed out) or does not speak the protocol; 4 waiting for the
human ran out (claim not confirmed); 5 nothing usable stored for the service.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.client import Client, ClientError, Credentials, CredentialStore, Service, ServiceError, rate_limited
from app.client.core import CLAIM_ENDED, unverified_issuer
from app.client.state import default_home
from app.clock import parse_rfc3339

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_NOT_CONFIRMED, EXIT_NOTHING = 1, 2, 3, 4, 5
# What the service answers for a stored grant it will never honour again (revoked, or ended early).
GRANT_REFUSED = ("invalid_grant", "invalid_refresh_token")


class Exit(Exception):
    def __init__(self, code: int, message: str, hint: str = "", data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.hint, self.data = code, message, hint, data or {}


class GrantRefused(Exit):
    """The service refused the stored grant: it is forgotten (as after a revoked claim), and registering
    again is the way on."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="where credentials live (default: $AUTHMD_HOME or ~/.config/authmd)")
    verbs = p.add_subparsers(dest="agent_cmd", required=True)

    def verb(name: str, summary: str, example: str) -> argparse.ArgumentParser:
        v = verbs.add_parser(
            name,
            help=summary,
            description=f"{summary}\n\nexample:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        v.add_argument("--json", action="store_true", help="print one JSON object and nothing else on stdout")
        return v

    reg = verb(
        "register", "discover a service and register with it", "authmd agent register http://127.0.0.1:8000/api/notes"
    )
    reg.add_argument("url", help="an API URL of the service, or its issuer")
    how = reg.add_mutually_exclusive_group()
    how.add_argument("--login-hint", metavar="EMAIL", help="service_auth: register for this human")
    how.add_argument("--id-jag", metavar="FILE", help="an ID-JAG from your platform (- reads stdin)")
    reg.add_argument("--new", action="store_true", help="register again even if a live credential is stored")
    reg.add_argument(
        "--discard-claimed",
        action="store_true",
        help="--new even over a credential a human has claimed, which is then forgotten for good",
    )
    reg.add_argument("--name", help="your agent's name, shown to the human who claims")
    reg.add_argument("--platform", help="your agent's platform, shown to the human who claims")

    claim = verb("claim", "hand the account to a human", "authmd agent claim --email ada@example.com")
    claim.add_argument("--issuer", help="which stored service (needed when several are stored)")
    claim.add_argument("--email", help="the human's email (binds the claim to them)")
    claim.add_argument("--code", help="the code the human read back (completes without asking)")
    claim.add_argument("--no-wait", action="store_true", help="only start the attempt and print the link")
    claim.add_argument("--wait", type=float, default=900.0, help="seconds to wait for the human (default 900)")

    tok = verb("token", "print a fresh access token", 'curl -H "Authorization: Bearer $(authmd agent token)" …')
    tok.add_argument("--issuer", help="which stored service")

    call = verb(
        "call", "an authenticated request", 'authmd agent call http://127.0.0.1:8000/api/notes -d \'{"text":"hi"}\''
    )
    call.add_argument("url")
    call.add_argument("-X", "--request", dest="method", help="method (default GET, or POST with -d)")
    call.add_argument("-H", "--header", dest="headers", action="append", default=[], help="'Name: value'")
    call.add_argument("-d", "--data", help="request body; @FILE reads a file, - reads stdin")
    call.add_argument("--issuer", help="which stored service (default: the one whose origin matches)")

    status = verb("status", "what is stored, and the claim's state", "authmd agent status")
    status.add_argument("--issuer", help="which stored service")

    revoke = verb("revoke", "revoke the stored grant and forget it", "authmd agent revoke")
    revoke.add_argument("--issuer", help="which stored service")


def run(args: argparse.Namespace) -> int:
    store = CredentialStore(Path(args.home) if args.home else None)
    out = Output(args.json)
    client = Client(on_wait=lambda s: out.note(f"the service is rate limiting: waiting {s:g} s, then retrying once"))
    try:
        handler = {
            "register": cmd_register,
            "claim": cmd_claim,
            "token": cmd_token,
            "call": cmd_call,
            "status": cmd_status,
            "revoke": cmd_revoke,
        }[args.agent_cmd]
        return handler(args, client, store, out)
    except Exit as exc:
        out.fail(exc.code, exc.message, exc.hint, exc.data)
        return exc.code
    except ServiceError as exc:
        refusal = _refusal(exc)
        out.fail(refusal.code, refusal.message, refusal.hint, refusal.data)
        return refusal.code
    except ClientError as exc:
        out.fail(EXIT_UNREACHABLE, str(exc))
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        out.fail(130, "interrupted")
        return 130
    finally:
        client.close()


class Output:
    """Human text on stdout (notes and progress on stderr), or exactly one JSON object with --json.

    Progress redraws one line in place on a terminal, and is taken off before anything else is
    written; on a pipe (an agent reading it) only its first line of each kind is written."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.terminal = sys.stderr.isatty()
        self.drawn = False
        self.written: set[str] = set()

    def progress(self, line: str, *, once: str) -> None:
        if self.terminal:
            sys.stderr.write(f"\r{line}\x1b[K")
            sys.stderr.flush()
            self.drawn = True
        elif once not in self.written:
            self.written.add(once)
            print(once, file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.drawn = False

    def say(self, text: str = "") -> None:
        self.clear()
        if not self.as_json:
            print(text, flush=True)

    def note(self, text: str) -> None:
        self.clear()
        print(text, file=sys.stderr, flush=True)

    def done(self, data: dict[str, Any]) -> None:
        self.clear()
        if self.as_json:
            print(json.dumps(data), flush=True)

    def fail(self, code: int, message: str, hint: str = "", data: dict[str, Any] | None = None) -> None:
        self.clear()
        if self.as_json:
            print(json.dumps({"ok": False, "exit": code, "message": message, "hint": hint or None, **(data or {})}))
        print(f"authmd agent: {message}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)


# ---- helpers --------------------------------------------------------------------------------------


def _cmd(store: CredentialStore, verb: str, *words: str, issuer: str | None = None) -> str:
    """A command for a hint, written so that it works when followed literally: with this run's --home,
    and with --issuer when several services are stored."""
    argv = ["authmd", "agent", *(["--home", str(store.home)] if store.home != default_home() else []), verb, *words]
    if issuer is not None and len(store.issuers()) > 1:
        argv += ["--issuer", issuer]
    return f"`{shlex.join(argv)}`"


def _url(value: str) -> str:
    """An http(s) URL, or a usage error (nothing is sent anywhere)."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.netloc)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        ok = False
    if not ok:
        raise Exit(
            EXIT_USAGE,
            f"{value!r} is not an http(s) URL",
            "Give the API's URL or the service's issuer, e.g. https://api.example.com/v1/notes.",
        )
    return value


def _read(path: str, option: str) -> bytes:
    """A file named on the command line (- is stdin); one that cannot be read is a usage error."""
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise Exit(EXIT_USAGE, f"{option}: cannot read {path}: {exc.strerror or exc}") from exc


def _refusal(exc: ServiceError) -> Exit:
    """What a refusal means for the one running the command (revision 1 names understood too)."""
    data: dict[str, Any] = {"error": exc.code, "status": exc.status}
    said = f": {exc.description}" if exc.description else ""
    if exc.kind == "rate_limit_exceeded":
        data["retry_after"] = exc.retry_after
        when = f"retry in {exc.retry_after:g} s" if exc.retry_after is not None else "retry later"
        return Exit(
            EXIT_REFUSED,
            f"the service is rate limiting this client ({exc.code}): {when}",
            exc.hint or "Wait that long, then run the same command again.",
            data,
        )
    if exc.code == "auth_method_disabled":
        return Exit(
            EXIT_REFUSED,
            f"the service has turned this claim method off ({exc.code}){said}",
            exc.hint or "Nothing to retry: see the service's /auth.md for the ways it still offers.",
            data,
        )
    if exc.kind in ("anonymous_registration_disabled", "service_auth_registration_disabled"):
        kind = "anonymous" if exc.kind.startswith("anonymous") else "service_auth"
        return Exit(
            EXIT_REFUSED,
            f"the service does not offer {kind} registration ({exc.code}){said}",
            exc.hint or "See the service's /auth.md for the ways it offers.",
            data,
        )
    max_age = exc.body.get("max_age")
    if exc.code == "login_required" and isinstance(max_age, int | float) and not isinstance(max_age, bool):
        data["max_age"] = max_age
        return Exit(
            EXIT_REFUSED,
            f"the service refused: {exc} (it takes sign-ins at most {max_age:g} s old)",
            exc.hint or "Have your user sign in again at their provider, then send a fresh ID-JAG.",
            data,
        )
    return Exit(EXIT_REFUSED, f"the service refused: {exc}", exc.hint, data)


def _claim_over(outcome: str, creds: Credentials, store: CredentialStore) -> Exit:
    """The claim ended without landing (its credentials are already forgotten)."""
    data = {"claim_status": outcome, "registration_id": creds.registration_id}
    if outcome == "denied":
        return Exit(
            EXIT_REFUSED,
            'the human refused this claim ("This wasn\'t me"): the registration is revoked',
            "Do not send the link again; ask your user before registering anew: "
            f"{_cmd(store, 'register', creds.issuer)}.",
            {"error": "claim_denied", **data},
        )
    if outcome == "revoked":
        return Exit(
            EXIT_REFUSED,
            "the registration was revoked: it can no longer be claimed or used",
            f"Register again: {_cmd(store, 'register', creds.issuer)}.",
            {"error": "claim_revoked", **data},
        )
    return Exit(
        EXIT_REFUSED,
        "the claim window has closed",
        "The account stays usable until it expires; for a new claim, register anew: "
        f"{_cmd(store, 'register', creds.issuer, '--new')}.",
        {"error": "claim_expired", **data},
    )


def _end_claim(store: CredentialStore, creds: Credentials, outcome: str) -> Exit:
    creds.end_claim(outcome)
    store.save(creds)
    return _claim_over(outcome, creds, store)


def _iso(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts is not None else None


def _in(ts: float | None) -> str:
    if ts is None:
        return "never"
    left = int(ts - time.time())
    if left <= 0:
        return "expired"
    return f"in {left // 3600} h {left % 3600 // 60} min" if left >= 3600 else f"in {left // 60} min {left % 60} s"


def _stored(store: CredentialStore, issuer: str | None, url: str | None = None) -> Credentials:
    issuers = store.issuers()
    if issuer is None and url is not None:
        origin = _origin(url)
        matching = [i for i in issuers if _origin(i) == origin]
        issuer = matching[0] if len(matching) == 1 else None
    if issuer is None:
        if len(issuers) == 1:
            issuer = issuers[0]
        elif not issuers:
            raise Exit(EXIT_NOTHING, "nothing is stored yet", f"Run {_cmd(store, 'register', 'URL')} first.")
        else:
            raise Exit(EXIT_USAGE, "several services are stored", "Say which with --issuer: " + ", ".join(issuers))
    creds = store.load(issuer.rstrip("/"))
    if creds is None:
        raise Exit(EXIT_NOTHING, f"nothing is stored for {issuer}", f"Run {_cmd(store, 'register', issuer)} first.")
    return creds


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


METADATA_TTL_SECONDS = 3600


def _service(client: Client, creds: Credentials) -> Service:
    """The service's metadata as stored at registration, refreshed once an hour (no discovery per call)."""
    fetched = creds.metadata_fetched_at or 0.0
    if creds.metadata and time.time() - fetched < METADATA_TTL_SECONDS:
        return Service(issuer=creds.issuer, metadata=creds.metadata)
    service = client.discover(creds.issuer)
    creds.metadata, creds.metadata_fetched_at = service.metadata, time.time()
    return service


def _ensure_token(client: Client, store: CredentialStore, creds: Credentials, *, force: bool = False) -> str:
    """A live access token: the stored one (unless ``force``: then always a new one, which the service
    issues only while the grant lives), else by exchanging the assertion, else after refreshing it.
    A grant the service refuses is forgotten (GrantRefused)."""
    if not force and (token := creds.live(creds.access_token, creds.access_expires_at)):
        return token
    service = _service(client, creds)
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
            f"Register again: {_cmd(store, 'register', creds.issuer)}.",
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
        over = _claim_over(creds.claim_outcome, creds, store)
        raise Exit(EXIT_NOTHING, f"nothing usable is stored: {over.message}", over.hint, over.data)
    if assertion is None:
        pending = creds.claim_token is not None and creds.type == "service_auth" and not creds.claimed
        raise Exit(
            EXIT_NOTHING,
            "no usable credential is stored for " + creds.issuer,
            f"Finish the claim with {_cmd(store, 'claim', issuer=creds.issuer)}."
            if pending
            else f"Register again: {_cmd(store, 'register', creds.issuer)}.",
        )
    issued = client.exchange(service, assertion)
    creds.access_token = str(issued["access_token"])
    creds.access_expires_at = time.time() + float(issued["expires_in"])
    creds.scope = issued.get("scope")
    store.save(creds)
    return creds.access_token


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


# ---- verbs ----------------------------------------------------------------------------------------


def cmd_register(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    url = _url(args.url)
    jag = _read(args.id_jag, "--id-jag").decode("utf-8", "replace").strip() if args.id_jag else None
    service = client.discover(url)
    existing = store.load(service.issuer)
    if existing is not None and existing.usable:
        try:
            if not (args.new or args.discard_claimed):
                # Reused only when the service still honours it (a new token says so).
                token = _ensure_token(client, store, existing, force=True)
                out.say(f"Using the registration already stored for {service.issuer} ({existing.registration_id}).")
                out.say(
                    "A human has claimed it: --new --discard-claimed would forget it for good."
                    if existing.claimed
                    else "Run with --new to register a second one."
                )
                out.done(_summary(existing, reused=True) | {"token_ready": bool(token)})
                return 0
            if existing.claimed and not args.discard_claimed:
                _ensure_token(client, store, existing, force=True)  # only a live one is worth keeping
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
    _take_claim(creds, reg.get("claim"))
    creds.account = reg.get("account") or {}
    store.save(creds)
    _ensure_token(client, store, creds)
    expires = creds.account.get("expires_at")
    out.say(f"Registered with {service.issuer} as {creds.registration_id} ({creds.type}).")
    out.say(f"Scopes: {creds.scope}.")
    if expires:
        out.say(
            f"This is a temporary account: it is deleted with everything in it at {expires} "
            f"({_in(parse_rfc3339(expires))})."
        )
        claim = _cmd(store, "claim", "--email", "THEIR_EMAIL", issuer=creds.issuer)
        out.say(f"To keep it, hand it to a human: {claim}.")
    out.say(
        f"Call the API with {_cmd(store, 'call', 'URL')}, or get a token with "
        f"{_cmd(store, 'token', issuer=creds.issuer)}."
    )
    if contract is not None:
        out.say(f"The service's contract (/auth.md) is saved at {contract}.")
    out.done(_summary(creds, auth_md=str(contract) if contract else None))
    return 0


def _claimed_stored(store: CredentialStore, creds: Credentials, url: str) -> Exit:
    """--new would forget a credential a human has claimed: the account stays theirs, but this agent
    would lose its only way in (a permanent account, a 30-day refresh token). Only on request."""
    account = creds.account.get("id") or "unknown"
    return Exit(
        EXIT_USAGE,
        f"a human has claimed the account stored for {creds.issuer} (account {account}, registration "
        f"{creds.registration_id}): --new would forget its credentials for good",
        f"Keep using it: {_cmd(store, 'register', url)}; or forget it and register anew: "
        f"{_cmd(store, 'register', url, '--new', '--discard-claimed')}.",
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


def _take_claim(creds: Credentials, claim: Any) -> None:
    if isinstance(claim, dict) and isinstance(claim.get("token"), str):
        creds.claim_token, creds.claim_url = claim["token"], claim.get("url")
        creds.claim_expires_at = (
            parse_rfc3339(claim["expires_at"]) if isinstance(claim.get("expires_at"), str) else None
        )


def _pending_claim(
    out: Output, store: CredentialStore, creds: Credentials, reg: dict[str, Any], login_hint: str | None = None
) -> int:
    """service_auth registration or an ID-JAG step-up: nothing issued until the human authorizes."""
    creds.registration_id, creds.type = reg.get("id"), reg.get("type")
    _take_claim(creds, reg.get("claim"))
    attempt = (reg.get("claim") or {}).get("attempt") or {}
    creds.take_attempt(attempt, login_hint)
    store.save(creds)
    _show_link(out, attempt)
    out.say(f"Then run {_cmd(store, 'claim', issuer=creds.issuer)} to enter the code they read back to you.")
    out.done(
        _summary(creds)
        | {"verification_uri": attempt.get("verification_uri"), "attempt_expires_at": attempt.get("expires_at")}
    )
    return 0


def _show_link(out: Output, attempt: dict[str, Any]) -> None:
    out.say("Ask the human to open this link, sign in and authorize. It is a secret for them alone:")
    out.say(f"  {attempt.get('verification_uri')}")
    out.say(f"The link works until {attempt.get('expires_at')}. The page will show them a 6-digit code.")


def _summary(creds: Credentials, **extra: Any) -> dict[str, Any]:
    return {
        "ok": True,
        "issuer": creds.issuer,
        "registration_id": creds.registration_id,
        "type": creds.type,
        "claimed": creds.claimed,
        "scope": creds.scope,
        "account": creds.account or None,
        "assertion_expires_at": _iso(creds.assertion_expires_at),
        "access_token_expires_at": _iso(creds.access_expires_at),
        "refresh_token_expires_at": _iso(creds.refresh_expires_at),
        "claim_expires_at": _iso(creds.claim_expires_at),
        **extra,
    }


def cmd_claim(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    creds = _stored(store, args.issuer)
    if creds.claim_outcome:
        raise _claim_over(creds.claim_outcome, creds, store)
    if creds.claimed:
        raise Exit(EXIT_REFUSED, "this registration is already claimed", "Nothing left to do.")
    if creds.claim_token is None or creds.claim_url is None:
        raise Exit(
            EXIT_NOTHING,
            "no claim token is stored (the claim window has closed)",
            f"For a new claim, register anew: {_cmd(store, 'register', creds.issuer, '--new')}.",
        )
    token, url = creds.claim_token, creds.claim_url
    if args.code and not args.email:
        return _complete(client, store, creds, out, args.code)
    deadline = time.monotonic() + args.wait
    while True:
        attempt, reused = _start_attempt(client, store, creds, args.email, out)
        _show_link(out, attempt)
        if args.no_wait:
            out.done(
                _summary(creds)
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
            raise _end_claim(store, creds, outcome)
        if outcome == "claimed":
            raise Exit(EXIT_REFUSED, "the claim is claimed", "")
        if time.monotonic() >= deadline:
            raise Exit(
                EXIT_NOT_CONFIRMED,
                "the human has not authorized yet",
                f"Run {_cmd(store, 'claim', issuer=creds.issuer)} again later.",
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
            raise _end_claim(store, creds, CLAIM_ENDED[exc.code]) from exc
        if exc.code != "too_many_attempts":
            raise
        last = creds.live(creds.claim_attempt_uri, creds.claim_attempt_expires_at)
        fits = email is None or _same_email(email, creds.claim_attempt_login_hint)
        if last and creds.claim_attempt_expires_at is not None and fits:
            out.say("The service allows no more live claim links (too_many_attempts); the last one still works.")
            return {"verification_uri": last, "expires_at": _iso(creds.claim_attempt_expires_at)}, True
        wait = f" (the service says: retry in {exc.retry_after:g} s)" if exc.retry_after is not None else ""
        raise Exit(
            EXIT_REFUSED,
            "the service already has as many live claim links for this registration as it allows "
            f"(too_many_attempts){wait}",
            "The human can still use a link you gave them; or wait until one expires (links live about "
            f"10 minutes), then run {_cmd(store, 'claim', issuer=creds.issuer)} again.",
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
            raise _end_claim(store, creds, CLAIM_ENDED[exc.code]) from exc
        if exc.code == "invalid_user_code" and re.search(r"[^0-9]", code):
            refusal = _refusal(exc)
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
    _ensure_token(client, store, creds)
    out.say(f"Claimed: the account now belongs to the human, permanently. Scopes: {creds.scope}.")
    out.done(_summary(creds))
    return 0


def cmd_token(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    creds = _stored(store, args.issuer)
    token = _ensure_token(client, store, creds, force=True)  # never a stored one the service has revoked
    if out.as_json:
        out.done(
            {
                "ok": True,
                "issuer": creds.issuer,
                "access_token": token,
                "expires_at": _iso(creds.access_expires_at),
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
        return _read(data.removeprefix("@"), "-d")
    return data.encode()


def cmd_call(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    url = _url(args.url)
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
    creds = _stored(store, args.issuer, url)
    response = client.call(method, url, _ensure_token(client, store, creds), headers, content)
    if response.status_code == 401:
        # Once: a new token (re-exchange, or refresh). A grant the service refuses ends here
        # (GrantRefused: the protocol's answer is a new registration).
        response = client.call(method, url, _ensure_token(client, store, creds, force=True), headers, content)
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
    creds = _stored(store, args.issuer)
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
            _ensure_token(client, store, creds, force=True)  # what is shown below, the service honours now
        except GrantRefused as exc:
            claim_status, refused = "revoked", exc
    out.say(f"Service:       {creds.issuer}")
    out.say(f"Registration:  {creds.registration_id} ({creds.type})")
    account = creds.account or {}
    if claim_status in ("denied", "revoked"):
        out.say("Account:       out of this agent's reach (the registration is revoked)")
    elif account.get("expires_at"):
        out.say(
            f"Account:       temporary, deleted {_in(parse_rfc3339(account['expires_at']))} ({account['expires_at']})"
        )
    else:
        out.say("Account:       " + ("claimed (permanent)" if creds.claimed else account.get("type", "unknown")))
    access = "valid, expires " + _in(creds.access_expires_at) if creds.access_token else "none stored"
    out.say(f"Access token:  {access}")
    out.say(
        f"Assertion:     {'valid, expires ' + _in(creds.assertion_expires_at) if creds.assertion else 'none stored'}"
    )
    if creds.refresh_token:
        out.say(f"Refresh token: expires {_in(creds.refresh_expires_at)}")
    if claim_status:
        out.say(f"Claim:         {CLAIM_SHOWN.get(claim_status, claim_status)}")
    if claim_status in ("denied", "revoked"):
        over = refused or _claim_over(claim_status, creds, store)
        summary = {k: v for k, v in _summary(creds).items() if k != "ok"}
        raise Exit(over.code, over.message, over.hint, summary | over.data)
    out.done(_summary(creds, claim_status=claim_status))
    return 0


CLAIM_SHOWN = {
    "denied": 'denied (the human pressed "This wasn\'t me"; the registration is revoked)',
    "revoked": "revoked (the registration no longer works)",
    "confirmed": "confirmed (ask the human for the code)",
}


def cmd_revoke(args: argparse.Namespace, client: Client, store: CredentialStore, out: Output) -> int:
    creds = _stored(store, args.issuer)
    service = _service(client, creds)
    # The refresh token or the assertion kills the grant and everything derived from it (RFC 7009);
    # an unclaimed temporary account is deleted with it.
    revoked = [t for t in (creds.refresh_token, creds.assertion, creds.access_token) if t]
    for token in revoked:
        client.revoke(service, token)
    store.delete(creds.issuer)
    out.say(f"Revoked {creds.registration_id} at {creds.issuer} and forgot it.")
    out.done({"ok": True, "issuer": creds.issuer, "registration_id": creds.registration_id, "revoked": len(revoked)})
    return 0
