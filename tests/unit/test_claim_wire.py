"""The typed claim and refresh results encode to exactly the JSON the flows sent as dicts before
(field order and every field present: agents and tests/e2e/test_client_contract.py read these bytes)."""

from __future__ import annotations

import msgspec

from app import wire

ATTEMPT = {"verification_uri": "https://as/login?return_to=x", "expires_at": "2027-01-01T00:00:00Z"}
IDENTITY = {
    "assertion": "eyJ.a.b",
    "expires_at": "2027-01-01T00:00:00Z",
    "refresh_token": {"value": "art_x", "expires_at": "2027-02-01T00:00:00Z"},
}


def _same(struct: msgspec.Struct, shape: dict[str, object]) -> None:
    assert msgspec.json.encode(struct) == msgspec.json.encode(shape)


def test_attempt_started_and_claim_block_keep_their_shape() -> None:
    attempt = wire.Attempt(**ATTEMPT)
    _same(
        wire.ClaimAttemptStarted(id="reg_1", type="service_auth", attempt=attempt),
        {"id": "reg_1", "type": "service_auth", "attempt": ATTEMPT},
    )
    block = wire.ClaimBlockWithAttempt(token="clm_x", expires_at="2027", url="https://as/claim", attempt=attempt)
    _same(block, {"token": "clm_x", "expires_at": "2027", "url": "https://as/claim", "attempt": ATTEMPT})


def test_completed_and_refreshed_keep_their_shape() -> None:
    identity = wire.IdentityWithRefresh(
        assertion="eyJ.a.b",
        expires_at="2027-01-01T00:00:00Z",
        refresh_token=wire.RefreshTokenView(value="art_x", expires_at="2027-02-01T00:00:00Z"),
    )
    _same(
        wire.ClaimCompleted(id="reg_1", status="claimed", identity=identity),
        {"id": "reg_1", "status": "claimed", "identity": IDENTITY},
    )
    _same(
        wire.Refreshed(id="reg_1", type="refresh", identity=identity),
        {"id": "reg_1", "type": "refresh", "identity": IDENTITY},
    )
    _same(wire.ClaimStatus(id="reg_1", status="pending"), {"id": "reg_1", "status": "pending"})
