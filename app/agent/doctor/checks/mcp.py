"""mcp.*: the chain an MCP client follows from an MCP server URL (the MCP authorization specification,
revision 2026-07-28): the 401 of its first request without a token, the RFC 9728 document the
challenge names (and the one at the path-inserted well-known URL), the SDKs' rule for that document's
`resource`, then the authorization server's metadata, found at the well-known URLs in the order the
specification gives, and what an MCP client needs in it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.agent.doctor.http import Fetched, Problem, http_url, json_object, parse_challenges, short, well_known
from app.agent.doctor.references import (
    R_MCP_AS_DISCOVERY,
    R_MCP_AS_FIELDS,
    R_MCP_AS_ISSUER,
    R_MCP_CHALLENGE,
    R_MCP_ISS,
    R_MCP_PKCE,
    R_MCP_PRM,
    R_MCP_REGISTRATION,
    R_MCP_RESOURCE,
    R_MCP_SCOPE,
)
from app.agent.doctor.session import Doctor
from app.protocol import AS_METADATA, PROTECTED_RESOURCE

OIDC_CONFIGURATION = "/.well-known/openid-configuration"
# An MCP client's first request: JSON-RPC `initialize` over streamable HTTP, without a token. A
# protected server refuses it with 401 before reading it; nothing is created.
MCP_REQUEST = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "authmd-doctor", "version": "1"},
        },
    },
    separators=(",", ":"),
)
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def looks_like_mcp(url: str) -> bool:
    """The conventional MCP endpoint: the URL's last path segment is `mcp` (`/mcp`, `/api/mcp`)."""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    return bool(segments) and segments[-1].lower() == "mcp"


def mcp_request(d: Doctor) -> Fetched:
    """POST the MCP client's first request to the URL, without a token."""
    return d.http.request("POST", d.url, content=MCP_REQUEST.encode(), headers=MCP_HEADERS)


# ---- the SDKs' resource rule ---------------------------------------------------------------------


def canonical_server_url(url: str) -> str:
    """The resource an MCP client derives from the server URL: scheme and host lower-cased, no
    fragment (Python SDK resource_url_from_server_url; TypeScript resourceUrlFromServerUrl)."""
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower(), fragment="").geturl()


def _slash(path: str) -> str:
    return path if path.endswith("/") else path + "/"


def python_sdk_accepts(server: str, resource: str) -> bool:
    """mcp.shared.auth_utils.check_resource_allowed(requested_resource=server, configured_resource=resource):
    scheme and host:port as written (case-insensitive), then a path prefix at a segment boundary."""
    a, b = urlsplit(server), urlsplit(resource)
    if a.scheme.lower() != b.scheme.lower() or a.netloc.lower() != b.netloc.lower():
        return False
    return _slash(a.path).startswith(_slash(b.path))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _ts_origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def typescript_sdk_accepts(server: str, resource: str) -> bool:
    """@modelcontextprotocol/sdk checkResourceAllowed: the same URL origin (default ports elided), the
    server's path not shorter than the resource's, then the same trailing-slash prefix test (a URL's
    empty path is `/` there)."""
    if _ts_origin(server) != _ts_origin(resource):
        return False
    a, b = urlsplit(server).path or "/", urlsplit(resource).path or "/"
    return len(a) >= len(b) and _slash(a).startswith(_slash(b))


def sdks_accept(server: str, resource: str) -> bool:
    """Both SDKs accept `resource` for the MCP server URL `server`."""
    canonical = canonical_server_url(server)
    return python_sdk_accepts(canonical, resource) and typescript_sdk_accepts(canonical, resource)


# ---- the chain ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    url: str
    doc: dict[str, Any]


def check_mcp(d: Doctor, start: Fetched) -> None:
    """``start``: the answer to ``mcp_request``."""
    metadata_url = _challenge(d, start)
    if start.status != 401:
        return
    prm = _protected_resource(d, metadata_url)
    _protected_resource_well_known(d, metadata_url, prm)
    if prm is None:
        return
    _resource(d, prm)
    servers = prm.doc.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        return  # mcp.prm said why
    issuer = servers[0]  # both SDKs take the first
    meta = _as_discovery(d, issuer)
    if meta is None:
        return
    _as_issuer(d, issuer, meta)
    _as_fields(d, meta.doc)


def _challenge(d: Doctor, start: Fetched) -> str | None:
    """mcp.challenge and mcp.challenge_scope; the challenge's resource_metadata URL, if usable."""
    where = f"POST {urlsplit(d.url).path or '/'} without a token"
    if start.status != 401:
        d.add(
            "mcp.challenge",
            "fail",
            f"{where} answered {start.status}, not 401: an MCP client never learns that it must authorize here",
            R_MCP_CHALLENGE,
        )
        return None
    challenges = parse_challenges(start.headers.get_list("www-authenticate"))
    bearer = next((params for scheme, params in challenges if scheme == "bearer"), None)
    fallback = "MCP clients fall back to the well-known URLs (mcp.prm_well_known)"
    metadata_url: str | None = None
    if bearer is None:
        got = "no WWW-Authenticate header" if not challenges else f"challenges {', '.join(s for s, _ in challenges)}"
        d.add("mcp.challenge", "fail", f"{where}: 401 with {got}, no Bearer challenge; {fallback}", R_MCP_CHALLENGE)
    elif "resource_metadata" not in bearer:
        message = f"{where}: 401 Bearer challenge without resource_metadata; {fallback}"
        d.add("mcp.challenge", "fail", message, R_MCP_CHALLENGE)
    else:
        try:
            metadata_url = http_url(bearer["resource_metadata"])
        except Problem as exc:
            d.add("mcp.challenge", "fail", f"{where}: 401 with resource_metadata: {exc}", R_MCP_CHALLENGE)
        else:
            d.add("mcp.challenge", "pass", f'{where}: 401, Bearer resource_metadata="{metadata_url}"', R_MCP_CHALLENGE)
    if bearer is None:
        return metadata_url
    scope = bearer.get("scope")
    if scope is None:
        d.add(
            "mcp.challenge_scope",
            "warn",
            "no scope in the challenge: MCP clients then ask for every scope in the resource metadata's "
            "scopes_supported, or for none",
            R_MCP_SCOPE,
        )
    elif not scope.split():
        d.add("mcp.challenge_scope", "warn", 'scope="" names no scope', R_MCP_SCOPE)
    elif "offline_access" in scope.split():
        d.add(
            "mcp.challenge_scope",
            "warn",
            f'scope="{scope}" includes offline_access (a refresh token is not a resource requirement)',
            R_MCP_SCOPE,
        )
    else:
        d.add("mcp.challenge_scope", "pass", f'scope="{scope}": the scopes an MCP client asks for first', R_MCP_SCOPE)
    return metadata_url


def _read_prm(d: Doctor, url: str) -> tuple[Fetched, dict[str, Any]]:
    """GET a protected-resource document (reusing the one prm.* read at the same URL)."""
    if d.prm is not None and d.prm.fetched.url == url:
        return d.prm.fetched, d.prm.doc
    got = d.http.get(url)
    if got.status != 200:
        where = f" -> {got.headers.get('location')}" if 300 <= got.status < 400 else ""
        raise Problem(f"GET {url} answered {got.status}{where} (expected 200; redirects are not followed)")
    return got, json_object(got)


def _prm_problems(doc: dict[str, Any]) -> list[str]:
    """What keeps an MCP client from using a protected-resource document (both SDKs parse it)."""
    problems = []
    resource = doc.get("resource")
    try:
        http_url(resource)
        if urlsplit(resource).fragment:
            problems.append(f"resource {short(resource)} has a fragment")
    except Problem:
        problems.append(f"resource is not an absolute http(s) URL: {short(resource)}")
    servers = doc.get("authorization_servers")
    if not isinstance(servers, list) or not servers:
        problems.append(f"authorization_servers must list at least one issuer: {short(servers)}")
    else:
        for i, server in enumerate(servers):
            try:
                http_url(server)
            except Problem:
                problems.append(f"authorization_servers[{i}] is not an absolute http(s) URL: {short(server)}")
    return problems


def _fallback_urls(server: str) -> list[str]:
    """Where an MCP client looks without a resource_metadata: the path-inserted URL, then the root."""
    parts = urlsplit(server)
    root = f"{parts.scheme}://{parts.netloc}{PROTECTED_RESOURCE}"
    inserted = well_known(parts._replace(query="", fragment="").geturl(), PROTECTED_RESOURCE)
    return list(dict.fromkeys([inserted, root]))


def _protected_resource(d: Doctor, metadata_url: str | None) -> _Found | None:
    """mcp.prm: the document the challenge names (or, without one, the first the fallback finds)."""
    how = "the challenge's"
    if metadata_url is None:
        for candidate in _fallback_urls(d.url):
            try:
                if d.http.get(candidate).status == 200:
                    metadata_url, how = candidate, "found by the well-known fallback:"
                    break
            except Problem:
                continue
        if metadata_url is None:
            tried = ", ".join(_fallback_urls(d.url))
            d.add("mcp.prm", "fail", f"no resource_metadata and no document at {tried}", R_MCP_PRM)
            return None
    try:
        _, doc = _read_prm(d, metadata_url)
    except Problem as exc:
        d.add("mcp.prm", "fail", str(exc), R_MCP_PRM)
        return None
    problems = _prm_problems(doc)
    if problems:
        d.add("mcp.prm", "fail", f"{metadata_url}: {'; '.join(problems)}", R_MCP_PRM)
        return None
    servers = doc["authorization_servers"]
    d.add(
        "mcp.prm",
        "pass",
        f"{how} {metadata_url}: resource {doc['resource']}, authorization_servers {short(servers, 120)}",
        R_MCP_PRM,
    )
    return _Found(metadata_url, doc)


def _protected_resource_well_known(d: Doctor, metadata_url: str | None, prm: _Found | None) -> None:
    """mcp.prm_well_known: the RFC 9728 sec 3.1 document for the server URL itself (where a client
    without a challenge looks first), and that it says what the challenge's document says."""
    urls = _fallback_urls(d.url)
    inserted = urls[0]
    if metadata_url is not None and metadata_url == inserted:
        d.add(
            "mcp.prm_well_known",
            "pass",
            "the challenge names the path-inserted well-known URL of the server URL itself",
            R_MCP_PRM,
        )
        return
    if prm is not None and metadata_url is None:
        d.add("mcp.prm_well_known", "pass", f"{prm.url} (the fallback found mcp.prm there)", R_MCP_PRM)
        return
    found: tuple[str, dict[str, Any]] | None = None
    for candidate in urls:
        try:
            got = d.http.get(candidate)
            if 300 <= got.status < 500:
                continue
            _, doc = _read_prm(d, candidate)
        except Problem as exc:
            d.add("mcp.prm_well_known", "fail", str(exc), R_MCP_PRM)
            return
        found = (candidate, doc)
        break
    if found is None:
        d.add(
            "mcp.prm_well_known",
            "warn",
            f"nothing at {' or '.join(urls)}: an MCP client that gets no resource_metadata finds no document",
            R_MCP_PRM,
        )
        return
    url, doc = found
    problems = _prm_problems(doc)
    if problems:
        d.add("mcp.prm_well_known", "fail", f"{url}: {'; '.join(problems)}", R_MCP_PRM)
        return
    if prm is not None:
        differ = [k for k in ("resource", "authorization_servers") if doc.get(k) != prm.doc.get(k)]
        if differ:
            d.add(
                "mcp.prm_well_known",
                "warn",
                f"{url} differs from the challenge's {prm.url} in {', '.join(differ)}: clients that look there "
                "are sent elsewhere",
                R_MCP_PRM,
            )
            return
    d.add("mcp.prm_well_known", "pass", f"{url} parses and says the same", R_MCP_PRM)


def _resource(d: Doctor, prm: _Found) -> None:
    """mcp.resource: the SDKs' rule (same origin; the resource's path a prefix of the server's, at a
    segment boundary). They send the document's resource as RFC 8707 `resource` when it holds."""
    server, resource = canonical_server_url(d.url), prm.doc["resource"]
    python, typescript = python_sdk_accepts(server, resource), typescript_sdk_accepts(server, resource)
    if python and typescript:
        how = "the server URL itself" if _slash(resource) == _slash(server) else "a parent path of the server URL"
        d.add(
            "mcp.resource",
            "pass",
            f"resource {resource} is {how} on the same origin: MCP clients accept it and ask for resource={resource}",
            R_MCP_RESOURCE,
        )
    elif python or typescript:
        refuses = "TypeScript SDK (checkResourceAllowed)" if python else "Python SDK (check_resource_allowed)"
        d.add(
            "mcp.resource",
            "warn",
            f"resource {resource} for the server {server}: the {refuses} refuses it, the other SDK accepts it",
            R_MCP_RESOURCE,
        )
    else:
        d.add(
            "mcp.resource",
            "fail",
            f"resource {resource} is neither the server URL {server} nor a parent path of it on the same origin: "
            "MCP clients refuse the document (Python check_resource_allowed, TypeScript checkResourceAllowed)",
            R_MCP_RESOURCE,
        )


def discovery_urls(issuer: str) -> list[tuple[str, str]]:
    """(URL, what it is) in the order MCP clients try them (2026-07-28, Authorization Server Metadata
    Discovery): with an issuer path, RFC 8414 path-inserted, then OpenID Connect path-inserted and
    appended; without one, RFC 8414, then OpenID Connect."""
    parts = urlsplit(issuer)
    root = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if path:
        return [
            (f"{root}{AS_METADATA}{path}", "RFC 8414, path inserted"),
            (f"{root}{OIDC_CONFIGURATION}{path}", "OpenID Connect discovery, path inserted"),
            (f"{root}{path}{OIDC_CONFIGURATION}", "OpenID Connect discovery, path appended"),
        ]
    return [(f"{root}{AS_METADATA}", "RFC 8414"), (f"{root}{OIDC_CONFIGURATION}", "OpenID Connect discovery")]


def _as_discovery(d: Doctor, issuer: str) -> _Found | None:
    """mcp.as_discovery: the first of ``discovery_urls`` that answers 200; a 3xx or 4xx sends the client
    to the next, anything else stops it (as the SDKs do)."""
    try:
        issuer = http_url(issuer)
    except Problem as exc:
        d.add("mcp.as_discovery", "fail", f"authorization_servers[0]: {exc}", R_MCP_AS_DISCOVERY)
        return None
    candidates = discovery_urls(issuer)
    skipped: list[str] = []
    for n, (url, kind) in enumerate(candidates, 1):
        try:
            got = d.http.get(url)
        except Problem as exc:
            d.add("mcp.as_discovery", "fail", str(exc), R_MCP_AS_DISCOVERY)
            return None
        if 300 <= got.status < 500:
            skipped.append(f"{url} ({got.status})")
            continue
        if got.status != 200:
            d.add(
                "mcp.as_discovery",
                "fail",
                f"{url} answered {got.status}: MCP clients stop at a server error",
                R_MCP_AS_DISCOVERY,
            )
            return None
        try:
            doc = json_object(got)
        except Problem as exc:
            d.add("mcp.as_discovery", "fail", str(exc), R_MCP_AS_DISCOVERY)
            return None
        before = f"; before it {', '.join(skipped)}" if skipped else ""
        d.add(
            "mcp.as_discovery",
            "pass",
            f"{url} ({kind}; URL {n} of the {len(candidates)} MCP clients try{before})",
            R_MCP_AS_DISCOVERY,
        )
        return _Found(url, doc)
    d.add(
        "mcp.as_discovery",
        "fail",
        f"no authorization-server metadata for {issuer} at any URL MCP clients try: {', '.join(skipped)}",
        R_MCP_AS_DISCOVERY,
    )
    return None


def _as_issuer(d: Doctor, issuer: str, meta: _Found) -> None:
    found = meta.doc.get("issuer")
    if found != issuer:
        d.add(
            "mcp.as_issuer",
            "fail",
            f"{meta.url}: issuer is {short(found)}, but the URL was built from {issuer} (authorization_servers): "
            "MCP clients must not use this metadata",
            R_MCP_AS_ISSUER,
        )
    else:
        d.add("mcp.as_issuer", "pass", f"issuer is exactly {issuer}", R_MCP_AS_ISSUER)


def _as_fields(d: Doctor, meta: dict[str, Any]) -> None:
    """What an MCP client needs in the metadata for the authorization code flow."""
    bad = []
    for key in ("authorization_endpoint", "token_endpoint"):
        if key not in meta:
            bad.append(f"no {key}")
            continue
        try:
            http_url(meta[key])
        except Problem as exc:
            bad.append(f"{key}: {exc}")
    if bad:
        d.add(
            "mcp.as_endpoints",
            "fail",
            f"{'; '.join(bad)}: MCP clients run the authorization code flow through both",
            R_MCP_AS_FIELDS,
        )
    else:
        d.add(
            "mcp.as_endpoints",
            "pass",
            f"authorization_endpoint {meta['authorization_endpoint']}, token_endpoint {meta['token_endpoint']}",
            R_MCP_AS_FIELDS,
        )

    methods = meta.get("code_challenge_methods_supported")
    if methods is None:
        d.add(
            "mcp.pkce",
            "fail",
            "no code_challenge_methods_supported: MCP clients must then refuse to proceed (no PKCE)",
            R_MCP_PKCE,
        )
    elif not isinstance(methods, list) or "S256" not in methods:
        d.add(
            "mcp.pkce",
            "fail",
            f"code_challenge_methods_supported {short(methods)} lacks S256: MCP clients use PKCE with S256",
            R_MCP_PKCE,
        )
    else:
        d.add("mcp.pkce", "pass", "code_challenge_methods_supported lists S256", R_MCP_PKCE)

    types = meta.get("response_types_supported")
    if not isinstance(types, list) or "code" not in types:
        d.add(
            "mcp.response_types",
            "fail",
            f"response_types_supported {short(types)} lacks code: no authorization code flow",
            R_MCP_AS_FIELDS,
        )
    else:
        d.add("mcp.response_types", "pass", "response_types_supported lists code", R_MCP_AS_FIELDS)

    cimd = meta.get("client_id_metadata_document_supported") is True
    registration = meta.get("registration_endpoint")
    try:
        dcr = http_url(registration) if registration is not None else None
        dcr_problem = None
    except Problem as exc:
        dcr, dcr_problem = None, f"registration_endpoint: {exc}"
    if dcr_problem and not cimd:
        d.add("mcp.registration", "fail", dcr_problem, R_MCP_REGISTRATION)
    elif cimd:
        also = f"; dynamic registration too at {dcr}" if dcr else ""
        d.add(
            "mcp.registration",
            "pass",
            f"client_id_metadata_document_supported: an MCP client may name itself by an https client_id URL{also}",
            R_MCP_REGISTRATION,
        )
    elif dcr:
        d.add(
            "mcp.registration",
            "pass",
            f"dynamic client registration at {dcr} (RFC 7591; kept for compatibility, Client ID Metadata Documents "
            "are preferred)",
            R_MCP_REGISTRATION,
        )
    else:
        d.add(
            "mcp.registration",
            "fail",
            "neither client_id_metadata_document_supported: true nor a registration_endpoint: only clients "
            "registered in advance can connect",
            R_MCP_REGISTRATION,
        )

    if meta.get("authorization_response_iss_parameter_supported") is True:
        d.add(
            "mcp.iss",
            "pass",
            "authorization_response_iss_parameter_supported: clients check iss on the way back",
            R_MCP_ISS,
        )
    else:
        d.add(
            "mcp.iss",
            "warn",
            "authorization_response_iss_parameter_supported is not true: authorization servers should send and "
            "advertise iss (mix-up defence)",
            R_MCP_ISS,
        )
