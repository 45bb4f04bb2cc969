"""The input-hygiene rules of app/text.py: one rule for emails, one for agent labels, one for showing them."""

from __future__ import annotations

import unicodedata

import pytest

from app.errors import AuthError
from app.text import (
    MAX_LABEL,
    agent_label,
    code_point,
    email,
    email_problem,
    escape_unicode,
    normalize_email,
    phone,
    shown,
)

# ---- email addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada@Example.COM ", "ada@example.com"),  # ASCII spaces around: a paste accident
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("x_{y}|z~!#$%&*/=?^`@ex-ample.com", "x_{y}|z~!#$%&*/=?^`@ex-ample.com"),  # all of RFC 5322 atext
        ("用户@例子.广告", "用户@例子.广告"),  # RFC 6531's own example: clean EAI is welcome
        ("JOSÉ@Exämple.de", "josé@exämple.de"),
        ("jose\u0301@exa\u0308mple.de", "jos\u00e9@ex\u00e4mple.de"),  # NFD in, NFC out: one person
        ("ÐÖ@пример.рф", "ðö@пример.рф"),
        ("ada@localhost", "ada@localhost"),
    ],
)
def test_clean_addresses_are_kept_normalised(given: str, stored: str) -> None:
    assert email(given, "invalid_login_hint", "login_hint") == stored
    assert unicodedata.is_normalized("NFC", stored)


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("ada\x00@example.com", "U+0000 <control>, a control character"),
        ("ada\x1f@example.com", "U+001F <control>"),
        ("ada\x7f@example.com", "U+007F <control>"),
        ("ada\x85@example.com", "U+0085 <control>"),
        ("ada@example.com\n", "U+000A <control>"),
        ("ada\t@example.com", "U+0009 <control>"),
        ("ada@exa\u202eelpmaxe.com", "U+202E RIGHT-TO-LEFT OVERRIDE, an invisible formatting character"),
        ("\u202aada@example.com", "U+202A LEFT-TO-RIGHT EMBEDDING"),
        ("\u2066ada@example.com\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("ada@example.com\u2069", "U+2069 POP DIRECTIONAL ISOLATE"),
        ("ada\u200b@example.com", "U+200B ZERO WIDTH SPACE"),
        ("ada\u200d@example.com", "U+200D ZERO WIDTH JOINER"),
        ("ada\u200f@example.com", "U+200F RIGHT-TO-LEFT MARK"),
        ("\ufeffada@example.com", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("ad\u00ada@example.com", "U+00AD SOFT HYPHEN"),
        ("ada@example.com\u2028", "U+2028 LINE SEPARATOR, a line separator"),
        ("ada\u2029@example.com", "U+2029 PARAGRAPH SEPARATOR"),
        ("ada \u0040example.com", "U+0020 SPACE, a space"),
        ("ada\u00a0@example.com", "U+00A0 NO-BREAK SPACE"),
        ("ada\u3000@example.com", "U+3000 IDEOGRAPHIC SPACE"),
        ("ada\ue000@example.com", "U+E000 <private-use>"),
        ("ada\u0378@example.com", "U+0378 <unassigned>"),
        ("ada\ud800@example.com", "U+D800 <surrogate>"),
        ("ada@evil.example@example.com", "exactly one @"),
        ("ada@@example.com", "exactly one @"),
        ("ada.example.com", "exactly one @"),
        ("", "empty"),
        ("@example.com", "empty"),
        ("ada@", "empty"),
        ("ada..b@example.com", "empty dot-separated part"),
        (".ada@example.com", "empty dot-separated part"),
        ("ada@example..com", "empty dot-separated part"),
        ("ada@-example.com", "hyphen"),
        ('"ada"@example.com', "U+0022 QUOTATION MARK"),  # quoted local parts are not taken
        ("ada@[192.0.2.1]", "U+005B LEFT SQUARE BRACKET"),  # nor address literals
        ("<ada>@example.com", "U+003C LESS-THAN SIGN"),
        ("ada@exa_mple.com", "U+005F LOW LINE"),
        ("ada@exa\u2714mple.com", "U+2714 HEAVY CHECK MARK, not allowed in a domain name"),
        ("ada@example\uff0ecom", "U+FF0E FULLWIDTH FULL STOP"),
        ("a" * 65 + "@example.com", "local part is longer than 64 octets"),
        ("é" * 33 + "@example.com", "local part is longer than 64 octets"),  # 33 characters, 66 octets
        ("ada@" + "a" * 250 + ".com", "longer than 254 octets"),
    ],
)
def test_unsafe_or_malformed_addresses_are_refused(given: str, why: str) -> None:
    with pytest.raises(AuthError) as err:
        email(given, "invalid_login_hint", "login_hint")
    assert err.value.code == "invalid_login_hint" and err.value.status == 400
    assert err.value.description.startswith("login_hint must be a plain email address: ")
    assert why in err.value.description, err.value.description
    # The refusal names a character, never shows it.
    assert not [ch for ch in given if (not ch.isascii() or not ch.isprintable()) and ch in err.value.description]


def test_lengths_are_counted_in_octets_up_to_the_limits() -> None:
    assert email_problem("é" * 32 + "@example.com") is None  # 64 octets exactly
    assert email_problem("a" * 64 + "@example.com") is None
    at_limit = "ada@" + "a" * 242 + ".example"  # 254 octets
    assert len(at_limit.encode()) == 254 and email_problem(at_limit) is None
    assert email_problem(at_limit + "x") is not None


def test_email_refuses_what_is_not_text_with_the_callers_code() -> None:
    for value in (None, 5, ["ada@example.com"]):
        with pytest.raises(AuthError) as err:
            email(value, "missing_verified_email", "the assertion's verified email")
        assert err.value.code == "missing_verified_email"


def test_normalisation_is_nfc_and_lower_case_and_idempotent() -> None:
    assert normalize_email("\u0130STANBUL@EXAMPLE.COM") == normalize_email(normalize_email("İstanbul@example.com"))
    for value in ("JOSE\u0301@X.DE", "Ada@Example.com", "用户@例子.广告"):
        once = normalize_email(value)
        assert normalize_email(once) == once and once == once.lower()


def test_phone_numbers_are_printable_ascii() -> None:
    assert phone(" +1 (604) 555-1234;ext=5678 ", "missing_verified_email", "phone") == "+1 (604) 555-1234;ext=5678"
    for bad, why in (
        ("+1555\u202e0100", "U+202E"),
        ("+1555\x000100", "U+0000"),
        ("", "1 to 64"),
        ("1" * 65, "1 to 64"),
    ):
        with pytest.raises(AuthError) as err:
            phone(bad, "missing_verified_email", "phone")
        assert err.value.code == "missing_verified_email" and why in err.value.description


# ---- agent names and platforms --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "bot",
        "",
        "Claude Code (darwin; node 20)",
        "✔ Verified",  # taken, and flagged wherever it is shown
        "\u0410pple",
        "エージェント",
        "שלום",
        "e\u0301",
        "Z\u0336\u0337\u0338\u0335",
        "Vi\u1ec7t Nam",  # U+1EC7 is e + two marks under NFD: well within the limit
        "x" * MAX_LABEL,
        "🤖" * MAX_LABEL,  # 64 code points, 256 UTF-8 bytes: the byte bound follows from the code-point cap
    ],
)
def test_printable_labels_are_taken_as_sent(value: str) -> None:
    assert agent_label(value, "name") == value
    assert len(value.encode()) <= 4 * MAX_LABEL


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("x" * (MAX_LABEL + 1), "longer than 64 characters"),
        ("bot\x00", "U+0000 <control>"),
        ("\x1b[31mbot", "U+001B <control>"),
        ("bot\x7f", "U+007F <control>"),
        ("bot\n", "U+000A <control>"),
        ("bot\tbot", "U+0009 <control>"),
        ("Claude \u202eedoC", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u2067bot", "U+2067 RIGHT-TO-LEFT ISOLATE"),
        ("b\u200bot", "U+200B ZERO WIDTH SPACE"),
        ("\ufeffbot", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("bot\u2028Verified", "U+2028 LINE SEPARATOR"),
        ("bot\u00a0", "U+00A0 NO-BREAK SPACE, a space other than U+0020"),
        ("bot\ue000", "U+E000 <private-use>"),
        ("bot\u0378", "U+0378 <unassigned>"),
        ("Z" + "\u0336\u0337\u0338\u0335\u0334", "more than 4 combining marks"),
        ("a" + "\u0301\u0302\u0303\u0304\u0305", "more than 4 combining marks"),
        ("\u1ec7\u0301\u0300\u0303", "more than 4 combining marks"),  # NFD: e + U+0323 U+0302, then 3 more
        ("Z\u0336\u0336", "repeats U+0336 COMBINING LONG STROKE OVERLAY"),
    ],
)
def test_labels_that_hide_reorder_or_overdraw_text_are_refused(value: str, why: str) -> None:
    with pytest.raises(AuthError) as err:
        agent_label(value, "platform")
    assert err.value.code == "invalid_request" and err.value.status == 400
    assert err.value.description.startswith("agent.platform must be printable text of at most 64 characters: ")
    assert why in err.value.description, err.value.description


def test_no_label_is_no_label() -> None:
    assert agent_label(None, "name") is None


# ---- showing a label ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped", "names"),
    [
        ("✔ Verified", "\\u2714 Verified", ("U+2714 HEAVY CHECK MARK",)),
        ("\u0410pple", "\\u0410pple", ("U+0410 CYRILLIC CAPITAL LETTER A",)),  # mixed script
        (
            "\u0430\u0441\u0435",  # whole-script confusable: all Cyrillic, reads "ace"
            "\\u0430\\u0441\\u0435",
            ("U+0430 CYRILLIC SMALL LETTER A", "U+0441 CYRILLIC SMALL LETTER ES", "U+0435 CYRILLIC SMALL LETTER IE"),
        ),
        ("🤖 bot", "\\U0001f916 bot", ("U+1F916 ROBOT FACE",)),
        ("e\u0301", "e\\u0301", ("U+0301 COMBINING ACUTE ACCENT",)),
        ("✔✔ ok ✔", "\\u2714\\u2714 ok \\u2714", ("U+2714 HEAVY CHECK MARK",)),  # each character named once
        ("a\\u2714 ✔", "a\\\\u2714 \\u2714", ("U+2714 HEAVY CHECK MARK",)),  # a typed backslash stays distinct
        ("\u03a1aypal", "\\u03a1aypal", ("U+03A1 GREEK CAPITAL LETTER RHO",)),
    ],
)
def test_anything_beyond_printable_ascii_is_flagged_with_its_code_points(
    value: str, escaped: str, names: tuple[str, ...]
) -> None:
    seen = shown(value)
    assert seen.flagged and seen.text == value
    assert seen.escaped == escaped and seen.escaped.isascii()
    assert seen.code_points == names


def test_plain_ascii_is_shown_as_it_is() -> None:
    for value in ("Docs bot", "claude-code/1.0 (linux; x64)", "a\\u2714 <b>&"):
        assert shown(value) == (value, False, value, ())


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("x\u202ey", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\x1b[31mred", "U+001B <control>"),
        ("bot\x00", "U+0000 <control>"),
        ("Z" + "\u0336" * 9, "U+0336 COMBINING LONG STROKE OVERLAY"),
    ],
)
def test_text_stored_before_these_rules_that_could_hide_or_reorder_is_never_drawn(value: str, named: str) -> None:
    seen = shown(value)
    assert seen.flagged and seen.text is None and named in seen.code_points
    assert seen.escaped == escape_unicode(value) and seen.escaped.isascii()


def test_code_points_are_named_or_labelled() -> None:
    assert code_point("✔") == "U+2714 HEAVY CHECK MARK"
    assert code_point("\U0001f916") == "U+1F916 ROBOT FACE"
    assert code_point("\x00") == "U+0000 <control>"
    assert code_point("\U000f0000") == "U+F0000 <private-use>"
