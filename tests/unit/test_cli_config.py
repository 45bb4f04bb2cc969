"""`authmd config`, `authmd config check` and `authmd keys generate|list`, through the real command line
(``app.cli.main``), with nothing AUTHMD_* from the environment running the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-value"
MASK = "**********"

GOOD = f"""
service_name = "checked"
oidc_issuer = "http://127.0.0.1:9999"
oidc_client_id = "authmd"
oidc_client_secret = "{SECRET}"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AUTHMD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHMD_DATA_DIR", str(tmp_path / "data"))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "authmd.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_check_accepts_a_valid_file_and_prints_it_with_the_secret_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", "--config", write(tmp_path, GOOD)]) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["service_name"] == "checked" and shown["oidc_client_id"] == "authmd"
    assert shown["oidc_client_secret"] == MASK
    assert SECRET not in out + err
    assert "valid" in err


def test_check_takes_the_environment_into_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHMD_QUOTA_NOTES", "7")
    assert main(["config", "check", "--config", write(tmp_path, GOOD)]) == 0
    assert json.loads(capsys.readouterr().out)["quota_notes"] == 7
    monkeypatch.setenv("AUTHMD_QUOTA_NOTES", "-1")
    assert main(["config", "check", "--config", write(tmp_path, GOOD)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "quota_notes" in err


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # Invalid next to the secret: the issuer must be https.
        (GOOD.replace("http://127.0.0.1:9999", "http://login.example"), "oidc_issuer"),
        # The secret of the wrong type (msgspec's message for a Secret field names neither key nor value).
        (GOOD.replace(f'"{SECRET}"', "12345678"), "expected a string"),
        # An unknown key.
        (GOOD + 'oidc_client_secrt = "x"\n', "oidc_client_secrt"),
        # Not TOML at all, on the secret's own line.
        (GOOD.replace(f'oidc_client_secret = "{SECRET}"', f"oidc_client_secret = {SECRET}"), "authmd.toml"),
        # A secret handed where a hash belongs.
        (
            GOOD + f'[[introspection_clients]]\nclient_id = "rs"\nclient_secret = "{SECRET}"\n',
            "introspection_clients[rs].client_secret",
        ),
    ],
)
def test_check_rejects_an_invalid_file_with_exit_2_and_never_shows_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str
) -> None:
    assert main(["config", "check", "--config", write(tmp_path, text)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("authmd: configuration error:") and reason in err, err
    assert SECRET not in err


def test_check_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_config_without_a_verb_prints_the_effective_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--config", write(tmp_path, GOOD)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["oidc_client_secret"] == MASK and SECRET not in out and err == ""


def test_check_as_a_process_reads_authmd_config(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    env["AUTHMD_CONFIG"] = write(tmp_path, GOOD)
    proc = subprocess.run(
        [sys.executable, "-m", "app", "config", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["oidc_client_secret"] == MASK and SECRET not in proc.stdout
    env["AUTHMD_OIDC_ISSUER"] = "ftp://nowhere"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "config", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stdout == "" and "oidc_issuer" in proc.stderr
    assert SECRET not in proc.stderr


def test_keys_generate_then_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list"]) == 1
    assert "authmd keys generate" in capsys.readouterr().err
    assert main(["keys", "generate"]) == 0
    assert capsys.readouterr().out.strip() == "created"
    assert main(["keys", "generate"]) == 0
    assert capsys.readouterr().out.strip() == "keys already present"
    assert main(["keys", "init"]) == 0  # the old name still works
    assert capsys.readouterr().out.strip() == "keys already present"
    assert main(["keys", "list"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert [k["kid"] for k in manifest["keys"]] == [manifest["current"]]
    assert main(["keys", "rotate"]) == 0
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    assert len(json.loads(capsys.readouterr().out)["keys"]) == 2
    assert (tmp_path / "data" / "keys").is_dir()


@pytest.mark.parametrize("argv", [["keys", "--help"], ["config", "--help"], ["admin", "--help"]])
def test_help_shows_examples(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"authmd {argv[0]} " in out.split("usage:", 1)[1].split("\n\n", 1)[1]
    if argv[0] == "keys":
        assert "authmd keys generate" in out and "init" in out


@pytest.mark.parametrize(
    ("env", "warning"),
    [
        ({}, "WARNING: the development sign-in is active"),  # dev mode, no provider
        ({"AUTHMD_ISSUER": "https://auth.example.com"}, "WARNING: claims are off"),
        ({"AUTHMD_ISSUER": "https://auth.example.com", "AUTHMD_CONFIG": "GOOD"}, None),
        ({"AUTHMD_CONFIG": "GOOD"}, None),  # dev mode with a provider: its sign-in, not the dev one
    ],
)
def test_check_warns_when_claims_are_off_or_the_dev_sign_in_is_active(
    tmp_path: Path, env: dict[str, str], warning: str | None
) -> None:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")} | env
    if run_env.get("AUTHMD_CONFIG") == "GOOD":
        run_env["AUTHMD_CONFIG"] = write(tmp_path, GOOD)
    proc = subprocess.run(
        [sys.executable, "-m", "app", "config", "check"], cwd=ROOT, env=run_env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and json.loads(proc.stdout), proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    if warning is None:
        assert warnings == [], proc.stderr
    else:
        (line,) = warnings
        # The setting to change is named, as TOML key and as environment variable.
        assert line.startswith(f"authmd: {warning}") and "oidc_issuer" in line and "AUTHMD_OIDC_" in line, line
