"""Proof-of-work challenges (app/flows/challenge.py): the MAC-protected token and the hash puzzle."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from app.protocol import leading_zero_bits, meets, solve
from app.tokens import MAX_CHALLENGE_LENGTH
from app.tokens import mint_challenge as mint
from app.tokens import parse_challenge as parse

KEY = bytes(range(32))
EXPIRES = 1_800_000_300
FIXED = "v1.fixed-challenge-for-tests.1800000300.8.mac"  # meets/solve work on any string


def lzb(challenge: str, nonce: str) -> int:
    return leading_zero_bits(hashlib.sha256(f"{challenge}:{nonce}".encode()).digest())


def test_mint_parse_round_trip() -> None:
    challenge = mint(KEY, 12, EXPIRES)
    parsed = parse(KEY, challenge)
    assert parsed is not None
    challenge_id, expires_at, difficulty = parsed
    assert (expires_at, difficulty) == (EXPIRES, 12)
    assert challenge.split(".")[1] == challenge_id
    assert challenge.startswith("v1.")
    assert len(challenge) <= MAX_CHALLENGE_LENGTH


def test_each_challenge_has_its_own_id() -> None:
    ids = set()
    for _ in range(20):
        parsed = parse(KEY, mint(KEY, 12, EXPIRES))
        assert parsed is not None
        ids.add(parsed[0])
    assert len(ids) == 20


def test_a_changed_character_anywhere_is_rejected() -> None:
    challenge = mint(KEY, 12, EXPIRES)
    for i, ch in enumerate(challenge):
        for replacement in {"A", "0", ".", "-"} - {ch}:
            tampered = challenge[:i] + replacement + challenge[i + 1 :]
            assert parse(KEY, tampered) is None, (i, replacement)


def test_other_key_truncation_and_extension_are_rejected() -> None:
    challenge = mint(KEY, 12, EXPIRES)
    assert parse(b"\x00" * 32, challenge) is None
    assert parse(KEY, challenge[:-1]) is None
    assert parse(KEY, challenge + "A") is None
    assert parse(KEY, challenge + ".x") is None
    assert parse(KEY, "") is None
    assert parse(KEY, "v1....") is None
    assert parse(KEY, challenge.replace("v1.", "v2.", 1)) is None


def test_oversized_and_non_ascii_challenges_are_rejected() -> None:
    assert parse(KEY, "v1." + "a" * MAX_CHALLENGE_LENGTH) is None
    assert parse(KEY, mint(KEY, 12, EXPIRES) + "é") is None


@pytest.mark.parametrize(
    ("digest", "bits"),
    [
        (bytes(32), 256),
        (b"\x80" + bytes(31), 0),
        (b"\xff" * 32, 0),
        (b"\x7f" + b"\xff" * 31, 1),
        (b"\x0f" + b"\xff" * 31, 4),
        (b"\x00\x01" + b"\xff" * 30, 15),
        (b"\x00\x00\x80" + bytes(29), 16),
        (bytes(31) + b"\x01", 255),
        (b"\x01", 7),
    ],
)
def test_leading_zero_bits(digest: bytes, bits: int) -> None:
    assert leading_zero_bits(digest) == bits


@pytest.mark.parametrize(("start", "difficulty"), [(0, 1), (0, 4), (0, 8), (1000, 8), (0, 10)])
def test_solve_returns_the_first_nonce_that_meets_the_difficulty(start: int, difficulty: int) -> None:
    nonce = solve(FIXED, difficulty, start)
    assert nonce.isdigit()
    assert int(nonce) >= start
    assert meets(FIXED, nonce, difficulty)
    assert lzb(FIXED, nonce) >= difficulty
    # "the first nonce from start": every one before it falls short.
    assert all(lzb(FIXED, str(n)) < difficulty for n in range(start, int(nonce)))


def test_solve_a_minted_challenge() -> None:
    challenge = mint(KEY, 8, EXPIRES)
    nonce = solve(challenge, 8)
    assert meets(challenge, nonce, 8)
    assert parse(KEY, challenge) is not None


def test_meets_is_false_for_a_nonce_that_falls_short() -> None:
    # Deterministic: the first nonce whose hash starts with a non-zero byte has fewer than 8 zero bits.
    nonce = next(str(n) for n in range(1000) if hashlib.sha256(f"{FIXED}:{n}".encode()).digest()[0] != 0)
    assert meets(FIXED, nonce, 8) is False
    assert meets(FIXED, nonce, 0) is True


def test_meets_is_exact_at_the_number_of_leading_zero_bits() -> None:
    for n in range(50):
        nonce = str(n)
        bits = lzb(FIXED, nonce)
        assert meets(FIXED, nonce, bits) is True
        assert meets(FIXED, nonce, bits + 1) is False


def test_meets_binds_the_challenge() -> None:
    nonce = solve(FIXED, 10)
    # The same nonce against another challenge is just another hash: find a challenge where it fails.
    other = next(f"{FIXED}{i}" for i in range(1000) if lzb(f"{FIXED}{i}", nonce) < 10)
    assert meets(other, nonce, 10) is False


@pytest.mark.parametrize(("free", "base", "top"), [(10, 20, 28), (2, 8, 14), (0, 8, 9), (1, 1, 40)])
def test_volume_paid_is_the_inverse_of_the_price(free: int, base: int, top: int, tmp_path) -> None:
    """A proof of difficulty d pays for exactly the volumes whose price is at most d."""
    from app.config import Settings
    from app.flows.challenge import difficulty_for, volume_paid

    class Ctx:
        settings = Settings(pow_free_per_source=free, pow_difficulty=base, pow_max_difficulty=top)

    ctx: Any = Ctx()
    for d in range(base, top + 1):
        paid = volume_paid(ctx, d)
        for tenths in range(1, 20_000, 7):
            volume = tenths / 10
            assert (difficulty_for(ctx, volume) <= d) == (paid is None or volume <= paid), (d, volume, paid)
