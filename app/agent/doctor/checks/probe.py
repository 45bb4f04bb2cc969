"""probe.* (--probe only): one throwaway anonymous registration taken through token exchange, a bogus
assertion, a resource below the API, claim attempts, and its revocation (always attempted)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from app.agent.doctor.http import Fetched, Problem, error_code, http_url, json_object, label, origin, short
from app.agent.doctor.references import (
    R_NO_STORE,
    R_PROBE_CLAIM,
    R_PROBE_INVALID,
    R_PROBE_REGISTER,
    R_PROBE_RESOURCE,
    R_PROBE_REVOKED,
    R_PROBE_TOKEN,
    R_REVOKE,
)
from app.agent.doctor.report import Status, worst
from app.agent.doctor.session import Doctor
from app.protocol import JWT_BEARER

RATE_LIMIT_CODES = ("rate_limit_exceeded", "rate_limited")
PROBE_EMAIL = "doctor-probe@example.com"  # RFC 2606: nobody receives anything there
PROBE_BOGUS_ASSERTION = "authmd-doctor.not-an-assertion.probe"
MAX_PROBED_ATTEMPTS = 5  # the attempt cap is probed only when it is this small


def check_probe(d: Doctor) -> None:
    block = d.as_meta.doc.get("agent_auth") if d.as_meta else None
    if not isinstance(block, dict):
        d.add("probe.register", "fail", "no agent_auth block to probe", R_PROBE_REGISTER)
        return
    types = block.get("identity_types_supported")
    if isinstance(types, list) and "anonymous" not in types:
        d.add("probe.register", "warn", "anonymous registration not offered: nothing probed", R_PROBE_REGISTER)
        return
    try:
        url = http_url(block.get("identity_endpoint"))
        got = d.http.request("POST", url, json={"type": "anonymous"}, headers={"Accept": "application/json"})
    except Problem as exc:
        d.add("probe.register", "fail", f"identity_endpoint: {exc}", R_PROBE_REGISTER)
        return
    if got.status != 200:
        d.saw(label("POST", url), got)
        code = error_code(got)
        status: Status = "warn" if code in ("proof_of_work_required", *RATE_LIMIT_CODES) else "fail"
        d.add("probe.register", status, f"POST {url} answered {got.status} {code or ''}".rstrip(), R_PROBE_REGISTER)
        return
    try:
        reg = json_object(got)
    except Problem as exc:
        d.add("probe.register", "fail", str(exc), R_PROBE_REGISTER)
        return
    problems = list(_registration_problems(reg))
    status = worst(s for s, _ in problems) if problems else "pass"
    d.add(
        "probe.register",
        status,
        "; ".join(m for _, m in problems) or f"200 in the nested shape (id {short(reg.get('id'), 40)})",
        R_PROBE_REGISTER,
    )
    d.add("probe.no_store", *_no_store(got, "registration"), R_NO_STORE)
    identity = reg.get("identity")
    assertion = identity.get("assertion") if isinstance(identity, dict) else None
    if not isinstance(assertion, str):
        return
    claim = _ProbeClaim.of(reg, block, d.report.issuer or url)
    claim_probed = False
    revoked = False
    try:
        probe_token(d, assertion)
        d.guarded("probe", lambda: probe_resource(d, assertion))
        d.guarded("probe", lambda: probe_invalid_grant(d))
        if claim is not None:
            claim_probed = probe_claim(d, claim)
    finally:
        revoked = probe_cleanup(d, assertion)
    if claim is not None and claim_probed and revoked:
        probe_revoked_claim(d, claim)


def probe_token(d: Doctor, assertion: str) -> None:
    assert d.as_meta is not None
    try:
        url = http_url(d.as_meta.doc.get("token_endpoint"))
        form = {"grant_type": JWT_BEARER, "assertion": assertion}
        got = d.http.request("POST", url, data=form, headers={"Accept": "application/json"})
        if got.status != 200:
            d.saw(label("POST", url), got)
            raise Problem(f"POST {url} answered {got.status} {error_code(got) or ''}".rstrip())
        body = json_object(got)
    except Problem as exc:
        d.add("probe.token", "fail", f"token_endpoint: {exc}", R_PROBE_TOKEN)
        return
    problems: list[str] = []
    if not isinstance(body.get("access_token"), str) or not body.get("access_token"):
        problems.append("no access_token")
    if not isinstance(body.get("token_type"), str) or body["token_type"].lower() != "bearer":
        problems.append(f"token_type {short(body.get('token_type'))} (expected Bearer)")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        problems.append(f"expires_in {short(expires_in)} is not a number (the official client crashes)")
    if problems:
        d.add("probe.token", "fail", "; ".join(problems), R_PROBE_TOKEN)
    else:
        d.add("probe.token", "pass", f"access_token, Bearer, expires_in {expires_in}", R_PROBE_TOKEN)
    status, message = _no_store(got, "token response")
    if status != "pass":
        d.add("probe.token_no_store", status, message, R_NO_STORE)


def probe_resource(d: Doctor, assertion: str) -> None:
    """Revision 2 (RFC 8707): `resource` naming a URI below the protected resource names that resource,
    and the token's `aud` is the resource's own identifier. Only when started from an API URL (the
    resource its metadata names is one tokens are for; an issuer's own metadata may not be)."""
    assert d.as_meta is not None
    if d.report.mode not in ("api", "mcp"):
        return
    resource = d.prm.doc.get("resource") if d.prm is not None else None
    if not isinstance(resource, str) or urlsplit(resource).query or urlsplit(resource).fragment:
        return
    below = resource.rstrip("/") + "/authmd-doctor-probe"
    url = http_url(d.as_meta.doc.get("token_endpoint"))
    form = {"grant_type": JWT_BEARER, "assertion": assertion, "resource": below}
    got = d.http.request("POST", url, data=form, headers={"Accept": "application/json"})
    if got.status != 200:
        d.saw(label("POST", url), got)
        code = error_code(got)
        d.add(
            "probe.resource",
            "warn" if code == "invalid_target" else "fail",
            f"resource={below} answered {got.status} {code or ''}".rstrip()
            + " (revision 2: a URI below the resource names it; the official client sends the API URL)",
            R_PROBE_RESOURCE,
        )
        return
    token = json_object(got).get("access_token")
    aud = _unverified_claim(token, "aud") if isinstance(token, str) else None
    if aud is None:
        d.add("probe.resource", "pass", f"resource={below} accepted (an opaque access token)", R_PROBE_RESOURCE)
    elif aud == resource or (isinstance(aud, list) and resource in aud):
        d.add("probe.resource", "pass", f"resource={below} accepted; aud is {resource}", R_PROBE_RESOURCE)
    else:
        d.add(
            "probe.resource",
            "fail",
            f"resource={below} gave a token with aud {short(aud)} (revision 2: the resource, {resource})",
            R_PROBE_RESOURCE,
        )


def probe_invalid_grant(d: Doctor) -> None:
    """One assertion that is no JWT at all: an RFC 6749 sec 5.2 error (and an error body to check)."""
    assert d.as_meta is not None
    url = http_url(d.as_meta.doc.get("token_endpoint"))
    form = {"grant_type": JWT_BEARER, "assertion": PROBE_BOGUS_ASSERTION}
    got = d.http.request("POST", url, data=form, headers={"Accept": "application/json"})
    d.saw(label("POST", url), got)
    code = error_code(got)
    if got.status == 200:
        d.add("probe.invalid_grant", "fail", "an assertion that is not a JWT got a 200", R_PROBE_INVALID)
    elif got.status == 400 and code == "invalid_grant":
        d.add("probe.invalid_grant", "pass", "a bogus assertion: 400 invalid_grant", R_PROBE_INVALID)
    elif 400 <= got.status < 500 and code is not None:
        d.add(
            "probe.invalid_grant",
            "warn",
            f"a bogus assertion: {got.status} {code} (RFC 7523 sec 3.1 asks for 400 invalid_grant)",
            R_PROBE_INVALID,
        )
    else:
        d.add(
            "probe.invalid_grant",
            "fail",
            f"a bogus assertion: {got.status} {code or 'without a JSON error'}",
            R_PROBE_INVALID,
        )


def claim_post(d: Doctor, url: str, body: dict[str, Any]) -> tuple[Fetched, dict[str, Any] | None]:
    """POST a JSON body to a claim endpoint: the response and its JSON object (None if it has none).
    An error response is recorded for errors.*."""
    got = d.http.request("POST", url, json=body, headers={"Accept": "application/json"})
    d.saw(label("POST", url), got)
    try:
        return got, json_object(got)
    except Problem:
        return got, None


def probe_claim(d: Doctor, claim: _ProbeClaim) -> bool:
    """Revision 2's attempts: two live at once (the second with the flat `login_hint` alias), the
    status still `pending`, and one past an advertised `max_live_attempts` refused with
    `too_many_attempts`. True when attempts could be started (so the revoked claim is worth checking)."""
    if claim.skip:
        d.report.notes.append(f"claim attempts not probed: {claim.skip}")
        return False
    cap = d.max_live_attempts

    def start(kind: str) -> tuple[Fetched, dict[str, Any] | None]:
        return claim_post(d, claim.url, {"type": kind, "claim_token": claim.token, "login_hint": PROBE_EMAIL})

    got, body = start("service_auth")
    if got.status != 200:
        code = error_code(got)
        disabled = ("auth_method_disabled", "service_auth_registration_disabled", "service_auth_not_enabled")
        d.add(
            "probe.claim_attempts",
            "warn" if code in disabled else "fail",
            f"starting a claim attempt answered {got.status} {code or ''}".rstrip()
            + (": claims are off, nothing more probed" if code in disabled else ""),
            R_PROBE_CLAIM,
        )
        return False
    problem = _attempt_problem(body)
    if problem:
        d.add("probe.claim_attempts", "fail", f"the first attempt: {problem}", R_PROBE_CLAIM)
        return True
    links = [_attempt_link(body)]
    if cap == 1:
        d.add("probe.claim_attempts", "pass", "one attempt started (max_live_attempts is 1)", R_PROBE_CLAIM)
        d.report.notes.append("max_live_attempts is 1: a second live attempt and the alias were not probed")
    else:
        got, body = start("login_hint")
        alias: tuple[Status, str]
        if got.status == 200 and not _attempt_problem(body):
            alias = ("pass", 'claim start accepts the flat dialect\'s {"type":"login_hint"} as service_auth')
            links.append(_attempt_link(body))
        else:
            alias = (
                "warn" if got.status in (400, 422) else "fail",
                f'{{"type":"login_hint"}} answered {got.status} {error_code(got) or ""}'.rstrip()
                + " (revision 2 takes it as an alias of service_auth; agents that read the flat AUTH.md send it)",
            )
            got, body = start("service_auth")
            if got.status == 200 and not _attempt_problem(body):
                links.append(_attempt_link(body))
        if len(links) < 2:
            code = error_code(got)
            d.add(
                "probe.claim_attempts",
                "warn" if code == "too_many_attempts" else "fail",
                f"a second attempt answered {got.status} {code or ''}".rstrip()
                + " (revision 2: several attempts may be live at once)",
                R_PROBE_CLAIM,
            )
        else:
            check_two_attempts(d, claim, links)
        d.add("probe.claim_alias", alias[0], alias[1], R_PROBE_CLAIM)
        if len(links) < 2:
            return True
    if cap is None:
        d.report.notes.append("no claim.max_live_attempts advertised: the attempt cap was not probed")
    elif cap > MAX_PROBED_ATTEMPTS:
        d.report.notes.append(f"claim.max_live_attempts is {cap}: too many attempts to probe the cap")
    else:
        probe_attempt_cap(d, cap, len(links), start)
    return True


def check_two_attempts(d: Doctor, claim: _ProbeClaim, links: list[str]) -> None:
    findings: list[tuple[Status, str]] = []
    if links[0] == links[1]:
        findings.append(("warn", "both attempts have the same verification_uri (each call mints an attempt)"))
    got, body = claim_post(d, claim.status_url, {"claim_token": claim.token})
    if got.status == 404:
        said = "no status endpoint (*ext*)"
    elif got.status != 200 or body is None:
        findings.append(("fail", f"the claim status answered {got.status} {error_code(got) or ''}".rstrip()))
        said = ""
    elif body.get("status") != "pending":
        findings.append(("fail", f"the claim status is {short(body.get('status'))} (expected pending)"))
        said = ""
    else:
        said = "status pending"
    if findings:
        d.add("probe.claim_attempts", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_PROBE_CLAIM)
    else:
        d.add("probe.claim_attempts", "pass", f"two attempts started on one claim; {said}", R_PROBE_CLAIM)


def probe_attempt_cap(
    d: Doctor, cap: int, live: int, start: Callable[[str], tuple[Fetched, dict[str, Any] | None]]
) -> None:
    while live < cap:
        got, body = start("service_auth")
        if got.status != 200 or _attempt_problem(body):
            d.add(
                "probe.claim_cap",
                "fail",
                f"attempt {live + 1} of {cap} answered {got.status} {error_code(got) or ''}".rstrip(),
                R_PROBE_CLAIM,
            )
            return
        live += 1
    got, _ = start("service_auth")
    code = error_code(got)
    if got.status == 429 and code == "too_many_attempts":
        d.add(
            "probe.claim_cap",
            "pass",
            f"attempt {cap + 1} past the cap of {cap}: 429 too_many_attempts",
            R_PROBE_CLAIM,
        )
    elif got.status == 200:
        d.add(
            "probe.claim_cap",
            "warn",
            f"attempt {cap + 1} was started although max_live_attempts is {cap} (expected 429 too_many_attempts)",
            R_PROBE_CLAIM,
        )
    else:
        d.add(
            "probe.claim_cap",
            "fail",
            f"attempt {cap + 1} past the cap answered {got.status} {code or ''} (expected 429 too_many_attempts)",
            R_PROBE_CLAIM,
        )


def probe_revoked_claim(d: Doctor, claim: _ProbeClaim) -> None:
    """After the revocation the claim is over: status `revoked` and a new attempt 410 `claim_revoked`;
    or, when the unclaimed temporary account went with its revocation (nothing left to remember it
    by), status `expired` and 410 `claim_expired` (spec/protocol.md Deny versus revoke)."""
    findings: list[tuple[Status, str]] = []
    forms: set[str] = set()  # "revoked" or "deleted", as each answer reads
    got, body = claim_post(d, claim.status_url, {"claim_token": claim.token})
    said: list[str] = []
    if got.status == 200 and body is not None:
        status = body.get("status")
        said.append(f"status {short(status)}")
        if status in ("revoked", "expired"):
            forms.add("revoked" if status == "revoked" else "deleted")
        elif status in ("pending", "confirmed", "claimed"):
            findings.append(("fail", f"the claim status is {short(status)} after the revocation"))
        else:
            findings.append(("warn", f"the claim status is {short(status)} (revision 2: revoked)"))
    elif got.status != 404:
        findings.append(("warn", f"the claim status answered {got.status} {error_code(got) or ''}".rstrip()))
    got, _ = claim_post(d, claim.url, {"type": "service_auth", "claim_token": claim.token, "login_hint": PROBE_EMAIL})
    code = error_code(got)
    said.append(f"a new attempt {got.status} {code or ''}".rstrip())
    if got.status == 200:
        findings.append(("fail", "a claim attempt was started for the revoked registration"))
    elif got.status == 410 and code in ("claim_revoked", "claim_expired"):
        forms.add("revoked" if code == "claim_revoked" else "deleted")
    else:
        findings.append(("warn", f"a new attempt answered {got.status} {code or ''} (revision 2: 410 claim_revoked)"))
    if len(forms) > 1:
        findings.append(
            (
                "warn",
                f"the answers disagree: {', '.join(said)} (revision 2 pairs status revoked with 410 "
                "claim_revoked, or for a deleted account expired with claim_expired)",
            )
        )
    if findings:
        d.add("probe.claim_revoked", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_PROBE_REVOKED)
    elif forms == {"deleted"}:
        d.add(
            "probe.claim_revoked",
            "pass",
            f"the unclaimed account went with its revocation: {', '.join(said)}",
            R_PROBE_REVOKED,
        )
    else:
        d.add("probe.claim_revoked", "pass", f"after the revocation: {', '.join(said)}", R_PROBE_REVOKED)


def probe_cleanup(d: Doctor, assertion: str) -> bool:
    """Revoke the throwaway registration (an unclaimed account's assertion revoked: account deleted)."""
    assert d.as_meta is not None
    endpoint = d.as_meta.doc.get("revocation_endpoint")
    if endpoint is None:
        d.add("probe.cleanup", "warn", "no revocation_endpoint: the probe account stays until it expires", R_REVOKE)
        return False
    try:
        got = d.http.request("POST", http_url(endpoint), data={"token": assertion})
    except Problem as exc:
        d.add("probe.cleanup", "warn", f"could not revoke the probe registration: {exc}", R_REVOKE)
        return False
    if got.status == 200:
        d.add("probe.cleanup", "pass", "the probe registration was revoked (200)", R_REVOKE)
        return True
    d.saw(label("POST", endpoint), got)
    d.add("probe.cleanup", "warn", f"revoking the probe registration answered {got.status}", R_REVOKE)
    return False


@dataclass(frozen=True, slots=True)
class _ProbeClaim:
    """Where the probe's claim attempts go: the registration's claim token, its claim URL and status URL;
    ``skip`` says why no attempt is started."""

    token: str
    url: str
    status_url: str
    skip: str = ""

    @classmethod
    def of(cls, reg: dict[str, Any], block: dict[str, Any], issuer: str) -> _ProbeClaim | None:
        claim = reg.get("claim")
        token = claim.get("token") if isinstance(claim, dict) else None
        if not isinstance(token, str) or not token:
            return None
        assert isinstance(claim, dict)
        try:
            url = http_url(claim.get("url") if isinstance(claim.get("url"), str) else block.get("claim_endpoint"))
        except Problem:
            return None
        found = block.get("claim")
        ext: dict[str, Any] = found if isinstance(found, dict) else {}
        status_url = url.rstrip("/") + "/status"
        if isinstance(ext.get("status_endpoint"), str):
            with contextlib.suppress(Problem):
                status_url = http_url(ext["status_endpoint"])
        methods = ext.get("methods")
        skip = ""
        if ext.get("offered") is False:
            skip = "agent_auth.claim.offered is false"
        elif isinstance(methods, list) and "service_auth" not in methods:
            skip = "agent_auth.claim.methods lacks service_auth"
        elif origin(url) != origin(issuer) or origin(status_url) != origin(issuer):
            skip = f"the claim endpoints are not on the issuer's origin {origin(issuer)}"
        return cls(token, url, status_url, skip)


def _attempt_problem(body: dict[str, Any] | None) -> str:
    """What is wrong with a claim start's 200 body ('' when it has what the official client reads)."""
    if body is None:
        return "the body is not a JSON object"
    attempt = body.get("attempt")
    if not isinstance(attempt, dict):
        return "no attempt object (the official client throws)"
    try:
        http_url(attempt.get("verification_uri"))
    except Problem as exc:
        return f"attempt.verification_uri: {exc}"
    problem = _timestamp_problem("attempt.expires_at", attempt.get("expires_at"))
    return problem[1] if problem and problem[0] == "fail" else ""


def _attempt_link(body: dict[str, Any] | None) -> str:
    assert body is not None
    return str(body["attempt"]["verification_uri"])


def _unverified_claim(token: str, name: str) -> Any:
    """A claim of a compact JWS read without verification (None when the token is not a JWT)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    return payload.get(name) if isinstance(payload, dict) else None


def _timestamp_problem(name: str, value: Any) -> tuple[Status, str] | None:
    if not isinstance(value, str):
        return "fail", f"{name} missing or not a string"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return "fail", f"{name} {short(value)} is not RFC 3339"
    if parsed.tzinfo is None:
        return "fail", f"{name} {short(value)} has no offset (JavaScript reads it as local time)"
    if not value.endswith("Z"):
        return "warn", f"{name} {short(value)} is not UTC with a Z"
    return None


def _registration_problems(reg: dict[str, Any]) -> Iterator[tuple[Status, str]]:
    """The anonymous registration's nested shape (spec/protocol.md Registration; what the client reads)."""
    if not isinstance(reg.get("id"), str):
        yield "fail", "no id"
    if reg.get("type") != "anonymous":
        yield "fail", f"type is {short(reg.get('type'))}, not anonymous"
    for block, members in (("identity", ("assertion", "expires_at")), ("claim", ("token", "expires_at", "url"))):
        node = reg.get(block)
        if not isinstance(node, dict):
            yield "fail", f"no {block} object (flat shape?)"
            continue
        for member in members:
            name = f"{block}.{member}"
            if member == "expires_at":
                problem = _timestamp_problem(name, node.get(member))
                if problem:
                    yield problem
            elif not isinstance(node.get(member), str) or not node.get(member):
                yield "fail", f"no {name}"
    scopes = reg.get("scopes")
    if not isinstance(scopes, dict) or not all(isinstance(scopes.get(k), list) for k in ("pre_claim", "post_claim")):
        yield "warn", f"scopes is not {{pre_claim: [...], post_claim: [...]}}: {short(scopes)}"


def _no_store(got: Fetched, what: str) -> tuple[Status, str]:
    cache_control = got.headers.get("cache-control", "")
    if "no-store" not in cache_control.lower():
        return "fail", f"the {what} carries credentials without Cache-Control: no-store"
    if "no-cache" not in got.headers.get("pragma", "").lower():
        return "warn", f"the {what} has Cache-Control: no-store but no Pragma: no-cache"
    return "pass", f"the {what} sends Cache-Control: no-store and Pragma: no-cache"
