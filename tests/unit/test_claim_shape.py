"""The stored shape of a claim across versions (app/store/port.py)."""

from __future__ import annotations

import msgspec

from app.store.port import Claim


def test_a_claim_in_the_older_shape_decodes_without_its_attempt() -> None:
    """Before several attempts, one attempt lived in flat fields. Such a claim still decodes (its life
    count of wrong codes intact) with no live attempt: an attempt in flight at the upgrade is simply
    gone (the agent starts a new one), and the next write stores the current shape."""
    legacy = {
        "account_id": "acct_1",
        "registration_id": "reg_1",
        "token_hash": "t",
        "expires_at": 1_800_003_600,
        "status": "pending",
        "version": 4,
        "scopes_after": ["notes:read"],
        "login_hint": "ada@example.com",
        "attempt_id": "att_old",
        "attempt_hash": "h",
        "attempt_expires_at": 1_800_000_600,
        "confirmed_by": "usr_1",
        "code_hash": "c",
        "code_expires_at": 1_800_000_600,
        "attempt_failures": 2,
        "failures": 3,
    }
    claim = msgspec.json.decode(msgspec.json.encode(legacy), type=Claim)
    assert claim.attempts == () and (claim.failures, claim.version, claim.window_failures) == (3, 4, 0)


def test_a_claim_stored_with_its_token_hash_still_decodes() -> None:
    """Claims once stored a hash of their claim token, which nothing read (the token is derived from the
    account and registration ids and verified by its MAC). A claim stored then decodes whole without it."""
    stored = {
        "account_id": "acct_1",
        "registration_id": "reg_1",
        "token_hash": "t",
        "expires_at": 1_800_003_600,
        "version": 2,
        "attempts": [{"id": "att_1", "link_hash": "h", "expires_at": 1_800_000_600}],
        "failures": 1,
    }
    claim = msgspec.json.decode(msgspec.json.encode(stored), type=Claim)
    assert [a.id for a in claim.attempts] == ["att_1"] and (claim.version, claim.failures) == (2, 1)
    assert b"token_hash" not in msgspec.json.encode(claim)
