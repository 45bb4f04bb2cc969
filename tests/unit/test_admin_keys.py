"""Admin API keys: the `[[admin_keys]]` settings and `authmd keys admin-key`, whose TOML entry loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, describe, load_settings
from app.tokens import admin_key_hash

ROOT = Path(__file__).resolve().parents[2]
HASH_A = "sha256$" + "a" * 64
HASH_B = "sha256$" + "b" * 64


def entry(name: str, key_hash: str, scopes: str = '["admin:read"]') -> str:
    return f'[[admin_keys]]\nname = "{name}"\nkey_hash = "{key_hash}"\nscopes = {scopes}\n'


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "authmd.toml"
    path.write_text(text)
    return load_settings(path, env={}).resolve()


def test_admin_keys_load_from_toml_and_are_masked_in_the_description(tmp_path: Path) -> None:
    settings = load(tmp_path, entry("ops", HASH_A, '["admin:read", "admin:write"]') + entry("ro", HASH_B))
    got = [(k.name, k.scopes) for k in settings.admin_keys]
    assert got == [("ops", ["admin:read", "admin:write"]), ("ro", ["admin:read"])]
    shown = describe(settings)["admin_keys"]
    assert shown[0] == {"name": "ops", "key_hash": "**********", "scopes": ["admin:read", "admin:write"]}
    assert HASH_A not in json.dumps(describe(settings))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (entry("ops", HASH_A) + entry("ops", HASH_B), "duplicate name 'ops'"),
        (entry("ops", HASH_A) + entry("two", HASH_A), r"admin_keys\[two\]\.key_hash: the same key"),
        (entry("ops", "amk_plainkeyisnotahash"), r"admin_keys\[ops\]\.key_hash: expected sha256\$"),
        (entry("ops", "sha256$" + "A" * 64), r"key_hash: expected sha256"),
        (entry("ops", HASH_A, "[]"), "at least one of admin:read, admin:write"),
        (entry("ops", HASH_A, '["admin:all"]'), r"admin_keys"),
        (entry("has space", HASH_A), "must be letters, digits"),
        (entry("ops", HASH_A) + 'secret = "x"\n', "secret"),
    ],
)
def test_bad_admin_keys_are_refused_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)


def test_admin_keys_in_the_environment_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"AUTHMD_ADMIN_KEYS: unknown setting \(lists of tables"):
        load_settings(env={"AUTHMD_ADMIN_KEYS": "x"})


def test_admin_failures_per_source_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="admin_failures_per_source: must be positive"):
        load_settings(env={"AUTHMD_ADMIN_FAILURES_PER_SOURCE": "0"}).resolve()


def keys_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "keys", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_admin_key_verb_prints_a_key_and_an_entry_that_loads(tmp_path: Path) -> None:
    run = keys_cli("admin-key", "--name", "ops", "--scope", "admin:write", "--scope", "admin:read", "--json")
    assert run.returncode == 0, run.stderr
    made = json.loads(run.stdout)
    assert made["key"].startswith("amk_") and len(made["key"]) == 4 + 43  # 32 random bytes, base64url
    assert made["key_hash"] == admin_key_hash(made["key"]) and made["scopes"] == ["admin:read", "admin:write"]
    settings = load(tmp_path, made["toml"])
    assert settings.admin_keys[0].key_hash == admin_key_hash(made["key"])
    text = keys_cli("admin-key", "--name", "ops", "--scope", "admin:read")
    assert text.returncode == 0 and "[[admin_keys]]" in text.stdout and "amk_" in text.stdout
    assert keys_cli("admin-key", "--name", "ops", "--scope", "admin:read", "--json").stdout != run.stdout  # random


@pytest.mark.parametrize(
    "args", [("--name", "ops"), ("--scope", "admin:read"), ("--name", "a b", "--scope", "admin:read")]
)
def test_the_admin_key_verb_refuses_without_a_name_and_a_scope(args: tuple[str, ...]) -> None:
    run = keys_cli("admin-key", *args, "--json")
    assert run.returncode == 2 and json.loads(run.stdout)["ok"] is False
