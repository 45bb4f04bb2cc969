"""Typed settings: defaults < TOML file < environment. Unknown keys are an error at start-up.

Naming rule: the environment variable ``AUTHMD_X_Y`` is the TOML top-level key ``x_y``. Lists of
scalars are comma-separated in the environment; lists of tables (``[[introspection_clients]]``) live
only in TOML. ``create_app`` receives a resolved ``Settings`` and never reads the environment itself.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

import msgspec

from app.config_parts import (
    ASYMMETRIC_ALGS,
    AdminKey,
    AdminScope,
    ConfigError,
    IntrospectionClient,
    OAuthClient,
    Provider,
    Secret,
    Webhook,
    check_admin_keys,
    check_client,
    check_domain,
    check_provider,
    check_secret_hash,
    check_unique_ids,
    check_webhook,
    is_loopback,
    parse_bind,
    url_host,
)

# The parts are re-exported: callers import every setting-related name from here.
__all__ = [
    "ASYMMETRIC_ALGS",
    "AdminKey",
    "AdminScope",
    "ConfigError",
    "IntrospectionClient",
    "OAuthClient",
    "Provider",
    "Secret",
    "Settings",
    "Webhook",
    "check_admin_keys",
    "describe",
    "load_settings",
    "parse_bind",
    "redact_url",
    "warnings",
]

ENV_PREFIX = "AUTHMD_"
# Variables that share the prefix but are not server configuration.
NON_SETTING_ENV = frozenset({"AUTHMD_CONFIG", "AUTHMD_HOME", "AUTHMD_SERVE_HOST", "AUTHMD_SERVE_PORT"})


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    # Identity of the service
    issuer: str | None = None
    resource: str | None = None
    service_name: str = "authmd"
    # A logo beside the name on every human page (the pages' CSP allows images from its origin only).
    logo_url: str | None = None
    # Where state lives
    data_dir: str = "./authmd-data"
    store_url: str | None = None
    # Lifetimes
    anonymous_ttl_seconds: int = 3600
    access_token_ttl_seconds: int = 600
    # Signing
    signing_alg: Literal["ES256", "RS256"] = "ES256"
    # Anonymous registration and its layered controls
    anonymous_enabled: bool = True
    pow_mode: Literal["off", "adaptive", "always"] = "adaptive"
    pow_difficulty: int = 20
    pow_max_difficulty: int = 28
    pow_challenge_ttl_seconds: int = 300
    pow_free_per_source: int = 10
    pow_free_global: int = 1000
    rate_window_seconds: int = 600
    register_limit_per_source: int = 200
    register_limit_global: int = 100_000
    challenge_limit_per_source: int = 400
    challenge_limit_global: int = 200_000
    # Registrations per source per window refused for a missing, bad or replayed proof (or over a cap):
    # counted in each worker's memory, never in the shared store; beyond it, 429 before any work.
    unproven_limit_per_source: int = 400
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    # Scopes and quotas
    pre_claim_scopes: list[str] = msgspec.field(default_factory=lambda: ["notes:read", "notes:write"])
    post_claim_scopes: list[str] = msgspec.field(default_factory=lambda: ["notes:read", "notes:write", "notes:delete"])
    quota_notes: int = 25
    quota_note_bytes: int = 4096
    claimed_quota_notes: int = 10_000
    claimed_quota_note_bytes: int = 32_768
    max_body_bytes: int = 65_536
    # Operations
    sweep_interval_seconds: float = 30.0
    key_check_interval_seconds: float = 10.0
    workers: int = 1
    # TLS served by authmd itself (most deployments terminate TLS at a proxy instead)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # RFC 6797 Strict-Transport-Security on every response, only when authmd serves https itself.
    hsts_max_age_seconds: int = 31_536_000
    hsts_include_subdomains: bool = False
    # One line per request costs ~15 µs of Python logging (a tenth of an API GET): off by default, as the
    # proxy in front logs requests and /metrics counts them (README § Logs).
    access_log: bool = False
    # HTTP: what one client may hold in the server (app/server.py)
    http_max_header_bytes: int = 16_384
    http_max_header_line_bytes: int = 8192
    http_header_timeout_seconds: float = 10.0
    http_body_timeout_seconds: float = 30.0
    http_keepalive_timeout_seconds: float = 5.0
    http_max_connections: int = 0  # 0: from the open-file limit
    http_max_connections_per_client: int = 100
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, with the request id
    introspection_clients: list[IntrospectionClient] = msgspec.field(default_factory=list)
    # OAuth clients of the authorization endpoint (MCP clients): the operator's registered ones. Clients
    # with a metadata document URL need no entry (spec/mcp.md).
    clients: list[OAuthClient] = msgspec.field(default_factory=list)
    # RFC 7591 dynamic registration (the MCP spec's fallback for clients without a metadata document):
    # off unless asked for; registrations per source per rate window; a client unused this long is gone.
    dcr_enabled: bool = False
    dcr_limit_per_source: int = 10
    dcr_unused_days: int = 30
    # Slow secret checks (scrypt) per window, reserved before the check runs: per client id and per source.
    introspection_checks_per_client: int = 20
    introspection_checks_per_source: int = 60
    # Webhooks (spec/webhooks.md): endpoints, and how deliveries are timed. Retries wait base x 4^n
    # (jittered, capped at the max) until max_attempts: by default about 27 hours of trying.
    webhooks: list[Webhook] = msgspec.field(default_factory=list)
    webhook_timeout_seconds: float = 5.0
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_max_seconds: float = 36_000.0
    webhook_max_attempts: int = 10
    webhook_poll_seconds: float = 1.0
    webhook_log_days: int = 7
    # The admin HTTP API (/admin/v1): its keys, and how many wrong keys one source may present per window.
    admin_keys: list[AdminKey] = msgspec.field(default_factory=list)
    admin_failures_per_source: int = 20
    # What the operator sees (README § Observing): /metrics in the Prometheus text format (None: on in dev
    # mode only), on its own listener when metrics_bind is set; the console at /console, for these emails.
    metrics: bool | None = None
    metrics_bind: str | None = None  # host:port; /metrics is then served there and not on the main port
    console_admins: list[str] = msgspec.field(default_factory=list)
    # Provider-attested registration (ID-JAG) and security events
    providers: list[Provider] = msgspec.field(default_factory=list)
    identity_assertion_ttl_seconds: int = 3600
    # An ID-JAG's auth_time may be at most this old (a provider's max_age overrides); login_required past it.
    idjag_max_age_seconds: int = 3600
    idjag_max_bytes: int = 8192
    clock_skew_seconds: int = 60
    jwks_cache_min_seconds: int = 60
    jwks_cache_max_seconds: int = 86_400
    jwks_refetch_interval_seconds: int = 30
    cimd_allow_private: bool = False
    cimd_allow_domains: list[str] = msgspec.field(default_factory=list)
    cimd_deny_domains: list[str] = msgspec.field(default_factory=list)
    set_max_age_seconds: int = 600
    # Human claim: the operator's OpenID Connect provider, browser sessions, refresh tokens
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: Secret | None = None
    oidc_name: str = "your identity provider"
    oidc_scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "email", "profile"])
    oidc_require_verified_email: bool = True
    claim_require_login_hint: bool = False
    # Revision 2: the claim methods agents may use (auth_method_disabled otherwise), and how many attempts
    # one claim may have live at once (too_many_attempts past it).
    claim_methods: list[Literal["service_auth", "identity_assertion"]] = msgspec.field(
        default_factory=lambda: ["service_auth", "identity_assertion"]
    )
    claim_max_live_attempts: int = 3
    # The operator's own claim page: verification_uri points there (?claim_attempt_token=…), and that page
    # confirms or denies through the admin API (README § Claims on the operator's own login).
    claim_page_url: str | None = None
    session_ttl_seconds: int = 28_800
    refresh_token_ttl_seconds: int = 2_592_000
    refresh_grace_seconds: int = 60

    # ---- derived values (valid after resolve()) ----
    @property
    def dev_mode(self) -> bool:
        """Exactly: the issuer is http:// on a loopback address (spec/protocol.md § Resource)."""
        assert self.issuer is not None
        parts = urlsplit(self.issuer)
        return parts.scheme == "http" and is_loopback(parts.hostname or "")

    @property
    def metrics_enabled(self) -> bool:
        return self.dev_mode if self.metrics is None else self.metrics

    @property
    def claims_offered(self) -> bool:
        """A human can claim when an OpenID Connect provider or the operator's own claim page is
        configured, or in dev mode (where a clearly labelled development sign-in stands in for it)."""
        return self.oidc_issuer is not None or self.claim_page_url is not None or self.dev_mode

    @property
    def issuer_str(self) -> str:
        assert self.issuer is not None, "Settings.resolve() was not called"
        return self.issuer

    @property
    def resource_str(self) -> str:
        assert self.resource is not None, "Settings.resolve() was not called"
        return self.resource

    @property
    def store_url_str(self) -> str:
        assert self.store_url is not None, "Settings.resolve() was not called"
        return self.store_url

    def resolve(self, host: str = "127.0.0.1", port: int = 8000) -> Settings:
        """Fill the defaults that depend on where the server runs, then validate the whole."""
        issuer = self.issuer or f"http://{url_host(host)}:{port}"
        resolved = msgspec.structs.replace(
            self,
            issuer=issuer,
            resource=self.resource or f"{issuer}/api",
            store_url=self.store_url or "sqlite:///" + str(Path(self.data_dir) / "authmd.sqlite3"),
        )
        resolved.validate()
        return resolved

    def provider(self, issuer: str) -> Provider | None:
        """The trusted provider with exactly this issuer string, if any."""
        return next((p for p in self.providers if p.issuer == issuer), None)

    def _validate_providers(self) -> None:
        seen = set()
        for p in self.providers:
            if p.issuer in seen:
                raise ConfigError(f"providers: duplicate issuer {p.issuer!r}")
            if p.issuer == self.issuer:
                raise ConfigError("providers: this service cannot trust itself as an agent identity provider")
            seen.add(p.issuer)
            check_provider(p, set(self.post_claim_scopes), self.dev_mode)
        positive = (
            "identity_assertion_ttl_seconds",
            "idjag_max_age_seconds",
            "idjag_max_bytes",
            "jwks_cache_min_seconds",
            "jwks_refetch_interval_seconds",
            "set_max_age_seconds",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        if self.jwks_cache_max_seconds < self.jwks_cache_min_seconds or self.clock_skew_seconds < 0:
            raise ConfigError("jwks_cache_max_seconds must be >= jwks_cache_min_seconds; clock_skew_seconds >= 0")

    def _validate_oidc(self) -> None:
        for name in ("session_ttl_seconds", "refresh_token_ttl_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        if self.refresh_grace_seconds < 0:
            raise ConfigError("refresh_grace_seconds: must not be negative")
        given = [n for n in ("oidc_issuer", "oidc_client_id", "oidc_client_secret") if getattr(self, n) is not None]
        if not given:
            return
        if len(given) != 3:
            missing = sorted({"oidc_issuer", "oidc_client_id", "oidc_client_secret"} - set(given))
            raise ConfigError(
                f"oidc: set oidc_issuer, oidc_client_id and oidc_client_secret together (missing: {missing})"
            )
        assert self.oidc_issuer is not None
        parts = urlsplit(self.oidc_issuer)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname or "")):
            raise ConfigError("oidc_issuer: must be https (http only on a loopback address)")
        if parts.query or parts.fragment or self.oidc_issuer.endswith("/"):
            raise ConfigError("oidc_issuer: the exact issuer URL, without query, fragment or trailing slash")
        if "openid" not in self.oidc_scopes:
            raise ConfigError("oidc_scopes: must include openid")

    def _validate_http(self) -> None:
        positive = (
            "http_max_header_bytes",
            "http_max_header_line_bytes",
            "http_header_timeout_seconds",
            "http_body_timeout_seconds",
            "http_keepalive_timeout_seconds",
            "http_max_connections_per_client",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        if self.http_max_header_line_bytes > self.http_max_header_bytes:
            raise ConfigError("http_max_header_line_bytes: must not exceed http_max_header_bytes")
        if self.http_max_connections < 0:
            raise ConfigError("http_max_connections: must not be negative (0 = from the open-file limit)")

    def validate(self) -> None:
        _check_issuer(self.issuer_str)
        _check_resource(self.resource_str)
        if not self.store_url_str.startswith(
            ("sqlite:///", "redis://", "rediss://", "redis+cluster://", "rediss+cluster://")
        ):
            raise ConfigError(
                "store_url: expected sqlite:///PATH, redis://, rediss://, redis+cluster:// or rediss+cluster://"
            )
        positive = (
            "anonymous_ttl_seconds",
            "access_token_ttl_seconds",
            "pow_challenge_ttl_seconds",
            "rate_window_seconds",
            "quota_note_bytes",
            "claimed_quota_note_bytes",
            "max_body_bytes",
            "workers",
            "unproven_limit_per_source",
            "claim_max_live_attempts",
            "introspection_checks_per_client",
            "introspection_checks_per_source",
            "admin_failures_per_source",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        for name in (
            "quota_notes",
            "claimed_quota_notes",
            "pow_free_per_source",
            "pow_free_global",
            "hsts_max_age_seconds",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must not be negative")
        if not 1 <= self.pow_difficulty <= self.pow_max_difficulty <= 40:
            raise ConfigError("pow_difficulty/pow_max_difficulty: need 1 <= difficulty <= max <= 40")
        if self.sweep_interval_seconds <= 0 or self.key_check_interval_seconds <= 0:
            raise ConfigError("sweep_interval_seconds/key_check_interval_seconds: must be positive")
        for scope in (*self.pre_claim_scopes, *self.post_claim_scopes):
            # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if not scope or any(c in scope for c in ' "\\') or not all(0x21 <= ord(c) <= 0x7E for c in scope):
                raise ConfigError(f"scopes: {scope!r} is not a valid RFC 6749 scope token")
        if not set(self.pre_claim_scopes) <= set(self.post_claim_scopes):
            raise ConfigError("pre_claim_scopes: must be a subset of post_claim_scopes (a claim never narrows)")
        for name in ("cimd_allow_domains", "cimd_deny_domains"):
            for entry in getattr(self, name):
                try:
                    check_domain(entry)
                except ValueError as exc:
                    raise ConfigError(f"{name}: {exc}") from None
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ConfigError(f"trusted_proxies: {cidr!r} is not an address or network") from exc
        self._validate_providers()
        self._validate_oidc()
        self._validate_http()
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError("tls_cert_file and tls_key_file: set both or neither")
        if self.logo_url is not None:
            _check_logo(self.logo_url, self.dev_mode)
        if self.claim_page_url is not None:
            _check_claim_page(self.claim_page_url, self.dev_mode)
        self._validate_webhooks()
        if self.metrics_bind is not None:
            parse_bind(self.metrics_bind)
        for client in self.introspection_clients:
            check_secret_hash(f"introspection_clients[{client.client_id}]", client.client_secret)
        check_unique_ids("introspection_clients", [c.client_id for c in self.introspection_clients])
        check_admin_keys(self.admin_keys)
        for oauth_client in self.clients:
            check_client(oauth_client, self.dev_mode)
        check_unique_ids("clients", [c.client_id for c in self.clients])

    def _validate_webhooks(self) -> None:
        names: set[str] = set()
        for hook in self.webhooks:
            check_webhook(hook, self.dev_mode)
            if hook.label in names:
                raise ConfigError(f"webhooks[{hook.label}]: two endpoints with this name; give each a `name`")
            names.add(hook.label)
        if self.webhook_timeout_seconds <= 0 or self.webhook_poll_seconds <= 0:
            raise ConfigError("webhook_timeout_seconds and webhook_poll_seconds: must be positive")
        if not 0 < self.webhook_retry_base_seconds <= self.webhook_retry_max_seconds:
            raise ConfigError("webhook_retry_base_seconds: must be positive and at most webhook_retry_max_seconds")
        if self.webhook_max_attempts < 1 or self.webhook_log_days < 1:
            raise ConfigError("webhook_max_attempts and webhook_log_days: must be at least 1")


def _check_issuer(issuer: str) -> None:
    # RFC 8414 §2: https URL with no query or fragment; one exact string everywhere (no trailing slash).
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"issuer: {issuer!r} must be an absolute http(s) URL")
    if parts.query or parts.fragment or issuer.endswith("/") or "#" in issuer or "?" in issuer:
        raise ConfigError(f"issuer: {issuer!r} must have no query, fragment or trailing slash")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"issuer: {issuer!r} is plain http on a non-loopback host; use https "
            "(http is only allowed on loopback, which is dev mode)"
        )


# Characters a URL may carry that would end an HTML attribute or a CSP source list, or hide in it.
_LOGO_REFUSED = frozenset(" \"'<>\\;,`")


def _web_url(key: str, url: str, dev: bool) -> SplitResult:
    """An absolute https URL (http too in dev mode) naming a host, without credentials or fragment."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # both raise on a malformed authority
    except ValueError:
        raise ConfigError(f"{key}: not a URL") from None
    if parts.scheme != "https" and not (dev and parts.scheme == "http"):
        raise ConfigError(f"{key}: must be an https URL (http only in dev mode)")
    if not host or "@" in parts.netloc or parts.fragment:
        raise ConfigError(f"{key}: must name a host, without credentials or fragment")
    return parts


def _check_logo(url: str, dev: bool) -> None:
    """A web URL without characters that would break out of the <img> attribute or the CSP header it is
    named in."""
    _web_url("logo_url", url, dev)
    if any(c in _LOGO_REFUSED or not 0x21 <= ord(c) <= 0x7E for c in url):
        raise ConfigError("logo_url: only printable ASCII, without quotes, spaces, angle brackets, ';' or ','")


def _check_claim_page(url: str, dev: bool) -> None:
    """Where humans open a claim link: a web URL, to whose query the attempt token is added."""
    if "claim_attempt_token" in _web_url("claim_page_url", url, dev).query:
        raise ConfigError("claim_page_url: authmd adds claim_attempt_token itself; leave it out of the URL")


def _check_resource(resource: str) -> None:
    # RFC 9728 §1.2: the resource identifier is a URL with no fragment.
    parts = urlsplit(resource)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment or parts.query:
        raise ConfigError(f"resource: {resource!r} must be an http(s) URL without query or fragment")
    if resource.endswith("/"):
        raise ConfigError(f"resource: {resource!r} must not end with a slash")


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------

_FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}
_TABLE_LISTS = frozenset({"introspection_clients", "providers", "admin_keys", "webhooks", "clients"})


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Secret:
        if isinstance(obj, str):
            return Secret(obj)
        raise msgspec.ValidationError("expected a string")
    raise NotImplementedError(typ)


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in NON_SETTING_ENV:
            continue
        key = var[len(ENV_PREFIX) :].lower()
        if key not in _FIELDS or key in _TABLE_LISTS:
            hint = " (lists of tables live only in the TOML file)" if key in _TABLE_LISTS else ""
            raise ConfigError(f"{var}: unknown setting{hint}")
        field_type = _FIELDS[key].type
        if typing.get_origin(field_type) is list:  # list[str], list[Literal[...]]: comma-separated
            out[key] = [item.strip() for item in raw.split(",") if item.strip()]
        elif raw == "" and type(None) in typing.get_args(field_type):
            out[key] = None  # an empty variable unsets an optional setting (back to its default)
        else:
            out[key] = raw  # msgspec converts "3600" / "true" (strict=False)
    return out


def load_settings(config_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults < TOML (``config_path`` or ``AUTHMD_CONFIG``) < ``AUTHMD_*`` environment variables."""
    env = os.environ if env is None else env
    path = config_path or env.get("AUTHMD_CONFIG")
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    data.update(_from_env(env))
    try:
        return msgspec.convert(data, Settings, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        # msgspec names the key ("… - at `$.pow_mode`"); it echoes a value only for enum-like fields,
        # and Secret fields are decoded by _dec_hook, whose errors never include the value.
        raise ConfigError(f"invalid configuration: {exc}") from exc


def redact_url(url: str) -> str:
    """A URL fit for a log: no password, no query (which may carry tokens)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{parts.scheme}://{netloc}{parts.path}"


def describe(settings: Settings) -> dict[str, Any]:
    """The effective configuration for logs and `authmd config`: secrets masked."""
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(settings, name)
        if name == "introspection_clients":
            value = [{"client_id": c.client_id, "client_secret": "**********"} for c in value]
        elif name == "clients":
            value = [
                {**msgspec.structs.asdict(c), "client_secret": "**********" if c.client_secret else None} for c in value
            ]
        elif name == "admin_keys":
            value = [{"name": k.name, "key_hash": "**********", "scopes": list(k.scopes)} for k in value]
        elif name == "providers":
            value = [msgspec.structs.asdict(p) for p in value]
        elif name == "webhooks":
            value = [
                {"name": w.label, "url": redact_url(w.url), "events": w.events, "secret": "**********"} for w in value
            ]
        elif name == "store_url" and value:
            value = redact_url(value)
        elif isinstance(value, Secret):
            value = "**********"
        out[name] = value
    return out


def warnings(settings: Settings) -> list[str]:
    """What an operator must hear at start-up: a valid configuration that still leaves people out or in."""
    found = []
    if not settings.claims_offered:
        found.append(
            "claims are off: no OpenID Connect provider is configured, so no human can claim a temporary "
            "account and every one is deleted when it expires; set oidc_issuer, oidc_client_id and "
            "oidc_client_secret (AUTHMD_OIDC_*) to turn them on"
        )
    elif settings.oidc_issuer is None:
        found.append(
            "the development sign-in is active (dev mode without a provider): anyone can sign in as any "
            "email and claim accounts; set oidc_issuer, oidc_client_id and oidc_client_secret (AUTHMD_OIDC_*) "
            "before real people use this server"
        )
    if settings.metrics_enabled and not settings.metrics_bind and not settings.dev_mode:
        found.append(
            "/metrics is served on the main port, to anyone who can reach it (what the service does, how "
            "much, per route); set metrics_bind (AUTHMD_METRICS_BIND) to a private host:port to serve it there"
        )
    if settings.metrics_bind and not settings.metrics_enabled:
        found.append(
            "metrics_bind is set but metrics are off (off by default outside dev mode), so nothing is served "
            "there; set metrics = true (AUTHMD_METRICS) to serve them"
        )
    return found
