"""What the `authmd` verbs share: the settings a run resolves (as `authmd serve` would) and the one way
an operator verb fails (stderr, and with --json also one JSON value on stdout)."""

from __future__ import annotations

import argparse
import json
import sys

from app.config import Settings, load_settings


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None)).resolve(
        getattr(args, "host", "127.0.0.1"), getattr(args, "port", 8000)
    )


def server_options(p: argparse.ArgumentParser) -> None:
    """The options of every verb that resolves the server's settings (serve, config, keys)."""
    p.add_argument("--config", help="TOML file (default: $AUTHMD_CONFIG)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)


def fail(args: argparse.Namespace, status: int, message: str) -> int:
    """An operator verb's error: on stderr, and with --json also as the one JSON value on stdout."""
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "exit": status, "message": message}))
    print(f"authmd: {message}", file=sys.stderr)
    return status
