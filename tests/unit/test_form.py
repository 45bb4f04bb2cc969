"""The token, revocation and introspection endpoints' form parser answers as urllib's parse_qs."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.routes.http import MAX_FORM_FIELDS, parse_form

# Text built from the characters a form's syntax gives a meaning to, plus escapes good and bad.
PIECES = st.sampled_from(
    ["a", "b", "=", "&", "+", "%", "%2", "%20", "%3D", "%26", "%C3%A9", "%ZZ", "%ff", "é", " ", ";"]
)


def reference(text: str) -> dict[str, list[str]]:
    return parse_qs(text, keep_blank_values=False, strict_parsing=False, max_num_fields=MAX_FORM_FIELDS)


@given(st.lists(PIECES, max_size=40).map("".join))
def test_answers_as_parse_qs(text: str) -> None:
    try:
        expected = reference(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_form(text)
        return
    assert parse_form(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c",
        "scope=notes%3Aread+notes%3Awrite&scope=x",
        "a=1&&b=&c&=d&e=f=g",
        "",
    ],
)
def test_known_forms(text: str) -> None:
    assert parse_form(text) == reference(text)


def test_field_limit_is_parse_qs_limit() -> None:
    at_limit = "&".join(f"f{i}=v" for i in range(MAX_FORM_FIELDS))
    assert parse_form(at_limit) == reference(at_limit)
    over = at_limit + "&x=y"
    with pytest.raises(ValueError):
        reference(over)
    with pytest.raises(ValueError):
        parse_form(over)
