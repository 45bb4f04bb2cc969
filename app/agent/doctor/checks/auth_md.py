"""auth_md.*: the agents' prose contract (/auth.md): served, naming the issuer and the identity endpoint,
and its json examples matching the live documents."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from app.agent.doctor.checks.errors import REVISION_1_CODES
from app.agent.doctor.http import Problem, http_url
from app.agent.doctor.references import R_AUTH_MD, R_ERROR_NAMES
from app.agent.doctor.report import Status, worst
from app.agent.doctor.session import Doctor

_OPEN_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CLOSE_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")


def auth_md_url(d: Doctor) -> str:
    skill = d.as_meta.doc.get("agent_auth", {}) if d.as_meta else {}
    skill = skill.get("skill") if isinstance(skill, dict) else None
    if isinstance(skill, str):
        try:
            return http_url(skill)
        except Problem:
            pass
    assert d.report.issuer is not None
    return d.report.issuer.rstrip("/") + "/auth.md"


def check_auth_md(d: Doctor) -> None:
    url = auth_md_url(d)
    try:
        got = d.http.get(url, accept="text/markdown, text/plain;q=0.9")
    except Problem as exc:
        d.add("auth_md.fetch", "fail", str(exc), R_AUTH_MD)
        return
    if got.status != 200:
        d.add("auth_md.fetch", "fail", f"{url} answered {got.status} (the prose contract is missing)", R_AUTH_MD)
        return
    d.cached.append(("auth_md", got))
    if got.content_type in ("text/markdown", "text/plain"):
        d.add("auth_md.fetch", "pass", f"{url}: 200 {got.content_type}", R_AUTH_MD)
    else:
        d.add("auth_md.fetch", "warn", f"{url}: 200 but {got.content_type or 'no Content-Type'}", R_AUTH_MD)
    text = got.text()

    issuer = d.report.issuer or ""
    block = d.as_meta.doc.get("agent_auth") if d.as_meta else None
    identity = block.get("identity_endpoint") if isinstance(block, dict) else None
    findings: list[tuple[Status, str]] = []
    if issuer not in text:
        findings.append(("warn", f"does not mention the issuer {issuer}"))
    if isinstance(identity, str) and identity:
        if identity in text:
            pass
        elif (path := urlsplit(identity).path) and path in text:
            findings.append(("warn", f"names the identity endpoint only by its path {path}"))
        else:
            findings.append(("fail", f"does not mention the identity endpoint {identity}"))
    if findings:
        d.add("auth_md.mentions", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_AUTH_MD)
    else:
        d.add("auth_md.mentions", "pass", "mentions the issuer and the identity endpoint", R_AUTH_MD)

    # Agents that read /auth.md script against the codes it names. `invalid_issuer` is left out: it
    # stays right for the RFC 8935 events endpoint, which the prose may well document.
    old = [
        f"{code} (revision 2: {REVISION_1_CODES[code]})"
        for code in ("anonymous_not_enabled", "service_auth_not_enabled", "rate_limited")
        if re.search(rf"(?<![A-Za-z0-9_]){code}(?![A-Za-z0-9_])", text)
    ]
    if old:
        d.add("auth_md.error_codes", "warn", f"documents revision 1 error codes: {', '.join(old)}", R_ERROR_NAMES)
    else:
        d.add("auth_md.error_codes", "pass", "names no revision 1 error code", R_ERROR_NAMES)

    examples = json_examples(text)
    parsed: dict[str, Any] = {}
    broken: list[str] = []
    for name, body in examples:
        try:
            parsed[name] = json.loads(body)
        except (ValueError, RecursionError):
            broken.append(name)
    if broken:
        d.add("auth_md.examples", "warn", f"json examples that do not parse: {', '.join(broken)}", R_AUTH_MD)
    elif examples:
        d.add("auth_md.examples", "pass", f"{len(examples)} json example(s), all parse", R_AUTH_MD)
    else:
        d.add("auth_md.examples", "pass", "no `json example=NAME` blocks", R_AUTH_MD)

    for check_id, name, live in (
        ("auth_md.as_example", "authorization-server-metadata", d.as_meta),
        ("auth_md.prm_example", "protected-resource-metadata", d.prm),
    ):
        if name in parsed and live is not None:
            diff = _key_diff(parsed[name], live.doc)
            if diff:
                d.add(check_id, "warn", f"example {name} differs from the live document: {diff}", R_AUTH_MD)
            else:
                d.add(check_id, "pass", f"example {name} has the live document's keys", R_AUTH_MD)


def json_examples(markdown: str) -> list[tuple[str, str]]:
    """[(NAME, body)] of every fenced block whose info string is `json example=NAME` (CommonMark fences)."""
    out: list[tuple[str, str]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        m = _OPEN_FENCE.match(lines[i])
        i += 1
        if not m or (m.group(1)[0] == "`" and "`" in m.group(2)):
            continue
        fence, words = m.group(1), m.group(2).split()
        body: list[str] = []
        while i < len(lines):
            c = _CLOSE_FENCE.match(lines[i])
            i += 1
            if c and c.group(1)[0] == fence[0] and len(c.group(1)) >= len(fence):
                break
            body.append(lines[i - 1])
        if words and words[0].lower() == "json":
            for word in words[1:]:
                if word.startswith("example="):
                    out.append((word.removeprefix("example=").strip("\"'"), "\n".join(body)))
    return out


def _key_diff(example: Any, live: dict[str, Any]) -> str:
    """Differences of the top-level and `agent_auth` key sets ('' when none)."""
    if not isinstance(example, dict):
        return "the example is not an object"
    parts: list[str] = []
    pairs: list[tuple[str, Any, Any]] = [("", example, live)]
    if isinstance(example.get("agent_auth"), dict) and isinstance(live.get("agent_auth"), dict):
        pairs.append(("agent_auth.", example["agent_auth"], live["agent_auth"]))
    for prefix, ex, lv in pairs:
        lacks = sorted(set(lv) - set(ex))
        extra = sorted(set(ex) - set(lv))
        if lacks:
            parts.append(f"lacks {', '.join(prefix + k for k in lacks)}")
        if extra:
            parts.append(f"has extra {', '.join(prefix + k for k in extra)}")
    return "; ".join(parts)
