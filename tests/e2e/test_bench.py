"""`authmd bench` runs end to end and reports every scenario without errors (numbers go to the README,
not into assertions: no timing assertions in tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def test_bench_reports_every_scenario() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    # wrk's part is checked below (it runs whole seconds: here it would double the test's time)
    cmd = [sys.executable, "-m", "app", "bench", "--duration", "0.3", "--connections", "4", "--workers", "1"]
    cmd += ["--no-wrk", "--json"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout)
    rows = {r["scenario"]: r for r in report["results"]}
    assert set(rows) == {"bare", "discovery", "anonymous", "register", "idjag", "api", "refresh"}
    for name, row in rows.items():
        assert row["errors"] == 0, (name, row)
        assert row["requests_per_s"] > 0 and row["paced_requests_per_s"] > 0, (name, row)
        assert row["p50_ms"] <= row["p99_ms"], (name, row)
        assert (row["ratio"], row["by"]) == (row["ratio_to_bare"], "own"), (name, row)  # no wrk: ours is the headline
        # each ratio divides by the bare app measured around that scenario (the mean of both sides)
        assert row["ratio_to_bare"] == pytest.approx(row["requests_per_s"] / row["bare_requests_per_s"], rel=0.02)
    assert rows["bare"]["ratio_to_bare"] == 1.0
    bare = report["runs"][0]["bare_measured"]
    assert len(bare) == len(rows) and all(b["own"] > 0 and b["wrk"] is None for b in bare)  # once more per scenario
    assert rows["discovery"]["bare_requests_per_s"] == pytest.approx((bare[0]["own"] + bare[1]["own"]) / 2, abs=1)
    assert rows["refresh"]["bare_requests_per_s"] == pytest.approx((bare[-2]["own"] + bare[-1]["own"]) / 2, abs=1)
    assert "proof of work off" in report["meta"]["note"]


def test_bench_on_redis_reports_memory_per_account() -> None:
    from tests.redis_servers import require_redis

    require_redis()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    cmd = [
        sys.executable,
        "-m",
        "app",
        "bench",
        "--redis",
        "--scenarios",
        "api",
        "--duration",
        "0.3",
        "--connections",
        "4",
        "--workers",
        "1",
        "--no-paced",
        "--no-wrk",
        "--json",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=True)
    report = json.loads(out.stdout)
    assert report["meta"]["store"].startswith("redis://") and "appendfsync always" in report["meta"]["store"]
    assert [r["scenario"] for r in report["results"]] == ["bare", "api"]
    assert all(r["errors"] == 0 for r in report["results"])
    memory = report["meta"]["redis_memory"]
    # an account's own keys hold at least its 100-byte note; the total adds index and audit shares
    assert memory["bytes_per_account"] > memory["owned_keys_bytes"] > memory["note_text_bytes"]


def _bench(*args: str, timeout: float = 180) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHMD_")}
    cmd = [sys.executable, "-m", "app", "bench", *args, "--json"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=True)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def test_bench_runs_worker_counts_back_to_back_and_reports_scaling() -> None:
    args = ("--workers", "1,2", "--scenarios", "discovery,anonymous", "--duration", "0.3", "--connections", "4")
    report = _bench(*args, "--no-wrk")
    assert report["meta"]["workers"] == [1, 2]
    assert [run["workers"] for run in report["runs"]] == [1, 2]
    for run in report["runs"]:
        assert [r["scenario"] for r in run["results"]] == ["bare", "discovery", "anonymous"]
        assert all(r["errors"] == 0 for r in run["results"]), run
    ratios = {s["scenario"]: s["ratio"] for s in report["scaling"]}
    assert {"discovery", "anonymous"} <= set(ratios)
    assert all(ratios[name] > 0 for name in ("discovery", "anonymous")), ratios


def test_bench_cross_checks_constant_requests_with_wrk() -> None:
    if shutil.which("wrk") is None:
        # CI installs wrk; a missing wrk there is a broken image, not a reason to skip the cross-check.
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is not on PATH: apt-get install -y wrk")
        pytest.skip("apt-get install -y wrk")
    scenarios = "anonymous,register,idjag,api"  # every request shape wrk sends (bare is the GET)
    args = ("--wrk", "--workers", "1", "--scenarios", scenarios, "--duration", "0.3", "--connections", "4")
    report = _bench(*args, "--no-paced")
    rows = {r["scenario"]: r for r in report["results"]}
    for name in ("bare", "anonymous", "register", "api"):
        row = rows[name]
        assert row["errors"] == 0 and row["wrk_errors"] == 0, (name, row)
        assert row["wrk_requests_per_s"] > 0 and row["wrk_ratio_to_bare"] > 0, (name, row)
        assert row["generator_disagreement"] >= 0, (name, row)
        assert (row["ratio"], row["by"]) == (row["wrk_ratio_to_bare"], "wrk"), (name, row)  # wrk is the headline
        assert row["wrk_ratio_to_bare"] == pytest.approx(
            row["wrk_requests_per_s"] / row["wrk_bare_requests_per_s"], rel=0.02
        ), (name, row)
    # ID-JAGs are signed per request by the bench: only our generator sends them.
    assert rows["idjag"]["wrk_requests_per_s"] is None
    assert (rows["idjag"]["ratio"], rows["idjag"]["by"]) == (rows["idjag"]["ratio_to_bare"], "own")
    assert rows["bare"]["wrk_ratio_to_bare"] == 1.0
    assert report["meta"]["wrk"].startswith("wrk -t1 -c4 ")
