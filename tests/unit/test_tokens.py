"""app/tokens.py: every credential format round-trips, and any change to one is refused."""

from __future__ import annotations

from app import tokens

KEY = b"k" * 32
OTHER = b"o" * 32
ACCT, REG = "acct_0123456789ab", "reg_0123456789abcd"


def _flip(token: str) -> str:
    """``token`` with its last character changed (a tampered MAC or secret)."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def test_claim_token_round_trips_and_names_its_record() -> None:
    token = tokens.claim_token(KEY, ACCT, REG)
    assert token.startswith(f"clm_{ACCT}.{REG}.")
    assert tokens.verify_claim_token(KEY, token) == tokens.Located(ACCT, REG, token)


def test_claim_token_tampered_is_refused_and_told_apart_from_malformed() -> None:
    token = tokens.claim_token(KEY, ACCT, REG)
    assert tokens.verify_claim_token(OTHER, token) is False  # wrong key
    assert tokens.verify_claim_token(KEY, _flip(token)) is False  # wrong MAC
    assert tokens.verify_claim_token(KEY, tokens.claim_token(KEY, ACCT, "reg_another_one_x")) is not False
    assert tokens.verify_claim_token(KEY, "cvt" + token[3:]) is None  # wrong prefix
    assert tokens.verify_claim_token(KEY, token[:-10]) is False  # truncated MAC
    assert tokens.verify_claim_token(KEY, token[: token.rindex(".") + 15]) is None  # too short to be a MAC
    assert tokens.verify_claim_token(KEY, token + "x" * 256) is None  # oversize
    assert tokens.verify_claim_token(KEY, {"token": token}) is None  # not a string


def test_attempt_token_locates_and_only_its_hash_is_kept() -> None:
    token = tokens.new_attempt_token(ACCT, REG)
    assert tokens.locate(token, "cvt") == tokens.Located(ACCT, REG, token)
    assert tokens.locate(token, "clm") is None
    assert tokens.locate(token.replace(ACCT, "x"), "cvt") is None
    assert tokens.new_attempt_token(ACCT, REG) != token
    assert tokens.stored_hash(token) == tokens.stored_hash(token) != tokens.stored_hash(_flip(token))
    assert token not in tokens.stored_hash(token)


def test_user_codes_are_six_digits_hashed_per_attempt_and_read_back_without_grouping() -> None:
    code = tokens.new_user_code()
    assert len(code) == tokens.CODE_DIGITS and code.isdigit()
    assert tokens.code_hash(KEY, "att_1", code) == tokens.code_hash(KEY, "att_1", code)
    assert tokens.code_hash(KEY, "att_2", code) != tokens.code_hash(KEY, "att_1", code)
    assert tokens.code_hash(OTHER, "att_1", code) != tokens.code_hash(KEY, "att_1", code)
    assert tokens.normalized_code("870 581") == tokens.normalized_code("870\u2013581") == "870581"
    assert tokens.normalized_code(870581) == ""


def test_refresh_token_round_trips_per_family_and_seq() -> None:
    family = tokens.new_family()
    token = tokens.refresh_token(KEY, ACCT, REG, family, 7)
    assert tokens.locate_refresh(token) == (ACCT, REG, 7)
    assert tokens.refresh_token(KEY, ACCT, REG, family, 7) == token  # recomputed, never stored
    assert tokens.refresh_token(KEY, ACCT, REG, tokens.new_family(), 7) != token
    assert tokens.refresh_token(OTHER, ACCT, REG, family, 7) != token
    assert tokens.refresh_token(KEY, ACCT, REG, family, 8) != token


def test_refresh_token_malformed_is_not_located() -> None:
    token = tokens.refresh_token(KEY, ACCT, REG, tokens.new_family(), 3)
    assert tokens.locate_refresh("clm" + token[3:]) is None  # wrong prefix
    assert tokens.locate_refresh(token.rsplit(".", 1)[0]) is None  # truncated
    assert tokens.locate_refresh(token.replace(".3.", ".03.")) is None  # seq not canonical
    assert tokens.locate_refresh(token + "x" * 256) is None  # oversize
    assert tokens.locate_refresh(None) is None


def test_challenge_round_trips_and_a_changed_one_is_refused() -> None:
    challenge = tokens.mint_challenge(KEY, 12, 1_800_000_000)
    parsed = tokens.parse_challenge(KEY, challenge)
    assert parsed is not None and parsed[1:] == (1_800_000_000, 12)
    assert tokens.parse_challenge(OTHER, challenge) is None  # wrong MAC
    assert tokens.parse_challenge(KEY, challenge.replace(".12.", ".2.")) is None  # difficulty lowered
    assert tokens.parse_challenge(KEY, "v2" + challenge[2:]) is None  # wrong version
    assert tokens.parse_challenge(KEY, challenge.rsplit(".", 1)[0]) is None  # truncated
    assert tokens.parse_challenge(KEY, challenge + "A" * tokens.MAX_CHALLENGE_LENGTH) is None  # oversize


def test_new_ids_carry_their_prefix_and_registration_ids_are_stable() -> None:
    assert tokens.TOKEN_ID.fullmatch(tokens.new_id("att"))
    assert tokens.new_id("att") != tokens.new_id("att")
    rid = tokens.registration_id_for(KEY, "https://idp", "sub", "https://us")
    assert rid == tokens.registration_id_for(KEY, "https://idp", "sub", "https://us")
    assert rid != tokens.registration_id_for(KEY, "https://idp", "sub", "https://them")
    assert tokens.TOKEN_ID.fullmatch(rid)


def test_new_ids_sort_by_creation_time_and_keep_their_random_part() -> None:
    assert tokens._sortable_ms(0) == "00000000"
    assert tokens._sortable_ms(1.0) == "000000G8"  # 1000 ms = 16 * 62 + 8
    times = [0, 0.001, 1, 61.999, 1_800_000_000, 1_800_000_000.001, 200_000_000_000]
    stamps = [tokens._sortable_ms(t) for t in times]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(len(s) == 8 for s in stamps)
    ids = [tokens.new_id("acct") for _ in range(50)]
    assert [i[5:13] for i in ids] == sorted(i[5:13] for i in ids)  # made one after another
    assert len({i[13:] for i in ids}) == 50  # 16 random bytes each
    assert all(tokens.TOKEN_ID.fullmatch(i) for i in ids)
