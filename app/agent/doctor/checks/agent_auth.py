"""agent_auth.* and as.grant_profiles: the metadata's agent_auth block (spec/protocol.md), its trust list
and its claim limits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from app.agent.doctor.checks.auth_md import auth_md_url
from app.agent.doctor.checks.jwks import PRIVATE_MEMBERS
from app.agent.doctor.http import Problem, http_url, is_loopback, short
from app.agent.doctor.references import (
    R_AGENT,
    R_AGENT_DISCOVERY,
    R_AS_FIELDS,
    R_GRANT_PROFILES,
    R_ISSUERS,
    R_MAX_ATTEMPTS,
)
from app.agent.doctor.report import Status, worst
from app.agent.doctor.session import Doctor
from app.protocol import ID_JAG_PROFILE, URN_ID_JAG

_SECRET_MEMBER = re.compile(r"secret|password|passwd|private|credential|api_?key", re.IGNORECASE)


def check_agent_auth(d: Doctor) -> None:
    assert d.as_meta is not None
    block = d.as_meta.doc.get("agent_auth")
    if not isinstance(block, dict):
        why = "missing" if block is None else f"not an object: {short(block)}"
        d.add("agent_auth.present", "fail", f"agent_auth {why}: the official client cannot register", R_AGENT)
        return
    d.add("agent_auth.present", "pass", "agent_auth block present", R_AGENT)

    for key in ("identity_endpoint", "claim_endpoint"):
        try:
            url = http_url(block.get(key))
        except Problem as exc:
            why = "missing" if key not in block else str(exc)
            d.add(f"agent_auth.{key}", "fail", f"{key}: {why}", R_AGENT)
        else:
            d.add(f"agent_auth.{key}", "pass", f"{key} {url}", R_AGENT)

    types = block.get("identity_types_supported")
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        d.add(
            "agent_auth.identity_types",
            "fail",
            f"identity_types_supported must be a list of strings: {short(types)}",
            R_AGENT,
        )
        types = []
    elif "service_auth" not in types:
        d.add(
            "agent_auth.identity_types",
            "warn",
            f"{short(types)} lacks service_auth: the official client given an email silently registers anonymously",
            R_AGENT,
        )
    else:
        d.add("agent_auth.identity_types", "pass", f"identity_types_supported {short(types)}", R_AGENT)

    ia = block.get("identity_assertion")
    if "identity_assertion" in types:
        supported = ia.get("assertion_types_supported") if isinstance(ia, dict) else None
        if isinstance(supported, list) and URN_ID_JAG in supported:
            d.add("agent_auth.id_jag", "pass", "identity_assertion lists the ID-JAG URN", R_AGENT)
        else:
            d.add(
                "agent_auth.id_jag",
                "fail",
                f"identity_assertion offered, but identity_assertion.assertion_types_supported lacks {URN_ID_JAG}",
                R_AGENT,
            )
    elif ia is not None:
        d.add(
            "agent_auth.id_jag",
            "warn",
            "an identity_assertion block, but identity_types_supported does not list identity_assertion",
            R_AGENT,
        )
    supported = ia.get("assertion_types_supported") if isinstance(ia, dict) else None
    accepts_id_jag = isinstance(supported, list) and URN_ID_JAG in supported
    check_grant_profiles(d, accepts_id_jag)
    check_trust_list(d, ia, accepts_id_jag)
    check_claim_metadata(d, block.get("claim"))

    if "skill" not in block:
        d.add(
            "agent_auth.skill",
            "warn",
            f"no skill (the agents' /auth.md); using {auth_md_url(d)}",
            R_AGENT_DISCOVERY,
        )
    else:
        try:
            d.add("agent_auth.skill", "pass", f"skill {http_url(block['skill'])}", R_AGENT_DISCOVERY)
        except Problem as exc:
            d.add("agent_auth.skill", "fail", f"skill: {exc}", R_AGENT_DISCOVERY)

    problems: list[str] = []
    if "events_endpoint" in block:
        try:
            http_url(block["events_endpoint"])
        except Problem as exc:
            problems.append(f"events_endpoint: {exc}")
    events = block.get("events_supported")
    if events is not None and (not isinstance(events, list) or not all(isinstance(e, str) for e in events)):
        problems.append(f"events_supported must be a list of event URIs: {short(events)}")
    if problems:
        d.add("agent_auth.events", "fail", "; ".join(problems), R_AGENT_DISCOVERY)
    elif "events_endpoint" in block:
        d.add("agent_auth.events", "pass", f"events_endpoint {block['events_endpoint']}", R_AGENT_DISCOVERY)
    else:
        d.add(
            "agent_auth.events",
            "pass",
            "no events_endpoint (needed only with identity providers)",
            R_AGENT_DISCOVERY,
        )


def check_grant_profiles(d: Doctor, accepts_id_jag: bool) -> None:
    """RFC 8414 `authorization_grant_profiles_supported` (ID-JAG draft sec 7): MCP clients look there."""
    assert d.as_meta is not None
    meta = d.as_meta.doc
    key = "authorization_grant_profiles_supported"
    if key not in meta:
        if accepts_id_jag:
            d.add(
                "as.grant_profiles",
                "warn",
                f"ID-JAGs are accepted but {key} is missing (MCP clients look for {ID_JAG_PROFILE})",
                R_GRANT_PROFILES,
            )
        return
    profiles = meta[key]
    if not isinstance(profiles, list) or not all(isinstance(x, str) and x for x in profiles):
        d.add("as.grant_profiles", "fail", f"{key} must be a list of profile URIs: {short(profiles)}", R_AS_FIELDS)
    elif accepts_id_jag and ID_JAG_PROFILE not in profiles:
        d.add(
            "as.grant_profiles",
            "warn",
            f"ID-JAGs are accepted but {key} {short(profiles)} lacks {ID_JAG_PROFILE}",
            R_GRANT_PROFILES,
        )
    elif not accepts_id_jag and ID_JAG_PROFILE in profiles:
        d.add(
            "as.grant_profiles",
            "warn",
            f"{key} lists {ID_JAG_PROFILE}, but assertion_types_supported lacks {URN_ID_JAG}",
            R_GRANT_PROFILES,
        )
    else:
        d.add("as.grant_profiles", "pass", f"{key} {short(profiles, 100)}", R_GRANT_PROFILES)


def check_trust_list(d: Doctor, ia: Any, accepts_id_jag: bool) -> None:
    """`identity_assertion.issuers_supported`: [{issuer, name}], so an agent knows before trying."""
    if not isinstance(ia, dict) or "issuers_supported" not in ia:
        if accepts_id_jag:
            d.add(
                "agent_auth.issuers",
                "warn",
                "ID-JAGs are accepted but no trust list is published (identity_assertion.issuers_supported): "
                "an agent cannot tell whether its provider is trusted before trying",
                R_ISSUERS,
            )
        return
    entries = ia["issuers_supported"]
    if not isinstance(entries, list):
        d.add("agent_auth.issuers", "fail", f"issuers_supported is not a list: {short(entries)}", R_ISSUERS)
        return
    findings = [f for i, entry in enumerate(entries) for f in _trust_entry_findings(f"issuers_supported[{i}]", entry)]
    issuers = [e["issuer"] for e in entries if isinstance(e, dict) and isinstance(e.get("issuer"), str)]
    if len(set(issuers)) != len(issuers):
        findings.append(("warn", "an issuer is listed twice"))
    if not entries and accepts_id_jag:
        findings.append(("warn", "issuers_supported is empty, so every ID-JAG is refused"))
    if findings:
        d.add("agent_auth.issuers", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_ISSUERS)
    else:
        names = ", ".join(str(e["name"]) for e in entries)
        d.add("agent_auth.issuers", "pass", f"a trust list of {len(entries)} issuer(s): {short(names, 80)}", R_ISSUERS)


def check_claim_metadata(d: Doctor, claim: Any) -> None:
    """*ext* `agent_auth.claim.max_live_attempts`: a positive integer when present."""
    if not isinstance(claim, dict) or "max_live_attempts" not in claim:
        return
    value = claim["max_live_attempts"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        d.add(
            "agent_auth.max_live_attempts",
            "fail",
            f"claim.max_live_attempts must be a positive integer: {short(value)}",
            R_MAX_ATTEMPTS,
        )
        return
    d.max_live_attempts = value
    d.add("agent_auth.max_live_attempts", "pass", f"up to {value} claim attempt(s) live at once", R_MAX_ATTEMPTS)


def _trust_entry_findings(label: str, entry: Any) -> Iterator[tuple[Status, str]]:
    if not isinstance(entry, dict):
        yield "fail", f"{label} is not an object {{issuer, name}}: {short(entry)}"
        return
    try:
        issuer = http_url(entry.get("issuer"))
    except Problem as exc:
        yield "fail", f"{label}.issuer: {exc}"
    else:
        parts = urlsplit(issuer)
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            yield "fail", f"{label}.issuer {issuer} is plain http on a non-loopback host"
        if parts.query or parts.fragment:
            yield "fail", f"{label}.issuer {issuer} has a query or fragment (RFC 8414 sec 2: an issuer has none)"
    name = entry.get("name")
    if not isinstance(name, str):
        yield "fail", f"{label}.name must be a string: {short(name)}"
    elif not name.strip():
        yield "warn", f"{label}.name is empty (agents show it to their user)"
    leaked = list(_secrets_in(entry, label))
    if leaked:
        yield "fail", f"{label} publishes what looks like a secret: {', '.join(leaked)}"


def _secrets_in(node: Any, path: str, depth: int = 0) -> Iterator[str]:
    """Members of a public document that look like a secret: a name like client_secret or private_key,
    a JWK's private or symmetric member (d, k, ...) or a PEM private key."""
    if depth > 4:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{path}.{key}"
            if isinstance(key, str) and (_SECRET_MEMBER.search(key) or key in PRIVATE_MEMBERS):
                yield name
            else:
                yield from _secrets_in(value, name, depth + 1)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _secrets_in(value, f"{path}[{i}]", depth + 1)
    elif isinstance(node, str) and "PRIVATE KEY" in node:
        yield path
