"""The wrk cross-check of `authmd bench`: the same constant request measured by wrk (C, one thread), so a
ratio to the bare app that only our Python load generator sees (because the generator, not the server,
was the bottleneck) shows up as a disagreement between the two generators."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# wrk prints latencies with these units (its units_time table); we report milliseconds.
_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def available() -> bool:
    return shutil.which("wrk") is not None


@dataclass
class Request:
    """One constant request for wrk: GETs take their headers on the command line, anything with a
    body goes through a Lua script (wrk has no flag for the method or body)."""

    path: str
    method: str = "GET"
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    lua: str = ""  # a script of its own instead (requests that depend on earlier responses)


# Registration + token exchange: each registration's assertion, read from its response, is exchanged by a
# later request (any connection's); wrk counts both kinds, as our generator does (two requests a pair).
REGISTER_AND_EXCHANGE = """
local assertions = {}
request = function()
  local assertion = table.remove(assertions)
  if assertion then
    return wrk.format("POST", "/oauth2/token", {["Content-Type"] = "application/x-www-form-urlencoded"},
      "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" .. assertion)
  end
  return wrk.format("POST", "/agent/identity", {["Content-Type"] = "application/json"}, '{"type":"anonymous"}')
end
response = function(status, headers, body)
  local assertion = body:match('"assertion":"([^"]+)"')
  if assertion then table.insert(assertions, assertion) end
end
"""


@dataclass
class Measurement:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def seconds(duration: float) -> int:
    """wrk takes whole seconds only, at least one."""
    return max(1, round(duration))


def _script(request: Request, directory: Path) -> Path:
    name = re.sub(r"\W", "-", f"{request.method.lower()}{request.path}")
    path = directory / f"wrk-{name}.lua"
    if request.lua:
        path.write_text(request.lua)
        return path
    # json.dumps gives a double-quoted string Lua reads the same way (for ASCII text, which ours is).
    lines = [f"wrk.method = {json.dumps(request.method)}", f"wrk.body = {json.dumps(request.body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in request.headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _command(request: Request, port: int, connections: int, duration: float, directory: Path) -> list[str]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds(duration)}s", "--latency"]
    if request.method == "GET" and not request.body and not request.lua:
        for k, v in request.headers.items():
            cmd += ["-H", f"{k}: {v}"]
    else:
        cmd += ["-s", str(_script(request, directory))]
    return [*cmd, f"http://127.0.0.1:{port}{request.path}"]


def _latency_ms(output: str, percentile: str) -> float:
    found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    return float(found.group(1)) * _MS[found.group(2)] if found else float("nan")


def parse(output: str) -> Measurement:
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None:
        raise RuntimeError(f"wrk printed no Requests/sec line:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    # Socket errors (connect, read, write, timeout) are failed requests too; wrk prints the line only
    # when there are some.
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return Measurement(float(rate.group(1)), _latency_ms(output, "50"), _latency_ms(output, "99"), errors)


async def measure(request: Request, port: int, connections: int, duration: float, directory: Path) -> Measurement:
    cmd = _command(request, port, connections, duration, directory)
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{out.decode(errors='replace')}")
    return parse(out.decode(errors="replace"))


# ---------------------------------------------------------------------------------------------------
# Report columns: wrk's ratio to its own bare measurement, and how far it is from our generator's.
# ---------------------------------------------------------------------------------------------------

KEYS = (
    "wrk_bare_requests_per_s",
    "wrk_requests_per_s",
    "wrk_ratio_to_bare",
    "generator_disagreement",
    "wrk_p50_ms",
    "wrk_p99_ms",
    "wrk_errors",
)
DISAGREEMENT = 0.30  # beyond this, one generator (ours, most likely: it is Python) is measuring itself


def columns(own_ratio: float | None, check: Measurement | None, wrk_bare: float) -> dict[str, Any]:
    """A scenario's wrk columns; all None when wrk did not measure it (or the bare app)."""
    if check is None or not wrk_bare:
        return dict.fromkeys(KEYS)
    ratio = check.requests_per_s / wrk_bare
    disagreement = abs(own_ratio - ratio) / ratio if own_ratio is not None and ratio else None
    return {
        "wrk_bare_requests_per_s": round(wrk_bare),
        "wrk_requests_per_s": round(check.requests_per_s),
        "wrk_ratio_to_bare": round(ratio, 3),
        "generator_disagreement": round(disagreement, 3) if disagreement is not None else None,
        "wrk_p50_ms": round(check.p50_ms, 2),
        "wrk_p99_ms": round(check.p99_ms, 2),
        "wrk_errors": check.errors,
    }


def warnings(rows: list[dict[str, Any]]) -> list[str]:
    return [
        f"warning: {r['scenario']}: x bare is {r['ratio_to_bare']} with our generator and {r['wrk_ratio_to_bare']} "
        f"with wrk ({r['generator_disagreement']:.0%} apart): a load generator, not the server, may be the bottleneck"
        for r in rows
        if (r["generator_disagreement"] or 0) > DISAGREEMENT
    ]
