"""The `authmd` command: builds the parser and dispatches; each verb is a module of this package.

A verb module has `add_arguments(parser)` (its options, and its --help text when it has one) and
`run(args) -> exit status`. Verbs of the agent side and tools import their code only when used."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from app.cli.common import fail
from app.config import ConfigError

# In the order `authmd --help` lists them, with the line it shows.
VERBS = {
    "serve": "run the server",
    "config": "print the effective configuration (secrets masked), or check a config file",
    "keys": "signing keys and client-secret hashes",
    "bench": "benchmark a local server against a bare Litestar app",
    "agent": "an agent's client for any auth.md service: register, claim, token, call, status, revoke",
    "doctor": "check a service's discovery chain against the protocol and the RFCs",
    "admin": "operator verbs on the configured store: list, show, revoke, revoke-all",
}


class Parser(argparse.ArgumentParser):
    """A usage error of a --json run is also one JSON value on stdout (subparsers are of this class too)."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._json = "--json" in (sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        if getattr(self, "_json", False):
            print(json.dumps({"ok": False, "exit": 2, "message": message}))
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="authmd", description="Agent registration and discovery server")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, summary in VERBS.items():
        module = importlib.import_module(f"app.cli.{name}")
        verb = sub.add_parser(name, help=summary)
        module.add_arguments(verb)
        verb.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return fail(args, 2, f"configuration error: {exc}")
