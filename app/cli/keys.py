"""`authmd keys`: the signing keys in the data directory (generate, rotate, list), the hash of an
introspection client secret and new admin API keys for the config file, and a new webhook signing
secret. Times print in RFC 3339, like every operator verb."""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import secrets
import sys

from app.cli.common import fail, server_options, settings_of
from app.clock import rfc3339


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "generate     create the signing key when none exists (init is an alias)\n"
        "rotate       make a new current key (the old one stays published while its tokens live)\n"
        "list         the keys in the data directory\n"
        "hash-secret  hash an introspection client secret for the config file\n"
        "admin-key    make a key for the admin API: prints the key once and its [[admin_keys]] entry\n"
        "webhook-secret  a new webhook signing secret (whsec_…) for a [[webhooks]] entry"
    )
    p.epilog = (
        "examples:\n  authmd keys generate\n  authmd keys rotate --alg RS256\n  authmd keys list\n"
        "  authmd keys hash-secret --stdin < secret.txt\n"
        "  authmd keys admin-key --name ops --scope admin:read --scope admin:write\n"
        "  authmd keys webhook-secret"
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    server_options(p)
    p.add_argument(
        "keys_cmd",
        choices=["generate", "rotate", "list", "hash-secret", "admin-key", "webhook-secret", "init"],
        metavar="{generate,rotate,list,hash-secret,admin-key,webhook-secret}",
    )
    p.add_argument("--alg", choices=["ES256", "RS256"], help="algorithm of the new key (rotate)")
    p.add_argument(
        "--stdin", action="store_true", help="read the secret from stdin (hash-secret; the default when piped)"
    )
    p.add_argument("--name", help="the admin key's name, logged with every call it makes (admin-key)")
    p.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        choices=["admin:read", "admin:write"],
        help="a scope of the admin key (admin-key; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON value on stdout (list always does)")


def _read_secret(from_stdin: bool) -> str | None:
    """The secret to hash: typed at a prompt on a terminal, else the first line of stdin (piped)."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n") or None
    return getpass.getpass("client secret: ")


def _key_view(entry: dict[str, object]) -> dict[str, object]:
    """A manifest entry with its times in RFC 3339, as every operator verb prints times."""
    times = {k: rfc3339(v) for k in ("created_at", "retired_at") if isinstance(v := entry.get(k), int | float)}
    return {**entry, **times}


def run(args: argparse.Namespace) -> int:
    from app import keys

    def done(value: dict[str, object], line: str) -> int:
        print(json.dumps(value, indent=2) if args.json else line)
        return 0

    if args.keys_cmd == "webhook-secret":
        # Standard Webhooks: whsec_ and the base64 of 24 to 64 random bytes; 32 here (HMAC-SHA256's size).
        made = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        return done({"secret": made}, made)
    if args.keys_cmd == "hash-secret":
        secret = _read_secret(args.stdin)
        if secret is None:
            return fail(args, 2, "no secret on stdin: pipe it in (authmd keys hash-secret < FILE) or run on a terminal")
        if len(secret) < 16:
            return fail(args, 2, "refusing a secret shorter than 16 characters")
        hashed = keys.hash_secret(secret)
        return done({"hash": hashed}, hashed)
    if args.keys_cmd == "admin-key":
        return _admin_key(args)
    settings = settings_of(args)
    if args.keys_cmd in ("generate", "init"):
        created = keys.ensure_keys(settings.data_dir, settings.signing_alg)
        current = keys.list_keys(settings.data_dir)["current"]
        return done({"created": created, "current": current}, "created" if created else "keys already present")
    if args.keys_cmd == "rotate":
        keys.ensure_keys(settings.data_dir, settings.signing_alg)
        kid = keys.rotate(settings.data_dir, args.alg or settings.signing_alg)
        interval = settings.key_check_interval_seconds
        return done(
            {"current": kid, "picked_up_within_seconds": interval},
            f"new current key {kid}; running servers pick it up within {interval:g} s",
        )
    try:
        listed = keys.list_keys(settings.data_dir)
    except FileNotFoundError:
        return fail(args, 1, f"no keys in {os.path.abspath(settings.data_dir)}; run `authmd keys generate`")
    # Always JSON (it was before --json existed); times in RFC 3339 like every other operator verb.
    print(json.dumps({**listed, "keys": [_key_view(k) for k in listed["keys"]]}, indent=2))
    return 0


def _admin_key(args: argparse.Namespace) -> int:
    """A new random admin key: the key is printed here once and stored nowhere; the config holds its hash."""
    from app.config import AdminKey, AdminScope, ConfigError, check_admin_keys
    from app.tokens import admin_key_hash, new_admin_key

    if not args.name or not args.scopes:
        return fail(args, 2, "admin-key needs --name NAME and at least one --scope (admin:read, admin:write)")
    key = new_admin_key()
    scopes: list[AdminScope] = sorted(set(args.scopes))
    entry = AdminKey(name=args.name, key_hash=admin_key_hash(key), scopes=scopes)
    try:
        check_admin_keys([entry])
    except ConfigError as exc:
        return fail(args, 2, str(exc))
    toml = (
        f'[[admin_keys]]\nname = "{entry.name}"\nkey_hash = "{entry.key_hash}"\n'
        f"scopes = {json.dumps(scopes)}\n"  # a JSON array of strings is a TOML array too
    )
    if args.json:
        print(json.dumps({"key": key, "name": entry.name, "key_hash": entry.key_hash, "scopes": scopes, "toml": toml}))
        return 0
    print(f"admin key (shown once, stored nowhere; send it as Authorization: Bearer …):\n  {key}\n")
    print("add this to the config file:\n")
    print(toml, end="")
    return 0
