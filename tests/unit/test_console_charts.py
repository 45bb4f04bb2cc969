"""The console's inline SVG charts and the pure parts of what the console shows: escaping, empty data,
bounds, the y axis' round top, the derived live accounts, the time windows and who is an operator."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from app.config import Settings
from app.flows import console as flows
from app.store.port import User
from app.web import charts

EVIL = '<script>alert("x")</script>&'
SVG = "{http://www.w3.org/2000/svg}"


def _svg(figure: str) -> ET.Element:
    """The figure's svg, parsed as XML: it must be well-formed, whatever the text inside."""
    svg = re.search(r"<svg.*</svg>", figure, re.DOTALL)
    assert svg, figure
    return ET.fromstring(svg.group(0))  # noqa: S314 (our own output, not untrusted input)


def test_every_text_is_escaped() -> None:
    for figure in (
        charts.bars(EVIL, EVIL, [EVIL, "b"], [charts.Series(EVIL, [1, 2])], unit=EVIL),
        charts.lines(EVIL, EVIL, [EVIL], [charts.Series(EVIL, [3])], summary=EVIL),
        charts.funnel(EVIL, EVIL, [(EVIL, 4), ("done", 1)]),
    ):
        assert "<script" not in figure and 'alert("x")' not in figure
        assert "&lt;script&gt;" in figure
        root = _svg(figure)
        assert root.get("role") == "img"
        assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
        assert EVIL in (root.find(f"{SVG}title").text or "")  # type: ignore[union-attr]


def test_bars_stack_within_the_plot_and_the_desc_gives_the_totals() -> None:
    figure = charts.bars(
        "regs",
        "Registrations",
        ["10:00", "10:01", "10:02"],
        [charts.Series("a", [1, 0, 7]), charts.Series("b", [2, 0, 1])],
    )
    root = _svg(figure)
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 4  # zero values draw nothing
    for rect in rects:
        y, h = float(rect.get("y", "0")), float(rect.get("height", "0"))
        assert y >= charts.TOP - 0.05 and y + h <= charts.HEIGHT - charts.BOTTOM + 0.05
        assert charts.LEFT <= float(rect.get("x", "0")) <= charts.WIDTH - charts.RIGHT
    assert "a 8, b 3" in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    # The tallest stack (8) under a round top (8): the y axis says 0, 4 and 8.
    axis = [t.text for t in root.findall(f"{SVG}text")]
    assert {"0", "4", "8"} <= set(axis) and {"10:00", "10:01", "10:02"} <= set(axis)
    assert "<strong>8</strong>" in figure and "<strong>3</strong>" in figure  # the legend's totals


@pytest.mark.parametrize(
    "series",
    [[], [charts.Series("a", [])], [charts.Series("a", [0, 0, 0])], [charts.Series("a", [-5, float("nan"), 0])]],
)
def test_empty_or_meaningless_data_says_nothing_was_counted(series: list[charts.Series]) -> None:
    for figure in (
        charts.bars("k", "T", ["x", "y", "z"], series),
        charts.lines("k", "T", ["x", "y", "z"], series),
    ):
        root = _svg(figure)
        assert root.findall(f"{SVG}rect") == [] and root.findall(f"{SVG}polyline") == []
        assert "nothing counted" in figure


def test_no_buckets_at_all() -> None:
    assert "nothing counted" in charts.bars("k", "T", [], [charts.Series("a", [1])])
    assert "nothing counted" in charts.lines("k", "T", [], [charts.Series("a", [1])])
    _svg(charts.funnel("k", "T", []))


def test_series_longer_or_shorter_than_the_labels_are_cut_or_padded() -> None:
    root = _svg(charts.bars("k", "T", ["a", "b"], [charts.Series("s", [1, 1, 50]), charts.Series("t", [1])]))
    assert len(root.findall(f"{SVG}rect")) == 3  # the 50 past the last label is not drawn


def test_lines_stay_inside_the_plot() -> None:
    root = _svg(charts.lines("k", "T", ["a", "b", "c"], [charts.Series("live", [0, 12, 3])]))
    (line,) = root.findall(f"{SVG}polyline")
    for point in (line.get("points") or "").split():
        x, y = (float(v) for v in point.split(","))
        assert charts.LEFT <= x <= charts.WIDTH - charts.RIGHT and charts.TOP <= y <= charts.HEIGHT - charts.BOTTOM


def test_the_funnel_gives_each_step_its_share_of_the_first() -> None:
    figure = charts.funnel("f", "Claims", [("started", 4), ("confirmed", 2), ("completed", 1)])
    desc = _svg(figure).find(f"{SVG}desc")
    assert desc is not None and desc.text == "started 4 (100%); confirmed 2 (50%); completed 1 (25%)"
    assert "n/a" in charts.funnel("f", "Claims", [("started", 0), ("completed", 0)])


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 2), (-3, 2), (float("inf"), 2), (1, 2), (2, 2), (3, 4), (7, 8), (10, 10), (11, 20), (61, 80), (999, 1000)],
)
def test_nice_max(value: float, top: float) -> None:
    assert charts.nice_max(value) == pytest.approx(top)


def test_the_live_accounts_are_walked_back_from_now_and_never_below_zero() -> None:
    # 5 live now; the last bucket added 2 and removed 1, the one before added 10.
    assert flows.live_series(5, [0, 10, 2], [0, 0, 1]) == [0, 4, 5]
    assert flows.live_series(0, [], []) == []


def test_windows_end_with_the_current_bucket_and_hour_reads_whole_hours() -> None:
    now = 1_800_000_000 + 0.5  # some moment
    minute = int(now // 60)
    start, end = flows.WINDOWS["hour"].span(now)
    assert (start, end) == (minute + 1 - 60, minute + 1)
    for name in ("day", "week"):
        w = flows.WINDOWS[name]
        start, end = w.span(now)
        assert start % 60 == 0 and end % 60 == 0 and start <= minute < end
        assert (end - start) // w.step == w.buckets and w.step % 60 == 0


def _user(email: str) -> User:
    return User(id="usr_1", email=email, account_id="acct_1", created_at=0)


def _settings(**kw: object) -> Settings:
    return Settings(**kw).resolve()  # type: ignore[arg-type]


def test_who_is_an_operator() -> None:
    listed = _settings(console_admins=["Ops@Example.com"])
    assert flows.access(listed, _user("ops@example.com")) == "operator"
    assert flows.access(listed, _user("ada@example.com")) == "denied"
    # Dev mode with the development sign-in and no list: everyone (the pages say so).
    assert flows.access(_settings(), _user("ada@example.com")) == "everyone"
    # With a real sign-in, or outside dev mode, no list means nobody.
    oidc = _settings(oidc_issuer="http://127.0.0.1:9/idp", oidc_client_id="c", oidc_client_secret="s")
    assert flows.access(oidc, _user("ada@example.com")) == "closed"
    real = _settings(issuer="https://auth.example.com")
    assert flows.access(real, _user("ada@example.com")) == "closed"
    assert flows.operator_name(_user("ops@example.com")) == "console:ops@example.com"


def test_every_refusing_limit_is_charted() -> None:
    """The refusals chart reads ``refused:{limit}`` for the names in flows.LIMITS: every name the server
    refuses with (a window's name, a ``limit="…"`` where a flow refuses, a quota or proof-of-work code)."""
    from pathlib import Path

    from app.flows.limits import LIMIT_NAMES
    from app.routes.errors import _REFUSING_CODES

    root = Path(__file__).resolve().parents[2] / "app"
    named = {m for path in root.rglob("*.py") for m in re.findall(r'\blimit="([a-z_]+)"', path.read_text())}
    named.discard("example")  # the example error body in the discovery documents
    missing = (named | set(LIMIT_NAMES.values()) | set(_REFUSING_CODES.values())) - set(flows.LIMITS)
    assert not missing, missing
