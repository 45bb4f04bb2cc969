"""The human pages' settings: ``logo_url`` is checked at start-up (https outside dev mode, nothing that
could break out of the <img> attribute or the CSP header), and what the pages say in words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, Settings
from app.web import pages

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("issuer", "logo"),
    [
        ("https://auth.example.com", "https://cdn.example.com/logo.png"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:9000/logo.png"),  # dev mode: http allowed
        ("http://127.0.0.1:8000", "https://cdn.example.com/logo.svg?v=2"),
    ],
)
def test_a_logo_url_that_is_accepted(tmp_path: Path, issuer: str, logo: str) -> None:
    settings = Settings(issuer=issuer, data_dir=str(tmp_path), logo_url=logo).resolve()
    assert settings.logo_url == logo


@pytest.mark.parametrize(
    ("logo", "why"),
    [
        ("http://cdn.example.com/logo.png", "must be an https URL"),
        ("javascript:alert(1)", "must be an https URL"),
        ("data:image/png;base64,AAAA", "must be an https URL"),
        ("https:///logo.png", "must name a host"),
        ("https://user:pw@cdn.example.com/logo.png", "without credentials"),
        ("https://cdn.example.com/a.png#x", "without credentials or fragment"),
        ('https://cdn.example.com/"onerror="x', "printable ASCII"),
        ("https://cdn.example.com/a.png; script-src *", "printable ASCII"),
        ("https://cdn.example.com/a,b.png", "printable ASCII"),
        ("https://cdn.example.com/l\u00f6go.png", "printable ASCII"),
        ("https://[::1/logo.png", "not a URL"),
    ],
)
def test_a_bad_logo_url_is_refused_at_start_up(tmp_path: Path, logo: str, why: str) -> None:
    with pytest.raises(ConfigError, match=r"^logo_url: ") as refused:
        Settings(issuer="https://auth.example.com", data_dir=str(tmp_path), logo_url=logo).resolve()
    assert why in str(refused.value)


def test_authmd_config_check_names_the_bad_logo_and_fails(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")} | {
        "AUTHMD_DATA_DIR": str(tmp_path / "data"),
        "AUTHMD_ISSUER": "https://auth.example.com",
        "AUTHMD_LOGO_URL": "http://cdn.example.com/logo.png",
    }
    run = subprocess.run(
        [sys.executable, "-m", "app", "config", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0
    assert "logo_url: must be an https URL (http only in dev mode)" in run.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("count", "word", "said"), [(0, "note", "0 notes"), (1, "note", "1 note"), (2, "minute", "2 minutes")]
)
def test_counts_are_grammatical(count: int, word: str, said: str) -> None:
    assert pages.plural(count, word) == said


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0, "less than a minute"), (59, "less than a minute"), (60, "1 minute"), (720, "12 minutes"), (3600, "1 hour")],
)
def test_durations_in_words(seconds: int, said: str) -> None:
    assert pages.duration(seconds) == said
    assert pages.duration(2 * 86_400 + 5) == "2 days"
