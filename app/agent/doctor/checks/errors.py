"""errors.*: every error response the run met, read against spec/protocol.md Errors (revision 2 names,
both texts, retry_after on a 429)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from app.agent.doctor.http import error_code, short
from app.agent.doctor.references import R_ERROR_NAMES, R_ERRORS, R_RETRY
from app.agent.doctor.report import Status, worst
from app.agent.doctor.session import Doctor, SeenError

# spec/protocol.md Changes in revision 2: the revision 1 code names and what replaced them. `invalid_issuer` stays right
# at the RFC 8935 events endpoint alone, which the doctor never calls.
REVISION_1_CODES = {
    "anonymous_not_enabled": "anonymous_registration_disabled",
    "service_auth_not_enabled": "service_auth_registration_disabled",
    "rate_limited": "rate_limit_exceeded",
    "invalid_issuer": "issuer_not_enabled",
}


def check_errors(d: Doctor) -> None:
    seen = list(d.seen_errors)
    known = {id(e.fetched) for e in seen}
    seen += [SeenError(label, got, True) for label, got in d.http.throttled if id(got) not in known]
    if not seen:
        d.report.notes.append("no error response met: error bodies not checked (start from an API URL, or add --probe)")
        return
    grouped: dict[tuple[Status, str], list[str]] = {}
    for e in seen:
        if finding := _error_body_finding(e):
            grouped.setdefault(finding, []).append(_seen_name(e))
    if grouped:
        message = "; ".join(f"{problem}: {', '.join(dict.fromkeys(where))}" for (_, problem), where in grouped.items())
        d.add("errors.body", worst(s for s, _ in grouped), message, R_ERRORS)
    else:
        d.add(
            "errors.body",
            "pass",
            f"{len(seen)} error response(s), each with error, error_description and message",
            R_ERRORS,
        )

    codes = list(dict.fromkeys(c for e in seen if (c := error_code(e.fetched))))
    old = [c for c in codes if c in REVISION_1_CODES]
    if old:
        renamed = ", ".join(f"{c} (revision 2: {REVISION_1_CODES[c]})" for c in old)
        d.add("errors.codes", "warn", f"revision 1 error codes: {renamed}", R_ERROR_NAMES)
    elif codes:
        d.add("errors.codes", "pass", f"no revision 1 code name among {', '.join(codes)}", R_ERROR_NAMES)

    throttled = [e for e in seen if e.fetched.status == 429 and error_code(e.fetched) != "too_many_attempts"]
    if throttled:
        findings = [f for e in throttled for f in _retry_after_findings(e)]
        if findings:
            d.add("errors.retry_after", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_RETRY)
        else:
            d.add(
                "errors.retry_after",
                "pass",
                f"{len(throttled)} 429(s), each with Retry-After and the same numeric retry_after",
                R_RETRY,
            )


def _error_body_finding(seen: SeenError) -> tuple[Status, str] | None:
    """spec/protocol.md Errors, revision 2: `error`, `error_description` and `message` (the same text).
    (status, what is wrong) or None when the body has all three."""
    got = seen.fetched
    try:
        body = json.loads(got.body)
    except (ValueError, RecursionError):
        body = None
    not_protocol: Status = "fail" if seen.strict else "warn"
    if not isinstance(body, dict):
        return not_protocol, "not a JSON error body"
    code = body.get("error")
    if not isinstance(code, str) or not code:
        return not_protocol, "no error code in the body"
    message, description = body.get("message"), body.get("error_description")
    wrong = [
        n
        for n, v in (("message", message), ("error_description", description))
        if v is not None and not isinstance(v, str)
    ]
    if wrong:
        return "fail", f"{' and '.join(wrong)} not a string"
    if not message and not description:
        return "fail", "neither message nor error_description (agents show one of them)"
    if not message:
        return "warn", "error_description but no message (revision 2: both, the same text)"
    if not description:
        return "warn", "message but no error_description (RFC 6749 sec 5.2 clients read it)"
    return None


def _seen_name(seen: SeenError) -> str:
    return f"{seen.label} {seen.fetched.status} {error_code(seen.fetched) or ''}".rstrip()


def _retry_after_seconds(value: str) -> float | None:
    """Retry-After as seconds: delay-seconds or an HTTP-date (RFC 9110 sec 10.2.3); None if neither."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _retry_after_findings(seen: SeenError) -> Iterator[tuple[Status, str]]:
    """A 429: `Retry-After` and, revision 2, the same number of seconds in the body's `retry_after`."""
    got = seen.fetched
    where = f"{seen.label} 429 {error_code(got) or ''}".rstrip()
    header = got.headers.get("retry-after")
    from_header = _retry_after_seconds(header) if header is not None else None
    if header is not None and from_header is None:
        yield "fail", f"{where}: Retry-After {short(header)} is neither seconds nor an HTTP date"
        return
    try:
        body = json.loads(got.body)
    except (ValueError, RecursionError):
        body = None
    in_body = body.get("retry_after") if isinstance(body, dict) else None
    if in_body is not None and (isinstance(in_body, bool) or not isinstance(in_body, int | float) or in_body < 0):
        yield "fail", f"{where}: retry_after {short(in_body)} is not a number of seconds"
        return
    if header is None and in_body is None:
        yield "fail", f"{where}: neither Retry-After nor retry_after says when to retry"
    elif header is None:
        yield "warn", f"{where}: retry_after but no Retry-After header (RFC 6585 clients read the header)"
    elif in_body is None:
        yield "warn", f"{where}: Retry-After but no numeric retry_after in the body (revision 2)"
    elif from_header is not None and abs(from_header - float(in_body)) > 1.0:
        yield "fail", f"{where}: retry_after {in_body} disagrees with Retry-After {header}"
