"""Settings: defaults < TOML < environment, strict keys, derived values and the checks resolve() makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Secret, Settings, describe, load_settings

HASH = "sha256$" + "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"


def write(tmp_path: Path, text: str, name: str = "authmd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def test_defaults_without_file_or_env() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.quota_notes == 25
    assert settings.signing_alg == "ES256"
    assert settings.pow_mode == "adaptive"
    assert settings.introspection_clients == []


def test_environment_is_read_from_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHMD_QUOTA_NOTES", "3")
    assert load_settings().quota_notes == 3


def test_toml_file_sets_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'service_name = "Notes"\npow_mode = "always"\nquota_notes = 7\ntrusted_proxies = ["10.0.0.0/8"]\n'
        "access_log = false\nsweep_interval_seconds = 2.5\n",
    )
    settings = load_settings(path, env={})
    assert settings.service_name == "Notes"
    assert settings.pow_mode == "always"
    assert settings.quota_notes == 7
    assert settings.trusted_proxies == ["10.0.0.0/8"]
    assert settings.access_log is False
    assert settings.sweep_interval_seconds == 2.5
    assert settings.quota_note_bytes == Settings().quota_note_bytes  # untouched keys keep their default


def test_env_overrides_toml(tmp_path: Path) -> None:
    path = write(tmp_path, 'pow_mode = "always"\nquota_notes = 7\n')
    settings = load_settings(path, env={"AUTHMD_POW_MODE": "off"})
    assert settings.pow_mode == "off"
    assert settings.quota_notes == 7


def test_authmd_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "quota_notes = 9\n")
    assert load_settings(env={"AUTHMD_CONFIG": str(path)}).quota_notes == 9


def test_explicit_path_wins_over_authmd_config(tmp_path: Path) -> None:
    explicit = write(tmp_path, "quota_notes = 9\n", "a.toml")
    other = write(tmp_path, "quota_notes = 11\n", "b.toml")
    assert load_settings(explicit, env={"AUTHMD_CONFIG": str(other)}).quota_notes == 9


@pytest.mark.parametrize(
    ("var", "raw", "key", "value"),
    [
        ("AUTHMD_QUOTA_NOTES", "7", "quota_notes", 7),
        ("AUTHMD_ANONYMOUS_TTL_SECONDS", "120", "anonymous_ttl_seconds", 120),
        ("AUTHMD_SERVICE_NAME", "Notes", "service_name", "Notes"),
        ("AUTHMD_ISSUER", "https://auth.example.com", "issuer", "https://auth.example.com"),
        ("AUTHMD_SIGNING_ALG", "RS256", "signing_alg", "RS256"),
        ("AUTHMD_SWEEP_INTERVAL_SECONDS", "0.5", "sweep_interval_seconds", 0.5),
        ("AUTHMD_ACCESS_LOG", "false", "access_log", False),
        ("AUTHMD_ANONYMOUS_ENABLED", "true", "anonymous_enabled", True),
    ],
)
def test_env_var_names_map_to_keys(var: str, raw: str, key: str, value: object) -> None:
    assert getattr(load_settings(env={var: raw}), key) == value


def test_comma_lists_from_env() -> None:
    settings = load_settings(
        env={
            "AUTHMD_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1 ,,::1",
            "AUTHMD_PRE_CLAIM_SCOPES": "notes:read",
            "AUTHMD_POST_CLAIM_SCOPES": "notes:read,notes:write",
        }
    )
    assert settings.trusted_proxies == ["10.0.0.0/8", "192.168.1.1", "::1"]
    assert settings.pre_claim_scopes == ["notes:read"]
    assert settings.post_claim_scopes == ["notes:read", "notes:write"]


def test_empty_env_value_clears_an_optional_setting(tmp_path: Path) -> None:
    path = write(tmp_path, 'issuer = "https://auth.example.com"\n')
    assert load_settings(path, env={"AUTHMD_ISSUER": ""}).issuer is None


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "quota_notez = 7\n")
    with pytest.raises(ConfigError, match="quota_notez"):
        load_settings(path, env={})


def test_unknown_env_var_is_an_error() -> None:
    with pytest.raises(ConfigError, match="AUTHMD_QUOTA_NOTEZ"):
        load_settings(env={"AUTHMD_QUOTA_NOTEZ": "7"})


@pytest.mark.parametrize("var", ["AUTHMD_HOME", "AUTHMD_CONFIG", "AUTHMD_SERVE_HOST", "AUTHMD_SERVE_PORT"])
def test_non_setting_env_vars_are_allowed(tmp_path: Path, var: str) -> None:
    value = str(write(tmp_path, "")) if var == "AUTHMD_CONFIG" else "x"
    assert load_settings(env={var: value}) == Settings()


def test_unrelated_env_vars_are_ignored() -> None:
    assert load_settings(env={"HOME": "/root", "AUTHMDX": "1", "PATH": "/bin"}) == Settings()


def test_wrong_type_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="quota_notes"):
        load_settings(env={"AUTHMD_QUOTA_NOTES": "many"})
    with pytest.raises(ConfigError, match="pow_mode"):
        load_settings(write(tmp_path, 'pow_mode = "sometimes"\n'), env={})


def test_missing_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, "quota_notes = = 7\n"), env={})


def test_introspection_clients_from_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[[introspection_clients]]\nclient_id = "rs1"\nclient_secret = "{HASH}"\n\n'
        '[[introspection_clients]]\nclient_id = "rs2"\nclient_secret = "scrypt$16384$8$1$c2FsdA$ZGlnZXN0"\n',
    )
    settings = load_settings(path, env={}).resolve()
    assert [c.client_id for c in settings.introspection_clients] == ["rs1", "rs2"]
    assert isinstance(settings.introspection_clients[0].client_secret, Secret)
    assert settings.introspection_clients[0].client_secret.reveal() == HASH


def test_introspection_clients_env_var_is_an_error() -> None:
    with pytest.raises(ConfigError, match="AUTHMD_INTROSPECTION_CLIENTS"):
        load_settings(env={"AUTHMD_INTROSPECTION_CLIENTS": f"rs1:{HASH}"})


def test_unknown_key_in_an_introspection_client_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[introspection_clients]]\nclient_id = "rs1"\nclient_secret = "{HASH}"\nscope = "x"\n')
    with pytest.raises(ConfigError):
        load_settings(path, env={})


# ---------------------------------------------------------------------------------------------------
# resolve(): derived defaults
# ---------------------------------------------------------------------------------------------------


def test_resolve_fills_issuer_resource_and_store_url() -> None:
    settings = Settings(data_dir="/var/lib/authmd").resolve("127.0.0.1", 8123)
    assert settings.issuer == "http://127.0.0.1:8123"
    assert settings.resource == "http://127.0.0.1:8123/api"
    assert settings.store_url == "sqlite:////var/lib/authmd/authmd.sqlite3"
    assert settings.dev_mode is True


def test_resolve_relative_data_dir_gives_relative_sqlite_url() -> None:
    settings = Settings(data_dir="./authmd-data").resolve()
    assert settings.store_url == "sqlite:///authmd-data/authmd.sqlite3"


def test_resolve_brackets_an_ipv6_host() -> None:
    settings = Settings().resolve("::1", 9000)
    assert settings.issuer == "http://[::1]:9000"
    assert settings.resource == "http://[::1]:9000/api"
    assert settings.dev_mode is True


def test_resolve_keeps_explicit_values() -> None:
    settings = Settings(
        issuer="https://auth.example.com",
        resource="https://api.example.com",
        store_url="sqlite:////srv/a.db",
    ).resolve("0.0.0.0", 80)  # noqa: S104 - a bind address, not a URL
    assert settings.issuer == "https://auth.example.com"
    assert settings.resource == "https://api.example.com"
    assert settings.store_url == "sqlite:////srv/a.db"
    assert settings.dev_mode is False


def test_resource_defaults_to_issuer_api() -> None:
    assert Settings(issuer="https://auth.example.com").resolve().resource == "https://auth.example.com/api"


def test_settings_are_not_resolved_until_resolve() -> None:
    with pytest.raises(AssertionError):
        _ = Settings().issuer_str


# ---------------------------------------------------------------------------------------------------
# resolve(): validation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "issuer", ["http://example.com", "http://auth.example.com:8000", "http://10.0.0.1:8000", "http://[2001:db8::1]"]
)
def test_plain_http_issuer_off_loopback_is_refused(issuer: str) -> None:
    with pytest.raises(ConfigError, match="issuer"):
        Settings(issuer=issuer).resolve()


def test_default_issuer_on_a_public_bind_address_is_refused() -> None:
    with pytest.raises(ConfigError, match="issuer"):
        Settings().resolve("0.0.0.0", 8000)  # noqa: S104 - a bind address


@pytest.mark.parametrize("issuer", ["https://auth.example.com", "https://10.0.0.1:8443", "https://auth.example.com/t1"])
def test_https_issuer_off_loopback_is_accepted(issuer: str) -> None:
    settings = Settings(issuer=issuer).resolve()
    assert settings.issuer == issuer
    assert settings.dev_mode is False


@pytest.mark.parametrize(
    "issuer", ["http://localhost:8000", "http://127.0.0.1", "http://127.0.0.2:9000", "http://[::1]:8000"]
)
def test_loopback_http_issuer_is_dev_mode(issuer: str) -> None:
    assert Settings(issuer=issuer).resolve().dev_mode is True


def test_https_on_loopback_is_not_dev_mode() -> None:
    assert Settings(issuer="https://localhost:8443").resolve().dev_mode is False


@pytest.mark.parametrize(
    "issuer",
    [
        "https://auth.example.com/",
        "https://auth.example.com/t1/",
        "https://auth.example.com?x=1",
        "https://auth.example.com?",
        "https://auth.example.com#frag",
        "https://auth.example.com#",
        "ftp://auth.example.com",
        "auth.example.com",
        "https://",
    ],
)
def test_issuer_with_slash_query_fragment_or_bad_scheme_is_refused(issuer: str) -> None:
    # RFC 8414 §2: no query or fragment component (an empty one is still a component).
    with pytest.raises(ConfigError, match="issuer"):
        Settings(issuer=issuer, resource="https://api.example.com").resolve()


@pytest.mark.parametrize(
    "resource", ["https://api.example.com/", "https://api.example.com#f", "https://api.example.com?x=1", "api"]
)
def test_bad_resource_is_refused(resource: str) -> None:
    with pytest.raises(ConfigError, match="resource"):
        Settings(issuer="https://auth.example.com", resource=resource).resolve()


def test_unknown_store_url_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="store_url"):
        Settings(store_url="postgres://db/authmd").resolve()


@pytest.mark.parametrize("scope", ["notes read", 'notes"read', "notes\\read", "", "notés", "notes\tread"])
def test_bad_scopes_are_refused(scope: str) -> None:
    with pytest.raises(ConfigError, match="scope"):
        Settings(pre_claim_scopes=[scope], post_claim_scopes=[scope]).resolve()
    with pytest.raises(ConfigError, match="scope"):
        Settings(post_claim_scopes=["notes:read", "notes:write", scope]).resolve()


def test_unusual_but_valid_scope_tokens_are_accepted() -> None:
    scopes = ["notes:read", "https://api.example.com/notes.write", "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~"]
    assert Settings(pre_claim_scopes=scopes, post_claim_scopes=scopes).resolve().pre_claim_scopes == scopes


def test_pre_claim_scopes_must_be_a_subset_of_post_claim_scopes() -> None:
    with pytest.raises(ConfigError, match="pre_claim_scopes"):
        Settings(pre_claim_scopes=["notes:read", "admin"]).resolve()
    ok = Settings(pre_claim_scopes=["notes:read"], post_claim_scopes=["notes:read"]).resolve()
    assert ok.pre_claim_scopes == ["notes:read"]


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("anonymous_ttl_seconds", 0, "anonymous_ttl_seconds"),
        ("access_token_ttl_seconds", -1, "access_token_ttl_seconds"),
        ("rate_window_seconds", 0, "rate_window_seconds"),
        ("workers", 0, "workers"),
        ("quota_notes", -1, "quota_notes"),
        ("pow_difficulty", 0, "pow_difficulty"),
        ("pow_max_difficulty", 41, "pow_max_difficulty"),
        ("sweep_interval_seconds", 0.0, "sweep_interval_seconds"),
        ("http_max_header_bytes", 0, "http_max_header_bytes"),
        ("http_max_header_line_bytes", 20_000, "http_max_header_line_bytes"),  # over the total
        ("http_header_timeout_seconds", 0.0, "http_header_timeout_seconds"),
        ("http_body_timeout_seconds", -1.0, "http_body_timeout_seconds"),
        ("http_keepalive_timeout_seconds", 0.0, "http_keepalive_timeout_seconds"),
        ("http_max_connections", -1, "http_max_connections"),
        ("http_max_connections_per_client", 0, "http_max_connections_per_client"),
    ],
)
def test_out_of_range_numbers_are_refused(key: str, value: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings(**{key: value}).resolve()  # type: ignore[arg-type]


def test_bad_trusted_proxy_is_refused() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        Settings(trusted_proxies=["10.0.0.0/8", "not-an-ip"]).resolve()


def test_duplicate_introspection_client_is_refused(tmp_path: Path) -> None:
    client = f'[[introspection_clients]]\nclient_id = "rs1"\nclient_secret = "{HASH}"\n'
    settings = load_settings(write(tmp_path, client + "\n" + client), env={})
    with pytest.raises(ConfigError, match="duplicate"):
        settings.resolve()


# ---------------------------------------------------------------------------------------------------
# Secrets never show
# ---------------------------------------------------------------------------------------------------


def test_plain_introspection_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    plain = "hunter2-plain-secret"
    path = write(tmp_path, f'[[introspection_clients]]\nclient_id = "rs1"\nclient_secret = "{plain}"\n')
    settings = load_settings(path, env={})
    with pytest.raises(ConfigError, match=r"introspection_clients\[rs1\]\.client_secret") as info:
        settings.resolve()
    assert plain not in str(info.value)
    assert plain not in repr(info.value)


def test_secrets_never_show_in_repr_str_or_describe(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[introspection_clients]]\nclient_id = "rs1"\nclient_secret = "{HASH}"\n')
    settings = load_settings(path, env={}).resolve()
    digest = HASH.split("$", 1)[1]
    shown = [repr(settings), str(settings), repr(describe(settings)), str(describe(settings))]
    shown += [repr(settings.introspection_clients), str(settings.introspection_clients[0].client_secret)]
    for text in shown:
        assert digest not in text
        assert "rs1" in text or text.startswith("Secret(")
    described = describe(settings)
    assert described["introspection_clients"] == [{"client_id": "rs1", "client_secret": "**********"}]
    assert described["quota_notes"] == 25


def test_secret_does_not_leak_through_config_errors(tmp_path: Path) -> None:
    secret = "s3cr3t-value-do-not-print"
    cases = [
        # a malformed file that holds the secret
        write(tmp_path, f'[[introspection_clients]]\nclient_id = "rs1"\nclient_secret = "{secret}" oops\n', "a.toml"),
        # a wrongly typed client next to the secret
        write(tmp_path, f'[[introspection_clients]]\nclient_id = 5\nclient_secret = "{secret}"\n', "b.toml"),
        # an unknown key next to the secret
        write(tmp_path, f'[[introspection_clients]]\nclient_id = "a"\nclient_secret = "{secret}"\nx = 1\n', "c.toml"),
    ]
    for path in cases:
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={})
        assert secret not in str(info.value)
    with pytest.raises(ConfigError) as from_env:
        load_settings(env={"AUTHMD_INTROSPECTION_CLIENTS": secret})
    assert secret not in str(from_env.value)
    with pytest.raises(ConfigError) as unknown:
        load_settings(env={"AUTHMD_CLIENT_SECRET": secret})
    assert secret not in str(unknown.value)


def test_secret_type_masks_itself() -> None:
    secret = Secret("abc123")
    assert "abc123" not in repr(secret)
    assert "abc123" not in str(secret)
    assert "abc123" not in f"{secret}"
    assert secret.reveal() == "abc123"
    assert secret == Secret("abc123")
    assert secret != Secret("abc124")


OIDC = {
    "AUTHMD_OIDC_ISSUER": "https://login.example.com",
    "AUTHMD_OIDC_CLIENT_ID": "authmd",
    "AUTHMD_OIDC_CLIENT_SECRET": "oidc-secret-value",
}


def test_oidc_settings_come_from_the_environment_and_mask_the_secret() -> None:
    settings = load_settings(env=OIDC).resolve("127.0.0.1", 8000)
    assert settings.oidc_issuer == "https://login.example.com" and settings.claims_offered
    assert isinstance(settings.oidc_client_secret, Secret)
    assert "oidc-secret-value" not in repr(settings) and "oidc-secret-value" not in str(describe(settings))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTHMD_OIDC_ISSUER": "https://login.example.com"}, "together"),
        ({**OIDC, "AUTHMD_OIDC_ISSUER": "http://login.example.com"}, "must be https"),
        ({**OIDC, "AUTHMD_OIDC_ISSUER": "https://login.example.com/"}, "trailing slash"),
        ({**OIDC, "AUTHMD_OIDC_SCOPES": "email,profile"}, "openid"),
        ({"AUTHMD_TLS_CERT_FILE": "cert.pem"}, "set both or neither"),
        ({"AUTHMD_REFRESH_GRACE_SECONDS": "-1"}, "refresh_grace_seconds"),
        ({"AUTHMD_SESSION_TTL_SECONDS": "0"}, "session_ttl_seconds"),
    ],
)
def test_bad_sign_in_settings_refuse_to_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(env=env).resolve("127.0.0.1", 8000)
    assert "oidc-secret-value" not in str(err.value)


def test_claims_are_offered_in_dev_mode_or_with_a_provider() -> None:
    assert load_settings(env={}).resolve("127.0.0.1", 8000).claims_offered  # dev mode: the dev sign-in
    production = load_settings(env={"AUTHMD_ISSUER": "https://auth.example.com"}).resolve()
    assert not production.claims_offered
    assert load_settings(env={**OIDC, "AUTHMD_ISSUER": "https://auth.example.com"}).resolve().claims_offered


def test_claim_methods_from_env_and_their_values() -> None:
    settings = load_settings(env={"AUTHMD_CLAIM_METHODS": "identity_assertion, service_auth"})
    assert settings.claim_methods == ["identity_assertion", "service_auth"]
    assert load_settings(env={}).claim_methods == ["service_auth", "identity_assertion"]
    with pytest.raises(ConfigError, match="claim_methods"):
        load_settings(env={"AUTHMD_CLAIM_METHODS": "service_auth,magic_link"})


# ---------------------------------------------------------------------------------------------------
# The operator's own claim page
# ---------------------------------------------------------------------------------------------------


def test_claim_page_url_from_the_environment_offers_claims_without_a_provider() -> None:
    env = {"AUTHMD_ISSUER": "https://auth.example.com", "AUTHMD_CLAIM_PAGE_URL": "https://app.example.com/claim"}
    settings = load_settings(env=env).resolve()
    assert settings.claim_page_url == "https://app.example.com/claim" and settings.claims_offered
    assert not load_settings(env={"AUTHMD_ISSUER": "https://auth.example.com"}).resolve().claims_offered


@pytest.mark.parametrize(
    "url",
    [
        "http://app.example.com/claim",  # plain http outside dev mode
        "https://user:pw@app.example.com/claim",
        "https://app.example.com/claim#top",
        "https://app.example.com/claim?claim_attempt_token=x",
        "/claim",
        "https://[::1/claim",
    ],
)
def test_a_bad_claim_page_url_is_refused(url: str) -> None:
    env = {"AUTHMD_ISSUER": "https://auth.example.com", "AUTHMD_CLAIM_PAGE_URL": url}
    with pytest.raises(ConfigError, match="claim_page_url"):
        load_settings(env=env).resolve()


def test_claim_page_url_may_be_plain_http_in_dev_mode() -> None:
    settings = load_settings(env={"AUTHMD_CLAIM_PAGE_URL": "http://127.0.0.1:3000/claim"}).resolve()
    assert settings.dev_mode and settings.claim_page_url == "http://127.0.0.1:3000/claim"


@pytest.mark.parametrize(
    "entry",
    ["https://example.com", "example.com:443", "*.example.com", "example.com/x", "a..b", "-a.com", "exa_mple.com"],
)
def test_cimd_domain_lists_take_names_and_addresses_only(entry: str) -> None:
    for name in ("AUTHMD_CIMD_ALLOW_DOMAINS", "AUTHMD_CIMD_DENY_DOMAINS"):
        with pytest.raises(ConfigError, match=name.removeprefix("AUTHMD_").lower()):
            load_settings(env={name: f"good.example,{entry}"}).resolve()


def test_cimd_domain_lists_load_from_the_environment() -> None:
    settings = load_settings(
        env={"AUTHMD_CIMD_ALLOW_DOMAINS": "example.com,xn--bcher-kva.example,203.0.113.7"}
    ).resolve()
    assert settings.cimd_allow_domains == ["example.com", "xn--bcher-kva.example", "203.0.113.7"]
    assert settings.cimd_deny_domains == []


CLIENT = '[[clients]]\nclient_id = "desk"\nclient_name = "Desk"\nredirect_uris = ["http://127.0.0.1:5173/cb"]\n'


def test_clients_from_toml_with_their_secret_masked(tmp_path: Path) -> None:
    confidential = (
        '[[clients]]\nclient_id = "srv"\nclient_name = "Server"\nredirect_uris = ["https://srv.example/cb"]\n'
        f'token_endpoint_auth_method = "client_secret_basic"\nclient_secret = "{HASH}"\n'
    )
    settings = load_settings(write(tmp_path, CLIENT + confidential), env={}).resolve()
    assert [(c.client_id, c.token_endpoint_auth_method) for c in settings.clients] == [
        ("desk", "none"),
        ("srv", "client_secret_basic"),
    ]
    shown = describe(settings)["clients"]
    assert shown[1]["client_secret"] == "**********" and shown[0]["client_secret"] is None
    assert HASH not in repr(shown)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (CLIENT, "duplicate client_id"),
        (
            '[[clients]]\nclient_id = "https://x.example/c.json"\nclient_name = "X"\nredirect_uris = ["https://x.example/cb"]\n',
            "plain identifier",
        ),
        ('[[clients]]\nclient_id = "x"\nclient_name = " "\nredirect_uris = ["https://x.example/cb"]\n', "client_name"),
        ('[[clients]]\nclient_id = "x"\nclient_name = "X"\nredirect_uris = []\n', "at least one"),
        ('[[clients]]\nclient_id = "x"\nclient_name = "X"\nredirect_uris = ["https://x.example/cb#f"]\n', "fragment"),
        (
            '[[clients]]\nclient_id = "x"\nclient_name = "X"\nredirect_uris = ["javascript:alert(1)"]\n',
            "never a redirect",
        ),
        (
            '[[clients]]\nclient_id = "x"\nclient_name = "X"\nredirect_uris = ["https://x.example/cb"]\n'
            'token_endpoint_auth_method = "client_secret_basic"\nclient_secret = "plain-secret"\n',
            "never the secret itself",
        ),
        (
            '[[clients]]\nclient_id = "x"\nclient_name = "X"\nredirect_uris = ["https://x.example/cb"]\n'
            f'client_secret = "{HASH}"\n',
            "public client",
        ),
    ],
)
def test_bad_clients_are_config_errors_naming_the_entry(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(write(tmp_path, CLIENT + extra), env={}).resolve()
    assert "plain-secret" not in str(refused.value)


def test_http_redirects_off_loopback_need_dev_mode(tmp_path: Path) -> None:
    text = '[[clients]]\nclient_id = "x"\nclient_name = "X"\nredirect_uris = ["http://x.example/cb"]\n'
    with pytest.raises(ConfigError, match="loopback"):
        load_settings(write(tmp_path, 'issuer = "https://auth.example"\n' + text), env={}).resolve()
    assert load_settings(write(tmp_path, text), env={}).resolve().clients[0].client_id == "x"
