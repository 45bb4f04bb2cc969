"""How long a refusal asks to wait: the agent client's reading and the doctor's (revision 2's numeric
`retry_after` in the body, else the `Retry-After` header, in seconds or as an HTTP-date)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from app.agent.client import retry_after
from app.agent.doctor.checks.errors import _retry_after_seconds


def _in(seconds: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def test_the_body_wins_over_the_header() -> None:
    assert retry_after({"retry_after": 7}, httpx.Headers({"Retry-After": "30"})) == 7.0


@pytest.mark.parametrize("body", [{}, {"retry_after": "7"}, {"retry_after": True}, {"retry_after": -1}, None])
def test_the_header_when_the_body_says_nothing_usable(body: object) -> None:
    assert retry_after(body, httpx.Headers({"Retry-After": "30"})) == 30.0


def test_an_http_date() -> None:
    wait = retry_after({}, httpx.Headers({"Retry-After": _in(120)}))
    assert wait is not None and 0 < wait <= 120
    assert retry_after({}, httpx.Headers({"Retry-After": _in(-60)})) == 0.0  # already past: no wait


@pytest.mark.parametrize("header", [None, "", "soon", "1.5"])
def test_nothing_usable(header: str | None) -> None:
    headers = httpx.Headers({"Retry-After": header} if header is not None else {})
    assert retry_after({}, headers) is None


def test_the_doctor_reads_the_header_the_same_way() -> None:
    assert _retry_after_seconds("42") == 42.0
    seconds = _retry_after_seconds(_in(120))
    assert seconds is not None and 0 < seconds <= 120
    assert _retry_after_seconds("soon") is None
