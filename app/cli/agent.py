"""`authmd agent`: the agent side's verbs (app.agent.verbs), imported only when this verb is used.

The agent side imports nothing of the server's; the `authmd` command is merely where it is entered."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from app.agent import verbs

    p.description, p.formatter_class = verbs.__doc__, argparse.RawDescriptionHelpFormatter
    verbs.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from app.agent import verbs

    return verbs.run(args)
