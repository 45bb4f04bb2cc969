"""Schemathesis hooks for the fuzz run (loaded by the `schemathesis` command through its config)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/secevent+jwt")
def compact_jws(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """RFC 8935 §2: the request body is the SET itself, a compact JWS (a string in the document)."""
    return value if isinstance(value, bytes) else str(value).encode()
