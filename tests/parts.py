"""What every real-part fixture module shares (Redis, the OpenID provider, the browser).

- ``missing``: a system part is absent → skip with the line that installs it; under ``CI=true`` fail
  instead, since `.ci/run` installs every part.
- ``signal_and_wait``: stop a process politely, then surely.
- ``shared``: a session resource shared across every import site of its fixture (each import site is
  its own pytest FixtureDef and would otherwise start its own), reference-counted and closed by the
  last teardown.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def missing(message: str, env: Mapping[str, str]) -> None:
    if env.get("CI", "").strip().lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


_SHARED: dict[str, tuple[Any, int]] = {}


@contextlib.contextmanager
def shared(name: str, make: Callable[[], T], close: Callable[[T], object]) -> Iterator[T]:
    if name in _SHARED:
        resource, count = _SHARED[name]
        _SHARED[name] = (resource, count + 1)
    else:
        resource = make()
        _SHARED[name] = (resource, 1)
    try:
        yield resource
    finally:
        resource, count = _SHARED[name]
        if count == 1:
            del _SHARED[name]
            close(resource)
        else:
            _SHARED[name] = (resource, count - 1)


def signal_and_wait(proc: subprocess.Popen[Any], sig: signal.Signals, timeout: float, grace: float) -> None:
    """Send ``sig`` to a process still running and wait ``timeout`` for it; SIGKILL after that."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)
