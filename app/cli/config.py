"""`authmd config [check]`: the effective configuration, secrets masked; `check` validates it as `authmd
serve` would (exit 0, or 2 with the reason, never showing a secret)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from app.cli.common import fail, server_options, settings_of
from app.config import ConfigError, describe, warnings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Without a verb: print the effective configuration (defaults < TOML file < AUTHMD_*\n"
        "variables), secrets masked.\n"
        "check: validate it as `authmd serve` would; exit 0 and print it (secrets masked) when valid,\n"
        "exit 2 with the reason when not (never showing a secret)."
    )
    p.epilog = "examples:\n  authmd config --config authmd.toml\n  authmd config check --config authmd.toml"
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("config_cmd", nargs="?", choices=["check"], metavar="check", help="validate, exit 0 or 2")
    server_options(p)
    p.add_argument("--json", action="store_true", help="an error too as one JSON value on stdout")


def run(args: argparse.Namespace) -> int:
    if args.config_cmd != "check":
        print(json.dumps(describe(settings_of(args)), indent=2))
        return 0
    import tomllib
    from urllib.parse import urlsplit

    source = args.config or os.environ.get("AUTHMD_CONFIG")
    try:
        settings = settings_of(args)
    except ConfigError as exc:
        # ConfigError never names a secret; still, mask any secret-looking value of the file or the
        # environment that a parser's message might quote.
        values: list[tuple[str, object]] = [(k, v) for k, v in os.environ.items() if k.startswith("AUTHMD_")]
        if source:
            try:
                with open(source, "rb") as fh:
                    values.append(("", tomllib.load(fh)))
            except (OSError, tomllib.TOMLDecodeError):
                pass
        secrets: set[str] = set()
        while values:
            key, value = values.pop()
            if isinstance(value, dict):
                values += list(value.items())
            elif isinstance(value, list):
                values += [(key, item) for item in value]
            elif isinstance(value, str) and len(value) >= 4:
                if "secret" in key.lower() or "password" in key.lower():
                    secrets.add(value)
                try:
                    password = urlsplit(value).password
                except ValueError:
                    password = None
                if password:
                    secrets.add(password)
        message = str(exc)
        for secret in sorted(secrets, key=len, reverse=True):
            message = message.replace(secret, "**********")
        return fail(args, 2, f"configuration error: {message}")
    print(json.dumps(describe(settings), indent=2))
    for warning in warnings(settings):
        print(f"authmd: WARNING: {warning}", file=sys.stderr)
    where = f"{source} and AUTHMD_* variables" if source else "defaults and AUTHMD_* variables (no config file)"
    print(f"authmd: the configuration is valid ({where})", file=sys.stderr)
    return 0
