"""A real browser for tests: Debian's Chromium (/usr/bin/chromium) driven by Playwright's *async* API,
headless, with every request to a non-loopback host aborted (and recorded).

Use the fixtures from any conftest (or test module)::

    from tests.browser import browser, new_context, page  # noqa: F401

    pytestmark = pytest.mark.anyio

    async def test_sign_in(page: Page) -> None:
        await page.goto(f"{server.origin}/")
        await page.get_by_role("button", name="Sign in").click()
        await screenshot(page, "sign-in")

* ``browser``     (function scope): a launched Chromium; closed after the test.
* ``new_context`` (function scope): ``await new_context(ignore_https_errors=False, **playwright_kwargs)`` →
  a ``GuardedContext`` (``.context``, ``.blocked`` = URLs aborted so far, ``await .new_page()``); every
  context made is closed after the test.
* ``page``        (function scope): a page in a fresh guarded context; ``blocked_requests(page)`` lists
  what it tried to fetch off-machine.

Why async and function scope: the repo's tests run under anyio (``anyio_backend`` = "asyncio", function
scope, in tests/conftest.py). Playwright's sync API refuses to run inside a running asyncio loop, and
Playwright's async objects belong to the loop that made them, which anyio closes after each test, so a
browser cannot outlive its test. Launching Chromium takes well under a second.

Never run ``playwright install`` (it downloads a browser): Playwright drives the Debian package through
``executable_path``. Without Chromium or the playwright package the tests skip with the install line
(``CI=true``: they fail instead).

https: Chromium ignores custom CA files. ``new_context(ignore_https_errors=True)`` is an explicit opt-in
for tests against a server with a trustme certificate (tests/tls.py); the narrower alternative is
``launch_browser(extra_args=[tls_files.chromium_trust_arg()])``, which trusts only that server key.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import pytest

from tests.parts import missing

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Request, Route

# TESTS_CHROMIUM_PATH points the tests at another Chromium (or, in tests of this module, at none).
CHROMIUM = os.environ.get("TESTS_CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_INSTALL_HINT = "apt-get install -y chromium"
PLAYWRIGHT_INSTALL_HINT = "pip install playwright"
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
LAUNCH_TIMEOUT_MS = 30_000
DEFAULT_TIMEOUT_MS = 15_000  # for every action/navigation/expectation in a page (Playwright's default: 30 s)

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = ROOT / "test-artifacts" / "screenshots"
LOOPBACK_NAMES = frozenset({"localhost"})


def _playwright_installed() -> bool:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return False
    return True


def require_browser(env: Mapping[str, str] | None = None) -> None:
    """Skip the test when Chromium or the playwright package is missing; fail instead when ``CI=true``."""
    env = os.environ if env is None else env
    problems = []
    if not os.access(CHROMIUM, os.X_OK):
        problems.append(f"chromium not found at {CHROMIUM}; install it with: {CHROMIUM_INSTALL_HINT}")
    if not _playwright_installed():
        problems.append(f"playwright not found; install it with: {PLAYWRIGHT_INSTALL_HINT}")
    if problems:
        missing("; ".join(problems), env)


def is_loopback_url(url: str) -> bool:
    """True for URLs a test browser may fetch: 127.0.0.0/8, ::1, localhost (and *.localhost), plus
    browser-internal schemes (data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return False
    host = (parts.hostname or "").rstrip(".").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- launching -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def launch_browser(extra_args: Sequence[str] = ()) -> AsyncIterator[Browser]:
    """Start Playwright and Chromium (``CHROMIUM_ARGS`` + ``extra_args``); stop both on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, *extra_args],
            timeout=LAUNCH_TIMEOUT_MS,
            # Playwright forwards SIGINT/SIGTERM/SIGHUP to the browser by default; pytest owns signals here.
            handle_sigint=False,
            handle_sigterm=False,
            handle_sighup=False,
        )
        try:
            yield browser
        finally:
            await browser.close()


class GuardedContext:
    """A browser context in which every non-loopback request is aborted (``blockedbyclient``) and its
    URL appended to ``blocked``. Service workers are blocked too (they could bypass the route)."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.blocked: list[str] = []

    @classmethod
    async def open(cls, browser: Browser, *, ignore_https_errors: bool = False, **kwargs: Any) -> GuardedContext:
        kwargs.setdefault("service_workers", "block")
        context = await browser.new_context(ignore_https_errors=ignore_https_errors, **kwargs)
        guarded = cls(context)
        _BLOCKED[context] = guarded.blocked
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        context.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
        await context.route("**/*", guarded._handle)
        return guarded

    async def _handle(self, route: Route, request: Request) -> None:
        if is_loopback_url(request.url):
            await route.fallback()
        else:
            self.blocked.append(request.url)
            await route.abort("blockedbyclient")

    async def new_page(self) -> Page:
        return await self.context.new_page()

    async def close(self) -> None:
        await self.context.close()


_BLOCKED: WeakKeyDictionary[Any, list[str]] = WeakKeyDictionary()


def blocked_requests(page_or_context: Page | BrowserContext) -> list[str]:
    """The non-loopback URLs aborted so far in this page's (or this) guarded context."""
    context = getattr(page_or_context, "context", page_or_context)
    return _BLOCKED[context]


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG to test-artifacts/screenshots/<name>.png (name sanitised) and return its path."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "screenshot"
    path = SCREENSHOT_DIR / f"{safe}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


# --- fixtures --------------------------------------------------------------------------------------

NewContext = Callable[..., Awaitable[GuardedContext]]


@pytest.fixture
async def browser(anyio_backend: str) -> AsyncIterator[Browser]:
    """A headless Chromium for this test (closed afterwards)."""
    require_browser()
    async with launch_browser() as launched:
        yield launched


@pytest.fixture
async def new_context(browser: Browser) -> AsyncIterator[NewContext]:
    """``await new_context(ignore_https_errors=False, **kwargs)`` → a GuardedContext (closed afterwards)."""
    made: list[GuardedContext] = []

    async def factory(*, ignore_https_errors: bool = False, **kwargs: Any) -> GuardedContext:
        guarded = await GuardedContext.open(browser, ignore_https_errors=ignore_https_errors, **kwargs)
        made.append(guarded)
        return guarded

    try:
        yield factory
    finally:
        for guarded in made:
            with contextlib.suppress(Exception):  # already closed with the browser, or by the test
                await guarded.close()


@pytest.fixture
async def page(new_context: NewContext) -> Page:
    """A page in a fresh guarded context (``blocked_requests(page)`` lists the aborted URLs)."""
    guarded = await new_context()
    return await guarded.new_page()
