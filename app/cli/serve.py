"""`authmd serve`: settle keys and schema once, then run uvicorn (one process, or workers that rebuild the
same settings from the environment). A port that cannot be listened on, or a store that is down, is
said before anything starts (exit 2, exit 3)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from app.cli.common import server_options, settings_of
from app.config import Settings, parse_bind, redact_url, warnings
from app.errors import StoreUnavailable
from app.logs import configure_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    server_options(p)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: settings.workers)")


def _port_problem(host: str, port: int, option: str = "--port") -> str | None:
    """Why (host, port) cannot be listened on, checked before anything is created; uvicorn would say it
    only after start-up, deep in its log."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use; stop what listens there or choose another with {option}"
                )
            return f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another with {option}"
    return None


def _metrics_dir(settings: Settings, workers: int) -> str | None:
    """Several workers: a directory of their own for prometheus_client's per-process files, new at every
    start (a restart counts from zero, never adds an old run's files), named in PROMETHEUS_MULTIPROC_DIR
    before uvicorn spawns the workers: each imports prometheus_client afresh and reads the variable then.
    One worker keeps its metrics in memory, as in-process tests do."""
    if not settings.metrics_enabled or workers == 1:
        return None
    path = tempfile.mkdtemp(prefix="authmd-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def run(args: argparse.Namespace) -> int:
    from app.keys import ensure_keys
    from app.server import Limits, raise_open_file_limit, uvicorn_options
    from app.store import open_store

    settings = settings_of(args)
    problem = _port_problem(args.host, args.port)
    bind = parse_bind(settings.metrics_bind) if settings.metrics_enabled and settings.metrics_bind else None
    if bind and not problem:
        problem = _port_problem(*bind, option="metrics_bind")
    if problem:
        print(f"authmd: {problem}", file=sys.stderr)
        return 2
    files = raise_open_file_limit()  # before the budget is cut from it; workers inherit it
    limits = Limits.from_settings(settings)  # a connection cap the open-file limit cannot hold stops here
    workers = args.workers or settings.workers
    configure_logging(settings.log_level, settings.log_format)
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
    metrics_dir = _metrics_dir(settings, workers)
    stop_metrics: Callable[[], None] | None = None
    try:
        if bind:
            from app import metrics

            stop_metrics = metrics.listen(*bind, metrics_dir)
            log.info("metrics on http://%s/metrics (metrics_bind)", settings.metrics_bind)
        _serve(settings, args, workers, options)
    finally:
        if stop_metrics is not None:
            stop_metrics()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _serve(settings: Settings, args: argparse.Namespace, workers: int, options: dict[str, Any]) -> None:
    import uvicorn

    from app.asgi import create_app

    if workers == 1:
        uvicorn.run(create_app(settings, serving=True), **options)
        return
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
