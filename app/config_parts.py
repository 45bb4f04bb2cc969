"""The settings' parts: the error a bad configuration raises, secrets that never show themselves, and the
lists of tables (``[[providers]]``, ``[[webhooks]]``, ``[[admin_keys]]``, ``[[introspection_clients]]``,
``[[clients]]``)
with the checks of each. ``app.config`` assembles them into ``Settings``.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from app.events import EVENT_TYPES, type_name


class ConfigError(Exception):
    """Configuration that must not start a server. The message names the key and never a secret."""


class Secret:
    """A string that never shows itself in repr/str, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class IntrospectionClient(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A resource server allowed to call RFC 7662 introspection with client_secret_basic.

    ``client_secret`` holds a hash made by ``authmd keys hash-secret`` (``scrypt$…`` or ``sha256$…``).
    """

    client_id: str
    client_secret: Secret


class OAuthClient(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A pre-registered OAuth client of the authorization endpoint (TOML ``[[clients]]``): an MCP client
    the operator knows. Public clients (``none``, with PKCE) are the norm; a confidential one
    authenticates with ``client_secret_basic``, its ``client_secret`` a hash from
    ``authmd keys hash-secret``."""

    client_id: str
    client_name: str
    redirect_uris: list[str]
    token_endpoint_auth_method: Literal["none", "client_secret_basic"] = "none"
    client_secret: Secret | None = None


def check_secret_hash(where: str, secret: Secret | None) -> None:
    """A client secret in the configuration is a hash from ``authmd keys hash-secret``, never the secret."""
    if secret is None or not secret.reveal().startswith(("scrypt$", "sha256$")):
        raise ConfigError(
            f"{where}.client_secret: expected a hash from `authmd keys hash-secret` (scrypt$… or sha256$…), "
            "never the secret itself"
        )


def check_unique_ids(table: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for client_id in ids:
        if client_id in seen:
            raise ConfigError(f"{table}: duplicate client_id {client_id!r}")
        seen.add(client_id)


def check_client(client: OAuthClient, dev_mode: bool) -> None:
    """A registered client's entry: an id that cannot pass for a metadata document URL, redirect URIs
    OAuth 2.1 §2.3 allows (absolute, no fragment; https, or http on a loopback address for native
    apps, or a private-use scheme), and a secret exactly when the method needs one."""
    where = f"clients[{client.client_id}]"
    if not client.client_id or urlsplit(client.client_id).scheme in ("http", "https"):
        raise ConfigError(f"{where}.client_id: a plain identifier (a URL client_id is a metadata document)")
    if not client.client_name.strip():
        raise ConfigError(f"{where}.client_name: the name the consent page shows")
    if not client.redirect_uris:
        raise ConfigError(f"{where}.redirect_uris: at least one")
    for uri in client.redirect_uris:
        problem = redirect_uri_problem(uri, dev_mode)
        if problem:
            raise ConfigError(f"{where}.redirect_uris: {uri!r} {problem}")
    secret = client.client_secret
    if client.token_endpoint_auth_method == "client_secret_basic":
        check_secret_hash(where, secret)
    elif secret is not None:
        raise ConfigError(f"{where}.client_secret: a public client (token_endpoint_auth_method none) has none")


def loopback_http(uri: str) -> bool:
    """An http URI on this computer (a loopback address, or ``localhost``): a native app's redirect."""
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname is not None and is_loopback(parts.hostname)


def redirect_uri_problem(uri: str, dev_mode: bool) -> str | None:
    """Why ``uri`` cannot be a redirect URI (None: it can). RFC 6749 §3.1.2: absolute, no fragment;
    RFC 8252 §7: a private-use scheme (``com.example.app:/cb``), or http on a loopback address; else
    https (OAuth 2.1 §1.5), http anywhere only in dev mode."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "is not a URI"
    if "#" in uri or not parts.scheme:
        return "must be an absolute URI without a fragment"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in uri):
        return "must not contain spaces or control characters"
    if parts.scheme == "https":
        return None if parts.hostname else "has no host"
    if parts.scheme == "http":
        return None if loopback_http(uri) or dev_mode else "must be https (http only on a loopback address)"
    if parts.scheme in ("javascript", "data", "file", "vbscript"):
        return "uses a scheme that is never a redirect"
    return None if "." in parts.scheme else "must use https, loopback http, or a reverse-domain private-use scheme"


AdminScope = Literal["admin:read", "admin:write"]
# An admin key's hash: SHA-256 of the whole key, in hex. Admin keys are random (256 bits), so one fast hash
# suffices; a slow KDF here would let anyone burn the server's CPU with made-up keys.
ADMIN_KEY_HASH = re.compile(r"sha256\$[0-9a-f]{64}")


class AdminKey(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A key for the admin HTTP API (TOML ``[[admin_keys]]``), made by ``authmd keys admin-key``.

    ``key_hash`` is ``sha256$<hex>``, never the key; ``scopes``: ``admin:read`` (GETs, validate) and/or
    ``admin:write`` (revocations, claim confirmation); neither implies the other."""

    name: str
    key_hash: str
    scopes: list[AdminScope]


ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class Provider(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """An agent identity provider whose ID-JAGs we accept (the trust list, TOML ``[[providers]]``)."""

    issuer: str
    client_ids: list[str]
    scopes: list[str]
    name: str | None = None
    jwks_uri: str | None = None  # default {issuer}/.well-known/jwks.json
    algorithms: list[str] = msgspec.field(default_factory=lambda: ["RS256", "ES256"])
    # Accept any https client_id URL as a Client ID Metadata Document (fetched with SSRF guards).
    cimd: bool = False
    # ID-JAG auth_time must be at most this old (login_required otherwise; a missing auth_time too).
    max_age: int | None = None
    # Every one of these must be in the ID-JAG's amr (login_required otherwise).
    required_amr: list[str] = msgspec.field(default_factory=list)

    @property
    def display_name(self) -> str:
        return self.name or self.issuer

    @property
    def jwks_url(self) -> str:
        return self.jwks_uri or f"{self.issuer}/.well-known/jwks.json"


class Webhook(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """An endpoint that receives the domain events (TOML ``[[webhooks]]``; spec/webhooks.md), signed by
    the Standard Webhooks scheme. During a rotation both secrets sign every delivery."""

    url: str
    secret: Secret  # whsec_<base64 of 24 to 64 random bytes>: `authmd keys webhook-secret`
    previous_secret: Secret | None = None
    events: list[str] | None = None  # event types, a ".*" suffix for a family; every event when absent
    name: str = ""  # how the CLI, the API and the logs call it; defaults to the URL's host

    @property
    def label(self) -> str:
        return self.name or (urlsplit(self.url).hostname or self.url)

    def wants(self, event_type: str) -> bool:
        return self.events is None or any(_type_matches(event_type, pattern) for pattern in self.events)


def _type_matches(event_type: str, pattern: str) -> bool:
    return event_type.startswith(pattern[:-1]) if pattern.endswith(".*") else event_type == pattern


def check_admin_keys(admin_keys: list[AdminKey]) -> None:
    names: set[str] = set()
    hashes: set[str] = set()
    for key in admin_keys:
        where = f"admin_keys[{key.name}]"
        if not key.name or not all(c.isalnum() or c in "-_." for c in key.name):
            raise ConfigError(f"admin_keys: name {key.name!r} must be letters, digits, '-', '_' or '.'")
        if key.name in names:
            raise ConfigError(f"admin_keys: duplicate name {key.name!r}")
        if not ADMIN_KEY_HASH.fullmatch(key.key_hash):
            raise ConfigError(
                f"{where}.key_hash: expected sha256$<64 hex digits> from `authmd keys admin-key`, never the key itself"
            )
        if key.key_hash in hashes:
            raise ConfigError(f"{where}.key_hash: the same key as another entry (each key has one name)")
        if not key.scopes:
            raise ConfigError(f"{where}.scopes: name at least one of admin:read, admin:write")
        names.add(key.name)
        hashes.add(key.key_hash)


_WEBHOOK_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


def check_webhook(hook: Webhook, dev: bool) -> None:
    where = f"webhooks[{hook.label}]"
    parts = urlsplit(hook.url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not parts.hostname or parts.scheme not in ("http", "https") or parts.fragment or parts.username:
        raise ConfigError(f"{where}.url: expected an http(s) URL with a host, no credentials or fragment")
    if parts.scheme == "http" and not (dev or loopback):
        raise ConfigError(f"{where}.url: must be https (http only in dev mode or to a loopback address)")
    if hook.name and not _WEBHOOK_NAME.fullmatch(hook.name):
        raise ConfigError(f"{where}.name: lowercase letters, digits, '.', '_' and '-' (at most 63)")
    for label, secret in (("secret", hook.secret), ("previous_secret", hook.previous_secret)):
        if secret is not None and not _whsec(secret.reveal()):
            raise ConfigError(
                f"{where}.{label}: expected whsec_ and the base64 of 24 to 64 random bytes "
                "(`authmd keys webhook-secret` makes one)"
            )
    known = [type_name(t) for t in EVENT_TYPES]
    for pattern in hook.events or ():
        if not any(_type_matches(t, pattern) for t in known):
            raise ConfigError(f"{where}.events: {pattern!r} matches no event type (spec/events.md lists them)")
    if hook.events is not None and not hook.events:
        raise ConfigError(f"{where}.events: empty; leave it out to receive every event")


def _whsec(value: str) -> bool:
    if not value.startswith("whsec_"):
        return False
    try:
        raw = base64.b64decode(value[len("whsec_") :], validate=True)
    except ValueError:
        return False
    return 24 <= len(raw) <= 64


def check_provider(p: Provider, supported_scopes: set[str], dev: bool) -> None:
    where = f"providers[{p.issuer}]"
    parts = urlsplit(p.issuer)
    if parts.scheme != "https" and not (dev and parts.scheme == "http"):
        raise ConfigError(f"{where}.issuer: must be https (http only in dev mode)")
    if parts.query or parts.fragment or p.issuer.endswith("/"):
        raise ConfigError(f"{where}.issuer: no query, fragment or trailing slash")
    if urlsplit(p.jwks_url).scheme != "https" and not dev:
        raise ConfigError(f"{where}.jwks_uri: must be https")
    bad_algs = [a for a in p.algorithms if a not in ASYMMETRIC_ALGS]
    if bad_algs or not p.algorithms:
        raise ConfigError(f"{where}.algorithms: only asymmetric algorithms ({', '.join(ASYMMETRIC_ALGS)})")
    if not p.client_ids and not p.cimd:
        raise ConfigError(f"{where}.client_ids: list the agent clients it may vouch for (or set cimd = true)")
    unknown = [s for s in p.scopes if s not in supported_scopes]
    if unknown or not p.scopes:
        raise ConfigError(f"{where}.scopes: must be a non-empty subset of post_claim_scopes (unknown: {unknown})")
    if p.max_age is not None and p.max_age <= 0:
        raise ConfigError(f"{where}.max_age: must be positive")


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.?)*")


def parse_bind(value: str, key: str = "metrics_bind") -> tuple[str, int]:
    """``host:port`` (an IPv6 address in brackets) → (host, port); a ConfigError that says the form."""
    host, sep, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        known = bracketed or ":" not in host
    except ValueError:
        known = not bracketed and _HOSTNAME.fullmatch(host) is not None
    if not (sep and known and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(
            f"{key}: {value!r} is not host:port (a port from 1 to 65535; an IPv6 address in brackets), "
            "e.g. 127.0.0.1:9100 or [::1]:9100"
        )
    return host, int(port)


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_domain(entry: str) -> None:
    """A ``cimd_*_domains`` entry: a DNS name (RFC 1035 §2.3.1 labels, ASCII: an IDN in its xn-- form) or an
    IP literal. No scheme, port, path or wildcard: a name already covers the names under it."""
    try:
        ipaddress.ip_address(entry)
        return
    except ValueError:
        pass
    name = entry.lower().rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{entry!r} is not a domain name or IP address (no scheme, port, path or wildcard)")
