"""`authmd doctor`: the agent side's check of a service (app.agent.doctor), imported only when this verb
is used. The doctor imports nothing of the server's: it judges any service from the outside."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from app.agent import doctor

    p.description, p.formatter_class = doctor.__doc__, argparse.RawDescriptionHelpFormatter
    doctor.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from app.agent import doctor

    return doctor.run(args)
