"""The README tells the truth about the configuration and the test command."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_and_nothing_else():
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", README, flags=re.MULTILINE))
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    assert rows == fields


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```sh\n(python3 -m venv [^\n]+)\n```", README)
    assert len(commands) == 2, commands
    serve, test = commands
    assert serve.endswith("authmd serve") and test.endswith("pytest")
    assert test in (ROOT / ".ci" / "run").read_text()
