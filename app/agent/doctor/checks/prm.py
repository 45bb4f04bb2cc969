"""resource.* and prm.*: an API URL's 401 challenge and the protected-resource metadata (RFC 9728)."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.agent.doctor.checks.jwks import PRIVATE_MEMBERS
from app.agent.doctor.checks.mcp import sdks_accept
from app.agent.doctor.http import Fetched, Problem, http_url, label, parse_challenges, short, well_known
from app.agent.doctor.references import R_401, R_PRM, R_PRM_FIELDS, R_PRM_RESOURCE
from app.agent.doctor.session import Doctor, Document
from app.protocol import PROTECTED_RESOURCE


def check_api(d: Doctor, start: Fetched, method: str = "GET") -> None:
    """The 401 of an unauthenticated request (a GET; an MCP client's POST in "mcp" mode) must name the
    metadata; follow it (or derive it)."""
    d.saw(label(method, start.url), start, strict=False)
    challenges = parse_challenges(start.headers.get_list("www-authenticate"))
    bearer = [params for scheme, params in challenges if scheme == "bearer"]
    metadata_url: str | None = None
    if not challenges:
        d.add("resource.401", "fail", "401 without a WWW-Authenticate header", R_401)
    elif not bearer:
        schemes = ", ".join(s for s, _ in challenges)
        d.add("resource.401", "fail", f"401 challenges {schemes}, no Bearer", R_401)
    elif "resource_metadata" not in bearer[0]:
        d.add("resource.401", "fail", "401 Bearer challenge without resource_metadata", R_401)
    else:
        try:
            metadata_url = http_url(bearer[0]["resource_metadata"])
        except Problem as exc:
            d.add("resource.401", "fail", f"resource_metadata: {exc}", R_401)
        else:
            d.add("resource.401", "pass", f'401 with Bearer resource_metadata="{metadata_url}"', R_401)
    if metadata_url is None:
        metadata_url = derive_prm_url(d, d.url)
        if metadata_url is None:
            d.add("prm.fetch", "fail", "no resource_metadata and none at the RFC 9728 sec 3.1 URLs", R_PRM)
            return
        d.report.notes.append(f"resource metadata found by RFC 9728 sec 3.1 derivation: {metadata_url}")
    check_prm(d, metadata_url, started_from=d.url)


def derive_prm_url(d: Doctor, url: str) -> str | None:
    """RFC 9728 sec 3.1 from the URL, then from each shorter path prefix, down to the origin."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    for n in range(len(segments), -1, -1):
        candidate = f"{parts.scheme}://{parts.netloc}{PROTECTED_RESOURCE}" + "".join(f"/{s}" for s in segments[:n])
        try:
            if d.http.get(candidate).status == 200:
                return candidate
        except Problem:
            return None
        if len(segments) - n >= 4:
            break
    return None


def resource_for(metadata_url: str) -> str | None:
    """The resource identifier a well-known metadata URL was derived from (RFC 9728 sec 3.1), if any."""
    parts = urlsplit(metadata_url)
    if not parts.path.startswith(PROTECTED_RESOURCE):
        return None
    rest = parts.path.removeprefix(PROTECTED_RESOURCE)
    if rest and not rest.startswith("/"):
        return None
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{rest}{query}"


def check_prm(d: Doctor, metadata_url: str, *, started_from: str | None, expect_as: str | None = None) -> None:
    try:
        got, doc = d.http.get_json(metadata_url)
    except Problem as exc:
        d.add("prm.fetch", "fail", str(exc), R_PRM)
        return
    d.prm = Document(got, doc)
    d.cached.append(("prm", got))
    d.add("prm.fetch", "pass", f"{metadata_url}: 200, a JSON object", R_PRM)

    resource, expected = doc.get("resource"), resource_for(metadata_url)
    if not isinstance(resource, str):
        d.add("prm.resource", "fail", f"resource is missing or not a string: {short(resource)}", R_PRM_RESOURCE)
    elif expected is None:
        d.add(
            "prm.resource",
            "warn",
            f"resource is {short(resource)}; the metadata URL is not a {PROTECTED_RESOURCE} URL to compare it with",
            R_PRM_RESOURCE,
        )
    elif resource != expected and d.report.mode == "mcp" and sdks_accept(expected, resource):
        d.add(
            "prm.resource",
            "warn",
            f"resource is {short(resource)}, a parent of {expected} from which the metadata URL was derived: "
            "RFC 9728 wants them identical; MCP clients accept a parent path (mcp.resource)",
            R_PRM_RESOURCE,
        )
    elif resource != expected:
        d.add(
            "prm.resource",
            "fail",
            f"resource is {short(resource)}, but the metadata URL was derived from {expected}",
            R_PRM_RESOURCE,
        )
    elif started_from and not _covers(resource, started_from):
        d.add("prm.resource", "warn", f"resource {resource} does not cover the URL {started_from}", R_PRM_RESOURCE)
    else:
        d.add("prm.resource", "pass", f"resource is exactly {resource}", R_PRM_RESOURCE)

    servers = doc.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not all(isinstance(s, str) for s in servers):
        d.add(
            "prm.authorization_servers",
            "fail",
            f"authorization_servers must be a non-empty list of issuer URLs: {short(servers)}",
            R_PRM_FIELDS,
        )
    else:
        try:
            issuer = http_url(servers[0])
        except Problem as exc:
            d.add("prm.authorization_servers", "fail", f"authorization_servers[0]: {exc}", R_PRM_FIELDS)
        else:
            if expect_as is not None and expect_as not in servers:
                d.add(
                    "prm.authorization_servers",
                    "warn",
                    f"authorization_servers {short(servers)} does not list the issuer {expect_as}",
                    R_PRM_FIELDS,
                )
            else:
                more = f" (and {len(servers) - 1} more; checking the first)" if len(servers) > 1 else ""
                d.add("prm.authorization_servers", "pass", f"authorization server {issuer}{more}", R_PRM_FIELDS)
            if d.report.issuer is None:
                d.report.issuer = issuer

    if "jwks_uri" in doc:
        try:
            jwks_url = http_url(doc["jwks_uri"])
            _, jwks = d.http.get_json(jwks_url)
            keys = jwks.get("keys")
            if not isinstance(keys, list):
                raise Problem(f"{jwks_url}: no keys list")
            private = [m for k in keys if isinstance(k, dict) for m in PRIVATE_MEMBERS if m in k]
            if private:
                raise Problem(f"{jwks_url} publishes private key members {sorted(set(private))}")
            d.add("prm.jwks_uri", "pass", f"{jwks_url}: a JWK set of {len(keys)} key(s)", R_PRM_FIELDS)
        except Problem as exc:
            d.add("prm.jwks_uri", "fail", f"jwks_uri: {exc}", R_PRM_FIELDS)


def check_issuer_prm(d: Doctor) -> None:
    """Started from the issuer: its own RFC 9728 document (resource = the issuer) is checked if served."""
    assert d.report.issuer is not None
    url = well_known(d.report.issuer, PROTECTED_RESOURCE)
    got = d.http.get(url)
    if got.status == 404:
        d.report.notes.append(f"no protected-resource metadata for the issuer at {url} (optional)")
        return
    check_prm(d, url, started_from=None, expect_as=d.report.issuer)


def _covers(resource: str, url: str) -> bool:
    """True when ``url`` is the resource or below it (path-segment prefix)."""
    return url == resource or url.startswith(resource.rstrip("/") + "/") or url.startswith(resource + "?")
