"""``[[webhooks]]``: what an endpoint entry must be, and what the configuration shows of it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from app.config import ConfigError, describe, load_settings

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def settings_of(tmp_path: Path, entries: str, top: str = "", issuer: str = "https://auth.example") -> object:
    path = tmp_path / "authmd.toml"
    path.write_text(f'issuer = "{issuer}"\n{top}\n{entries}', encoding="utf-8")
    return load_settings(path, env={}).resolve()


def hook(url: str = "https://crm.example/hooks", **extra: str) -> str:
    lines = ["[[webhooks]]", f'url = "{url}"', f'secret = "{extra.pop("secret", SECRET)}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def test_an_endpoint_with_defaults(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, hook())
    [endpoint] = settings.webhooks  # type: ignore[attr-defined]
    assert endpoint.label == "crm.example" and endpoint.events is None
    assert endpoint.wants("agent_registration.created") and endpoint.wants("webhook_endpoint.disabled")
    shown = describe(settings)["webhooks"]  # type: ignore[arg-type]
    assert shown == [
        {"name": "crm.example", "url": "https://crm.example/hooks", "events": None, "secret": "**********"}
    ]


def test_event_lists_name_types_and_families(tmp_path: Path) -> None:
    entry = hook(events='["agent_registration.claim.*", "account.expired"]', name='"crm"')
    [endpoint] = settings_of(tmp_path, entry).webhooks  # type: ignore[attr-defined]
    assert endpoint.wants("agent_registration.claim.completed") and endpoint.wants("account.expired")
    assert not endpoint.wants("agent_registration.created") and not endpoint.wants(
        "agent_registration.claim_attempt.created"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (hook("http://crm.example/hooks"), r"url: must be https"),
        (hook("https://user:pw@crm.example/hooks"), r"url: expected an http\(s\) URL"),
        (hook("ftp://crm.example/hooks"), r"url: expected an http\(s\) URL"),
        (hook(secret="not-a-secret"), r"secret: expected whsec_"),
        (hook(secret="whsec_" + base64.b64encode(b"short").decode()), r"secret: expected whsec_"),
        (hook(previous_secret='"whsec_***"'), r"previous_secret: expected whsec_"),
        (hook(events='["agent_registration.nope"]'), r"matches no event type"),
        (hook(events="[]"), r"events: empty"),
        (hook(name='"Bad Name"'), r"name: lowercase"),
        (hook() + hook(url="https://crm.example/other"), r"two endpoints with this name"),
        (hook(unknown='"x"'), r"invalid configuration"),
    ],
)
def test_bad_entries_stop_the_start(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        settings_of(tmp_path, entry)
    assert SECRET not in str(caught.value)


def test_http_is_for_dev_mode_or_loopback(tmp_path: Path) -> None:
    settings_of(tmp_path, hook("http://127.0.0.1:9000/hooks"))
    settings_of(tmp_path, hook("http://crm.internal/hooks"), issuer="http://127.0.0.1:8000")  # dev mode


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ("webhook_timeout_seconds = 0", "must be positive"),
        ("webhook_retry_base_seconds = 100.0\nwebhook_retry_max_seconds = 10.0", "at most webhook_retry_max"),
        ("webhook_max_attempts = 0", "at least 1"),
    ],
)
def test_delivery_timing_is_checked(tmp_path: Path, top: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_of(tmp_path, hook(), top=top)


def test_webhooks_live_only_in_the_file() -> None:
    with pytest.raises(ConfigError, match="lists of tables live only in the TOML file"):
        load_settings(env={"AUTHMD_WEBHOOKS": "https://crm.example"})
