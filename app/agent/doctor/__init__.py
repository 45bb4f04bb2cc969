"""Check any service's auth.md discovery chain against spec/protocol.md and the RFCs.

URL is an API URL, an MCP server URL or an issuer:

* an API URL answers an unauthenticated GET with 401 and `WWW-Authenticate: Bearer
  resource_metadata="..."` (RFC 9728 sec 5.1); the doctor follows it to the protected-resource
  metadata, takes the issuer from its `authorization_servers`, then checks the issuer;
* an MCP server URL (a path ending in /mcp, or any URL with --mcp) gets an MCP client's first request,
  a POST without a token; from its 401 the doctor follows the chain an MCP client follows (MCP
  authorization, revision 2026-07-28; the mcp.* lines): `resource_metadata` and `scope` in the
  challenge, the RFC 9728 document it names and the one at the path-inserted well-known URL, its
  `resource` under the SDKs' rule (same origin, a path prefix at a segment boundary), then the
  authorization server's metadata at the well-known URLs in the specification's order (RFC 8414
  path-inserted, then OpenID Connect discovery) with a matching `issuer`, the two endpoints, S256,
  `code`, and a way to register (`client_id_metadata_document_supported` or `registration_endpoint`);
* anything else is taken as the issuer: `{issuer}/.well-known/oauth-authorization-server` (appended,
  as the official client does; with an issuer path also the RFC 8414 sec 3.1 path-inserted form).

It checks the RFC 9728 and RFC 8414 metadata, the `agent_auth` block, the JWKS, /auth.md, the 401,
TLS and caching headers, and prints one line per check: PASS, WARN or FAIL, with the reason and the
RFC or spec/protocol.md section. A missing /auth.md is a FAIL (the protocol's prose contract for agents).
Revision 2 of the protocol is checked too: `authorization_grant_profiles_supported`, the trust list
`identity_assertion.issuers_supported`, `claim.max_live_attempts`, and every error body the doctor
sees (`error`, `error_description`, `message`; `retry_after` on a 429). A revision 1 error code name
(e.g. `rate_limited`) is a WARN naming its revision 2 replacement.
Only GETs are sent (and to an MCP server URL that one POST, which a protected server refuses unread),
unless --probe: that registers one anonymous account (POST identity_endpoint
{"type":"anonymous"}), exchanges its assertion at the token endpoint, sends one invalid assertion,
asks for a token for a URI below the protected resource (revision 2: that names the resource), starts
claim attempts for it (two live at once, the flat `login_hint` alias, one past the advertised
`max_live_attempts`: nobody can act on them, the links go nowhere but the service), then revokes it
and checks that its claim answers `claim_revoked`.

Exit status: 0 no failure (warnings allowed), 1 a check failed, 2 usage error, 3 URL unreachable.

examples:
  authmd doctor http://127.0.0.1:8000                 # start from the issuer
  authmd doctor https://api.example.com/api/notes      # start from an API URL (follows the 401)
  authmd doctor http://127.0.0.1:8000/api/mcp         # an MCP server: the chain an MCP client follows
  authmd doctor https://auth.example.com --json        # one JSON object on stdout
  authmd doctor http://127.0.0.1:8000 --probe          # also register a throwaway anonymous account
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from app.agent.doctor.checks.agent_auth import check_agent_auth
from app.agent.doctor.checks.as_metadata import check_as_metadata, issuer_from_as_url, normalized_issuer
from app.agent.doctor.checks.auth_md import check_auth_md
from app.agent.doctor.checks.errors import check_errors
from app.agent.doctor.checks.jwks import check_jwks
from app.agent.doctor.checks.mcp import check_mcp, looks_like_mcp, mcp_request
from app.agent.doctor.checks.prm import check_api, check_issuer_prm, check_prm
from app.agent.doctor.checks.probe import check_probe
from app.agent.doctor.checks.transport import check_caching, check_transport
from app.agent.doctor.http import Fetched, Http, Problem, Unreachable, http_url
from app.agent.doctor.report import Report, render_table
from app.agent.doctor.session import Doctor
from app.protocol import AS_METADATA, PROTECTED_RESOURCE

USER_AGENT = "authmd-doctor"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", metavar="URL", help="an API URL (follows its 401) or an issuer")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--probe",
        action="store_true",
        help="also register one anonymous account, exchange it, start claim attempts for it, then revoke it",
    )
    p.add_argument(
        "--mcp",
        action="store_true",
        help="check URL as an MCP server whatever its path (a path ending in /mcp always is)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    p.add_argument("--ca-file", help="PEM bundle of CAs to trust for https (default: the system's)")


def _answer(d: Doctor, what: str, send: Callable[[], Fetched]) -> Fetched | None:
    """The URL's answer to ``send``; None (and a note) when it is not one to read. Unreachable passes."""
    try:
        return send()
    except Unreachable:
        raise
    except Problem as exc:  # an answer, but not one to read (too large, bad encoding): not an API 401
        d.report.notes.append(f"{what}: {exc}")
        return None


def examine(d: Doctor, *, mcp: bool = False) -> Report:
    """Raises Unreachable when the URL gives no HTTP answer at all. ``mcp``: check the URL as an MCP
    server whatever its path (without it, a path ending in /mcp is one when it answers 401)."""
    path = urlsplit(d.url).path
    start: Fetched | None = None
    sent = False
    if AS_METADATA not in path and not path.startswith(PROTECTED_RESOURCE) and (mcp or looks_like_mcp(d.url)):
        # An MCP client's first request is a POST (a GET would open an event stream on an open server).
        start, sent = _answer(d, "POST URL", lambda: mcp_request(d)), True
        if start is not None and (start.status == 401 or mcp):
            mcp_response = start
            d.report.mode = "mcp"
            if mcp_response.status == 401:
                d.guarded("resource", lambda: check_api(d, mcp_response, method="POST"))
            d.guarded("mcp", lambda: check_mcp(d, mcp_response))
        elif start is not None:
            d.report.notes.append(
                f"POST URL (an MCP request without a token) answered {start.status}, not 401: "
                "not checked as an MCP server"
            )
    if not sent:
        start = _answer(d, "GET URL", lambda: d.http.get(d.url))
    if d.report.mode == "mcp":
        pass
    elif AS_METADATA in path:
        issuer = issuer_from_as_url(d.url)
        d.report.notes.append(f"URL is an authorization-server metadata URL; issuer taken as {issuer}")
        d.report.issuer = issuer
    elif path.startswith(PROTECTED_RESOURCE):
        d.report.mode = "resource-metadata"
        d.guarded("prm", lambda: check_prm(d, d.url, started_from=None))
    elif start is not None and start.status == 401:
        api_response = start
        d.report.mode = "api"
        d.guarded("resource", lambda: check_api(d, api_response))
    else:
        d.report.issuer = normalized_issuer(d.url)
        answered = f"answered {start.status}" if start else "gave no usable answer"
        d.report.notes.append(
            f"{'POST' if sent else 'GET'} URL {answered}, not 401: URL taken as the issuer "
            "(start from an API URL to check its 401 challenge)"
        )

    d.guarded("transport", lambda: check_transport(d))
    if d.report.issuer is None:
        d.report.notes.append("no issuer found: the authorization-server checks did not run")
        return d.report
    if d.report.mode == "issuer":
        d.guarded("prm", lambda: check_issuer_prm(d))
    d.guarded("as", lambda: check_as_metadata(d))
    if d.as_meta is not None:
        d.guarded("agent_auth", lambda: check_agent_auth(d))
        d.guarded("jwks", lambda: check_jwks(d))
    d.guarded("auth_md", lambda: check_auth_md(d))
    d.guarded("cache", lambda: check_caching(d))
    if d.probe:
        d.guarded("probe", lambda: check_probe(d))
    d.guarded("errors", lambda: check_errors(d))
    return d.report


def _verify(ca_file: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def run(args: argparse.Namespace) -> int:
    try:
        url = http_url(args.url)
    except Problem as exc:
        print(f"authmd doctor: {exc} (give an http:// or https:// URL)", file=sys.stderr)
        return 2
    if not args.timeout > 0:
        print("authmd doctor: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        verify = _verify(args.ca_file)
    except (OSError, ssl.SSLError) as exc:
        print(f"authmd doctor: --ca-file: {exc}", file=sys.stderr)
        return 2
    client = httpx.Client(
        timeout=args.timeout,
        follow_redirects=False,
        trust_env=False,
        verify=verify,
        headers={"User-Agent": USER_AGENT},
    )
    with client:
        doctor = Doctor(Http(client), url, probe=args.probe)
        try:
            report = examine(doctor, mcp=args.mcp)
        except Unreachable as exc:
            print(f"authmd doctor: cannot reach {url}: {exc}", file=sys.stderr)
            if args.json:
                unreachable = {**Report(url).as_dict(), "mode": None, "error": str(exc)}
                print(json.dumps(unreachable, indent=2))
            return 3
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(render_table(report))
    return 1 if report.summary()["fail"] else 0
