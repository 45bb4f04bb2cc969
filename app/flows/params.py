"""Form parameters of the OAuth endpoints (application/x-www-form-urlencoded)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.errors import AuthError


def single(form: Mapping[str, list[str]], name: str) -> str | None:
    return one(form.get(name) or (), name)


def one(values: Sequence[str], name: str) -> str | None:
    """The one value sent for parameter ``name`` (``values``: every value sent), or None if none was."""
    if not values:
        return None
    if len(values) > 1:  # RFC 6749 §3.2: parameters MUST NOT be included more than once
        raise AuthError("invalid_request", f"the {name} parameter appears more than once")
    return values[0]
