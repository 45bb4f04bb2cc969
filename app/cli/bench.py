"""`authmd bench`: the benchmark tool (app.tools.bench), imported only when this verb is used; it is a
tool that starts servers, not a part of the server."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from app.tools import bench

    bench.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from app.tools import bench

    return bench.run(args)
