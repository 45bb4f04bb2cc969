"""The README tells the truth about the configuration and the test command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_and_nothing_else():
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", _section("Configuration"), flags=re.MULTILINE))
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    assert rows == fields


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```sh\n(python3 -m venv [^\n]+)\n```", README)
    assert len(commands) == 2, commands
    serve, test = commands
    assert serve.endswith("authmd serve") and test.endswith("pytest")
    assert test in (ROOT / ".ci" / "run").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_error_code_is_in_the_error_table_under_its_status():
    from app.errors import STATUS

    rows = re.findall(r"^\| ([0-9 /]+) \| (.+) \|$", _section("Errors"), flags=re.MULTILINE)
    documented: dict[str, set[int]] = {}
    for statuses, codes in rows:
        for code in re.findall(r"`([a-z_0-9]+)`", re.sub(r"\([^)]*\)", "", codes)):  # (asides name fields)
            documented.setdefault(code, set()).update(int(s) for s in statuses.split("/"))
    missing = {code: status for code, status in STATUS.items() if status not in documented.get(code, set())}
    assert not missing, f"error codes missing from the README's error table (or under another status): {missing}"
    unknown = set(documented) - set(STATUS)
    assert not unknown, f"the README's error table names codes the server never sends: {unknown}"


def test_every_route_is_in_the_endpoint_table(tmp_path):
    """Every path the app serves (with a provider configured, so the events endpoint exists) has a row."""
    from app.asgi import create_app
    from app.config import Provider

    settings = Settings(
        data_dir=str(tmp_path),
        store_url=f"sqlite:///{tmp_path}/authmd.sqlite3",
        providers=[
            Provider(issuer="https://agents.example.com", name="Example", client_ids=["cli"], scopes=["notes:read"])
        ],
    )
    app = create_app(settings, background=False)
    table = _section("Endpoints")
    documented = {
        re.sub(r"\[(/[a-z]+)\]", "", path)
        for cell in re.findall(r"^\| (.+?) \|", table, flags=re.MULTILINE)
        for path in re.findall(r"`(?:[A-Z/]+ )?(/[^` ]*)`", cell)
    } | {
        # `GET /.well-known/oauth-protected-resource[/api]` documents both forms
        re.sub(r"\[(/[a-z]+)\]", r"\1", path)
        for path in re.findall(r"`(?:[A-Z/]+ )?(/[^` ]*)`", table)
    }
    served = {re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path) for route in app.routes}
    served -= {"/schema", "/schema/{path}"}  # Litestar's own aliases of the OpenAPI document's route
    missing = sorted(served - documented)
    assert not missing, f"routes missing from the README's endpoint table: {missing}"


def test_the_system_parts_table_gives_the_lines_the_skips_print():
    from tests import browser, oidc_server, redis_servers

    table = _section("Development")
    hints = re.findall(r"^\| .+ \| .+ \| `(apt-get install -y [^`]+)` \|$", table, flags=re.MULTILINE)
    assert sorted(hints) == sorted(
        [redis_servers.INSTALL_HINT, oidc_server.INSTALL_HINT, browser.CHROMIUM_INSTALL_HINT]
    ), hints
    assert "ci/run" in table


def test_the_license_file_is_the_one_pyproject_names():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = { text = "Apache-2.0" }' in pyproject
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_links_between_the_docs_resolve():
    """Every relative link in the README and docs/ points at a file that exists, and every #anchor
    into the README names one of its headings."""
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
        for title in re.findall(r"^#+ (.+)$", README, flags=re.MULTILINE)
    }
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            assert file.exists(), f"{doc.name}: broken link {target}"
            if anchor and file.name == "README.md":
                assert anchor in anchors, f"{doc.name}: no heading for #{anchor}"


def test_ci_runs_the_gates_the_readme_names():
    assert "`scripts/check`" in _section("Development")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/check --no-tests" in ci
    gates = (ROOT / "scripts" / "check").read_text()
    for gate in ('ruff" check app tests', 'ruff" format --check app tests', 'mypy" --strict app'):
        assert gate in gates, gate


def test_the_webhook_examples_are_real_bodies():
    """Each JSON body in the Webhooks section is what app/webhooks/message.py sends for that event."""
    from datetime import datetime

    from app import events as ev
    from app.webhooks import message

    blocks = re.findall(r"```json\n(.+?)\n```", _section("Webhooks"), flags=re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        shown = json.loads(block)
        at = datetime.fromisoformat(shown["timestamp"].replace("Z", "+00:00")).timestamp()
        event = ev.decode(json.dumps({"type": shown["type"], "id": shown["id"], "at": at, **shown["data"]}))
        assert json.loads(message.body(event)) == shown
