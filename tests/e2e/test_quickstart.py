"""The README's quick start, as written: its agent transcript replayed against a real server.

The commands are taken from the README's first console block; each line of output it shows must come
out of the real command, in order, with only what differs per run (ids, times, ports, paths, the
code) left open. The human's part (open the link, sign in, authorize, read the code) is played by the
development sign-in the README describes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, ServerProcess, StartServer
from tests.helpers import DevHuman

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
README = (ROOT / "README.md").read_text()
TIMEOUT = 60
README_ORIGIN = "http://127.0.0.1:8000"

# What changes from run to run, as it appears in the README → what it may be in a real run.
OPEN_PARTS = [
    (r"\b(reg|acct|note)_[A-Za-z0-9_-]{8,}", r"\1_[A-Za-z0-9_-]+"),
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ"),
    (r"\(in [^)]*\)", r"\\(in [^)]+\\)"),
    (r"cvt_…", r"cvt_\\S+"),
    (r"/home/you/\.config/authmd/[0-9a-f]+\.auth\.md", "{home}/[0-9a-f]+\\\\.auth\\\\.md"),
]


def quick_start_session() -> list[tuple[str, list[str]]]:
    """[(command, output lines)] from the README's quick-start console block."""
    section = README[README.index("\n## Quick start\n") : README.index("\n## ", README.index("\n## Quick start\n") + 1)]
    block = re.search(r"```console\n(.+?)```", section, flags=re.DOTALL)
    assert block is not None
    session: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            session.append((line[2:], []))
        elif line:
            session[-1][1].append(line)
    return session


def line_pattern(line: str, home: Path, origin: str) -> re.Pattern[str]:
    marks: list[str] = []

    def keep(replacement: str) -> str:
        marks.append(replacement)
        return f"\x00{len(marks) - 1}\x00"

    text = line.replace(README_ORIGIN, keep(re.escape(origin)))
    for found, open_as in OPEN_PARTS:
        text = re.sub(found, lambda m, o=open_as: keep(m.expand(o).replace("{home}", re.escape(str(home)))), text)
    pattern = re.escape(text)
    return re.compile(re.sub("\x00(\\d+)\x00", lambda m: marks[int(m.group(1))], pattern))


def assert_shows(stdout: str, stderr: str, expected: list[str], home: Path, origin: str) -> None:
    """Each line the README shows comes out, in order, on stdout or stderr (a terminal interleaves them)."""
    streams = [stdout.splitlines(), stderr.splitlines()]
    at = [0, 0]
    for want in expected:
        pattern = line_pattern(want, home, origin)
        for i, lines in enumerate(streams):
            found = next((n for n in range(at[i], len(lines)) if pattern.fullmatch(lines[n])), None)
            if found is not None:
                at[i] = found + 1
                break
        else:
            raise AssertionError(f"the README shows {want!r}; the command printed:\n{stdout}\nand on stderr:\n{stderr}")


def run(argv: list[str], home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")} | {"AUTHMD_HOME": str(home)}
    return subprocess.run(argv, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


def argv_of(command: str, origin: str) -> list[str]:
    words = shlex.split(command.replace(README_ORIGIN, origin))
    assert words[0] == ".venv/bin/authmd", command
    return [sys.executable, "-m", "app", *words[1:]]


async def human_code(server: ServerProcess, link: str, email: str) -> str:
    async with httpx.AsyncClient(timeout=10.0) as client:
        human = DevHuman(client, server.issuer)
        page = await human.open_link(link, email)
        return (await human.authorize(page)).code


def test_the_pattern_of_a_line_can_fail(tmp_path: Path) -> None:
    pattern = line_pattern(
        "Registered with http://127.0.0.1:8000 as reg_-0Q1tD8ip7iwcgvjU21Y_w (anonymous).",
        tmp_path,
        "http://127.0.0.1:9",
    )
    assert pattern.fullmatch("Registered with http://127.0.0.1:9 as reg_abcdefgh12 (anonymous).")
    assert not pattern.fullmatch("Registered with http://127.0.0.1:9 as reg_abcdefgh12 (service_auth).")
    assert not pattern.fullmatch("Registered with http://127.0.0.1:8000 as reg_abcdefgh12 (anonymous).")


async def test_the_quick_start_transcript_is_what_the_commands_print(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()  # the quick start's server: defaults, dev mode
    home = tmp_path / "home"
    session = quick_start_session()
    assert [cmd.split()[:3] for cmd, _ in session] == [
        [".venv/bin/authmd", "agent", "register"],
        [".venv/bin/authmd", "agent", "call"],
        [".venv/bin/authmd", "agent", "claim"],
    ]
    for command, expected in session[:2]:
        result = run(argv_of(command, server.origin), home)
        assert result.returncode == 0, result.stderr
        assert_shows(result.stdout, result.stderr, expected, home, server.origin)

    # The claim waits for the human: the link comes first, then the code is typed in.
    command, expected = session[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")} | {"AUTHMD_HOME": str(home)}
    with subprocess.Popen(
        argv_of(command, server.origin),
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # closes the pipes, whatever happens
        watchdog = threading.Timer(TIMEOUT * 2, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
            shown: list[str] = []
            for line in proc.stdout:
                shown.append(line)
                if "/login?return_to=" in line:
                    break
            code = await human_code(server, shown[-1].strip(), "ada@example.com")
            # Not communicate(): it reads the pipes' descriptors and would miss what the line iterator
            # above has already buffered. The output is a few lines: one stream, then the other, is safe.
            proc.stdin.write(code + "\n")
            proc.stdin.close()
            out, err = proc.stdout.read(), proc.stderr.read()
            proc.wait(timeout=TIMEOUT)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    # On a terminal the typed code ends the prompt's line; through a pipe the prompt is a line of its own
    # on stderr, and the code is not echoed.
    printed = "".join(shown) + out
    typed = [line for line in expected if line.startswith("Code the human read back:")]
    assert len(typed) == 1, expected
    assert_shows(printed, err, [line for line in expected if line not in typed], home, server.origin)
