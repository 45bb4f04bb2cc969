"""as.*: the authorization-server metadata (RFC 8414), found from the issuer the run settled on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from app.agent.doctor.http import Problem, http_url, is_loopback, origin, short, well_known
from app.agent.doctor.references import (
    R_AS_FETCH,
    R_AS_FIELDS,
    R_AS_INSERTED,
    R_AS_ISSUER,
    R_GRANT,
    R_INTROSPECT,
    R_REVOKE,
)
from app.agent.doctor.session import Doctor, Document
from app.protocol import AS_METADATA, JWT_BEARER


def normalized_issuer(url: str) -> str:
    """The user's URL as an issuer: only a bare trailing `/` (an empty path) is dropped."""
    parts = urlsplit(url)
    return url[:-1] if parts.path == "/" and not parts.query and url.endswith("/") else url


def issuer_from_as_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.path.endswith(AS_METADATA):  # appended: {issuer}/.well-known/...
        return f"{parts.scheme}://{parts.netloc}{parts.path.removesuffix(AS_METADATA)}"
    return f"{parts.scheme}://{parts.netloc}{parts.path.removeprefix(AS_METADATA)}"  # path-inserted


def check_as_metadata(d: Doctor) -> None:
    issuer = d.report.issuer
    assert issuer is not None
    url = issuer.rstrip("/") + AS_METADATA
    try:
        got, meta = d.http.get_json(url)
    except Problem as exc:
        d.add("as.fetch", "fail", str(exc), R_AS_FETCH)
        return
    d.as_meta = Document(got, meta)
    d.cached.append(("as_metadata", got))
    d.add("as.fetch", "pass", f"{url}: 200, a JSON object", R_AS_FETCH)

    if urlsplit(issuer).path.strip("/"):
        check_path_inserted(d, issuer, meta)

    found = meta.get("issuer")
    parts = urlsplit(issuer)
    if found != issuer:
        d.add("as.issuer", "fail", f"issuer is {short(found)}, fetched for {issuer} (must be identical)", R_AS_ISSUER)
    elif parts.query or parts.fragment:
        d.add("as.issuer", "fail", "the issuer must have no query or fragment", R_AS_FIELDS)
    else:
        d.add("as.issuer", "pass", f"issuer is exactly {issuer}", R_AS_ISSUER)

    missing = [k for k in ("issuer", "token_endpoint", "response_types_supported") if k not in meta]
    wrong = [] if isinstance(meta.get("response_types_supported", []), list) else ["response_types_supported"]
    if missing or wrong:
        why = "; ".join(
            x for x in (f"missing {missing}" if missing else "", f"not lists {wrong}" if wrong else "") if x
        )
        d.add("as.required", "fail", why, R_AS_FIELDS)
    else:
        d.add("as.required", "pass", "issuer, token_endpoint, response_types_supported present", R_AS_FIELDS)

    if "jwks_uri" not in meta:
        d.add("as.jwks_uri", "warn", "no jwks_uri: resource servers cannot verify tokens offline", R_AS_FIELDS)
    else:
        d.add("as.jwks_uri", "pass", f"jwks_uri {short(meta['jwks_uri'])}", R_AS_FIELDS)

    grants = meta.get("grant_types_supported")
    if not isinstance(grants, list):
        d.add(
            "as.grant_types",
            "fail",
            "grant_types_supported absent (defaults to authorization_code, implicit): no jwt-bearer",
            R_GRANT,
        )
    elif JWT_BEARER not in grants:
        d.add("as.grant_types", "fail", f"grant_types_supported {short(grants)} lacks {JWT_BEARER}", R_GRANT)
    else:
        d.add("as.grant_types", "pass", "grant_types_supported lists jwt-bearer", R_GRANT)

    for key, ref in (("revocation_endpoint", R_REVOKE), ("introspection_endpoint", R_INTROSPECT)):
        if key in meta:
            d.add(f"as.{key}", "pass", f"{key} {short(meta[key])}", ref)
        else:
            d.add(f"as.{key}", "warn", f"no {key}", ref)

    check_endpoints(d, meta, issuer)


def check_path_inserted(d: Doctor, issuer: str, appended: dict[str, Any]) -> None:
    url = well_known(issuer, AS_METADATA)
    try:
        got = d.http.get(url)
        if got.status == 404:
            d.add("as.path_inserted", "warn", f"{url}: 404 (RFC 8414 clients look there)", R_AS_INSERTED)
            return
        _, meta = d.http.get_json(url)
    except Problem as exc:
        d.add("as.path_inserted", "fail", str(exc), R_AS_INSERTED)
        return
    if meta.get("issuer") != issuer:
        d.add("as.path_inserted", "fail", f"{url}: issuer is {short(meta.get('issuer'))}", R_AS_INSERTED)
    elif meta != appended:
        d.add("as.path_inserted", "warn", f"{url} differs from the appended form", R_AS_INSERTED)
    else:
        d.add("as.path_inserted", "pass", f"{url} serves the same metadata", R_AS_INSERTED)


def check_endpoints(d: Doctor, meta: dict[str, Any], issuer: str) -> None:
    """Every endpoint URL is https (http only on loopback in dev mode) and on the issuer's origin."""
    bad: list[str] = []
    plain: list[str] = []
    foreign: list[str] = []
    for name, value in _endpoint_urls(meta):
        try:
            url = http_url(value)
        except Problem as exc:
            bad.append(f"{name}: {exc}")
            continue
        parts = urlsplit(url)
        if parts.scheme == "http" and not (d.dev and is_loopback(parts.hostname)):
            plain.append(name)
        if not name.endswith(("skill", "service_documentation")) and origin(url) != origin(issuer):
            foreign.append(name)
    if bad or plain:
        why = "; ".join([*bad, *([f"plain http: {', '.join(plain)}"] if plain else [])])
        d.add("as.endpoints_https", "fail", why, R_AS_FIELDS)
    else:
        mode = " (http on loopback: dev mode)" if d.dev else ""
        d.add("as.endpoints_https", "pass", f"every endpoint URL is well formed and https{mode}", R_AS_FIELDS)
    if foreign:
        d.add("as.endpoints_origin", "warn", f"not on {origin(issuer)}: {', '.join(foreign)}", R_AS_FIELDS)
    else:
        d.add("as.endpoints_origin", "pass", f"every endpoint is on {origin(issuer)}", R_AS_FIELDS)


def _endpoint_urls(meta: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, value) of the URL-valued members: top-level `*_endpoint`/`*_uri`/service_documentation and
    every `*_endpoint`/`*_uri`/skill inside agent_auth (at any depth)."""
    for key, value in meta.items():
        if key.endswith(("_endpoint", "_uri")) or key == "service_documentation":
            yield key, value

    def walk(prefix: str, node: Any, depth: int) -> Iterator[tuple[str, Any]]:
        if not isinstance(node, dict) or depth > 4:
            return
        for key, value in node.items():
            name = f"{prefix}.{key}"
            if isinstance(key, str) and (key.endswith(("_endpoint", "_uri")) or key == "skill"):
                yield name, value
            else:
                yield from walk(name, value, depth + 1)

    yield from walk("agent_auth", meta.get("agent_auth"), 0)
