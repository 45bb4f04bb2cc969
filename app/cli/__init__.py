"""The `authmd` command: serve, config, keys, bench, agent, doctor, admin."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import importlib
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from app.clock import rfc3339
from app.config import ConfigError, Settings, describe, load_settings, redact_url, warnings
from app.errors import StoreUnavailable
from app.logs import configure_logging


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None)).resolve(
        getattr(args, "host", "127.0.0.1"), getattr(args, "port", 8000)
    )


def _port_problem(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, checked before anything is created; uvicorn would say it
    only after start-up, deep in its log."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use; stop what listens there or choose another with --port"
            return f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --host or --port"
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.asgi import create_app
    from app.keys import ensure_keys
    from app.server import Limits, raise_open_file_limit, uvicorn_options
    from app.store import open_store

    settings = _settings(args)
    problem = _port_problem(args.host, args.port)
    if problem:
        print(f"authmd: {problem}", file=sys.stderr)
        return 2
    files = raise_open_file_limit()  # before the budget is cut from it; workers inherit it
    limits = Limits.from_settings(settings)  # a connection cap the open-file limit cannot hold stops here
    workers = args.workers or settings.workers
    configure_logging(settings.log_level)
    log = logging.getLogger("authmd")
    for warning in warnings(settings):
        log.warning(warning)
    if files[1] != files[0]:
        log.info("raised the open-file limit from %d to %d (the hard limit)", *files)
    # Keys and schema are settled once, here, before any worker starts.
    if ensure_keys(settings.data_dir, settings.signing_alg):
        log.info("created a new %s signing key in %s", settings.signing_alg, os.path.abspath(settings.data_dir))

    async def migrate() -> None:
        store = open_store(settings.store_url_str)
        await store.open()
        await store.close()

    try:
        asyncio.run(migrate())
    except StoreUnavailable as exc:
        print(f"authmd: the store is unavailable at start-up ({exc}); start it first", file=sys.stderr)
        return 3
    mode = "dev mode (http on loopback)" if settings.dev_mode else "production mode"
    log.info(
        "authmd %s on %s:%s, issuer %s, %s, %d worker(s)",
        mode,
        args.host,
        args.port,
        settings.issuer,
        redact_url(settings.store_url_str),
        workers,
    )
    options = uvicorn_options(settings, args.host, args.port)
    log.info("http limits: %s", limits.describe())
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:
        # Workers rebuild the same settings from the environment (see app.asgi.app_from_env).
        os.environ.update(
            {
                "AUTHMD_ISSUER": settings.issuer_str,
                "AUTHMD_RESOURCE": settings.resource_str,
                "AUTHMD_STORE_URL": settings.store_url_str,
                "AUTHMD_SERVE_HOST": args.host,
                "AUTHMD_SERVE_PORT": str(args.port),
            }
        )
        if args.config:
            os.environ["AUTHMD_CONFIG"] = os.path.abspath(args.config)
        uvicorn.run("app.asgi:app_from_env", factory=True, workers=workers, **options)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.config_cmd != "check":
        print(json.dumps(describe(_settings(args)), indent=2))
        return 0
    import tomllib
    from urllib.parse import urlsplit

    source = args.config or os.environ.get("AUTHMD_CONFIG")
    try:
        settings = _settings(args)
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


def fail(args: argparse.Namespace, status: int, message: str) -> int:
    """An operator verb's error: on stderr, and with --json also as the one JSON value on stdout."""
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "exit": status, "message": message}))
    print(f"authmd: {message}", file=sys.stderr)
    return status


def _read_secret(from_stdin: bool) -> str | None:
    """The secret to hash: typed at a prompt on a terminal, else the first line of stdin (piped)."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n") or None
    return getpass.getpass("client secret: ")


def _key_view(entry: dict[str, object]) -> dict[str, object]:
    """A manifest entry with its times in RFC 3339, as every operator verb prints times."""
    times = {k: rfc3339(v) for k in ("created_at", "retired_at") if isinstance(v := entry.get(k), int | float)}
    return {**entry, **times}


def cmd_keys(args: argparse.Namespace) -> int:
    from app import keys

    def done(value: dict[str, object], line: str) -> int:
        print(json.dumps(value, indent=2) if args.json else line)
        return 0

    if args.keys_cmd == "hash-secret":
        secret = _read_secret(args.stdin)
        if secret is None:
            return fail(args, 2, "no secret on stdin: pipe it in (authmd keys hash-secret < FILE) or run on a terminal")
        if len(secret) < 16:
            return fail(args, 2, "refusing a secret shorter than 16 characters")
        hashed = keys.hash_secret(secret)
        return done({"hash": hashed}, hashed)
    settings = _settings(args)
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


def cmd_bench(args: argparse.Namespace) -> int:
    from app.cli.bench import run

    return run(args)


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

    def server_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="TOML file (default: $AUTHMD_CONFIG)")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)

    serve = sub.add_parser("serve", help="run the server")
    server_opts(serve)
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default: settings.workers)")
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser(
        "config",
        help="print the effective configuration (secrets masked), or check a config file",
        description="Without a verb: print the effective configuration (defaults < TOML file < AUTHMD_*\n"
        "variables), secrets masked.\n"
        "check: validate it as `authmd serve` would; exit 0 and print it (secrets masked) when valid,\n"
        "exit 2 with the reason when not (never showing a secret).",
        epilog="examples:\n  authmd config --config authmd.toml\n  authmd config check --config authmd.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config.add_argument("config_cmd", nargs="?", choices=["check"], metavar="check", help="validate, exit 0 or 2")
    server_opts(config)
    config.add_argument("--json", action="store_true", help="an error too as one JSON value on stdout")
    config.set_defaults(func=cmd_config)

    keys = sub.add_parser(
        "keys",
        help="signing keys and client-secret hashes",
        description="generate     create the signing key when none exists (init is an alias)\n"
        "rotate       make a new current key (the old one stays published while its tokens live)\n"
        "list         the keys in the data directory\n"
        "hash-secret  hash an introspection client secret for the config file",
        epilog="examples:\n  authmd keys generate\n  authmd keys rotate --alg RS256\n  authmd keys list\n"
        "  authmd keys hash-secret --stdin < secret.txt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server_opts(keys)
    keys.add_argument(
        "keys_cmd",
        choices=["generate", "rotate", "list", "hash-secret", "init"],
        metavar="{generate,rotate,list,hash-secret}",
    )
    keys.add_argument("--alg", choices=["ES256", "RS256"], help="algorithm of the new key (rotate)")
    keys.add_argument(
        "--stdin", action="store_true", help="read the secret from stdin (hash-secret; the default when piped)"
    )
    keys.add_argument("--json", action="store_true", help="print one JSON value on stdout (list always does)")
    keys.set_defaults(func=cmd_keys)

    bench = sub.add_parser("bench", help="benchmark a local server against a bare Litestar app")
    from app.cli.bench import add_arguments

    add_arguments(bench)
    bench.set_defaults(func=cmd_bench)

    # Verbs that live in their own modules: each has add_arguments(parser) and run(args) -> exit code.
    for name, summary in (
        ("agent", "an agent's client for any auth.md service: register, claim, token, call, status, revoke"),
        ("doctor", "check a service's discovery chain against the protocol and the RFCs"),
        ("admin", "operator verbs on the configured store: list, show, revoke, revoke-all"),
    ):
        module = importlib.import_module(f"app.cli.{name}")
        verb = sub.add_parser(
            name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(verb)
        verb.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return fail(args, 2, f"configuration error: {exc}")
