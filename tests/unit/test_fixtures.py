"""The example configuration in fixtures/ loads, resolves and authenticates its introspection client."""

from __future__ import annotations

from pathlib import Path

from app.config import describe, load_settings
from app.keys import verify_secret

EXAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "example.toml"


def test_example_config_loads_and_masks_its_secret():
    settings = load_settings(EXAMPLE, env={}).resolve("127.0.0.1", 8000)
    assert settings.issuer == "https://auth.example.com"
    assert settings.resource == "https://auth.example.com/api"
    assert not settings.dev_mode
    client = settings.introspection_clients[0]
    assert verify_secret("correct horse battery staple", client.client_secret.reveal())
    assert not verify_secret("wrong", client.client_secret.reveal())
    assert "c4bbcb" not in repr(settings) and "c4bbcb" not in str(describe(settings))
    assert settings.claims_offered and settings.oidc_name == "Example SSO"
    assert settings.oidc_client_secret is not None and "example-oidc" not in str(describe(settings))


def test_store_urls_are_redacted_for_logs():
    from app.config import redact_url

    assert redact_url("redis://user:hunter2@cache:6379/0") == "redis://***@cache:6379/0"
    assert redact_url("sqlite:///data/a.db?synchronous=full") == "sqlite:///data/a.db"
