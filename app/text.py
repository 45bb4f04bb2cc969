"""Input hygiene for text that a person later reads: one rule for email addresses, one for the name and
platform an agent gives itself, and one for showing those on the human pages (Unicode TR36, UTS #39).

- ``email``: where an address enters (a ``login_hint``, the dev sign-in form, the OpenID provider's
  ``email`` claim, an ID-JAG's verified ``email``). NFC, lower-cased, dot-atom only (RFC 5322 §3.4.1,
  with RFC 6531 §3.3's UTF-8 characters), RFC 5321 §4.5.3.1 lengths in octets. Refused: every control,
  format (bidi, zero-width, BOM), separator, unassigned or private-use code point and any whitespace.
  ``phone``: an ID-JAG's verified phone number, printable ASCII only.
- ``agent_label``: an agent's ``name``/``platform`` at registration. Printable text of at most
  ``MAX_LABEL`` code points, no controls, format or separator characters (bidi overrides could
  reorder the page around them), no run of more than four nonspacing marks and no mark twice in a row
  (UTS #39 §5.4).
- ``shown``: how a page shows such a label. Plain printable ASCII is shown as it is. Anything else is
  *flagged* and its exact code points are listed (``\\u2714`` and ``U+2714 HEAVY CHECK MARK``): every
  non-ASCII character, not only the confusables of UTS #39's data, because a symbol (``✔ Verified``),
  a Cyrillic ``\\u0410`` in ``\\u0410pple`` or a whole-script confusable are all the same threat to a person
  deciding whether to trust an agent, and flagging all of them needs no confusables table. A
  legitimately non-Latin name is still shown, with the tag; nothing is lost but a little calm.

The ``*_problem`` functions and ``shown`` are pure; ``email``, ``phone`` and ``agent_label`` raise the
``AuthError`` code their caller names, describing a bad character by its code point, never echoing it.
"""

from __future__ import annotations

import string
import unicodedata
from typing import NamedTuple

from app.errors import AuthError

MAX_LOCAL_OCTETS = 64  # RFC 5321 §4.5.3.1.1
MAX_ADDRESS_OCTETS = 254  # RFC 5321 §4.5.3.1.3: a 256-octet path less its two angle brackets
MAX_PHONE = 64  # E.164 has at most 15 digits; room for separators and an extension
# A label is a name for a person to recognise, not a place for a message: 64 code points hold any real
# agent or platform name and leave little room to write instructions onto the consent page. In UTF-8
# that is at most 256 bytes, so no separate byte cap is needed.
MAX_LABEL = 64
MAX_MARK_RUN = 4  # UTS #39 §5.4

# General categories refused everywhere: controls (Cc: NUL, ESC, C1), format characters (Cf: the bidi
# embeddings, overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks U+200E/U+200F, the
# zero-width U+200B-U+200D, U+2060 and U+FEFF, the soft hyphen), surrogates (Cs: only from a broken
# JSON escape), private use (Co: no agreed glyph), unassigned (Cn: meaning unknown to this Unicode
# version, so nobody can say what it will look like), and the line and paragraph separators (Zl, Zp).
_REFUSED = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_KIND = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (bidi control, zero-width or byte-order mark)",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space",
}
# RFC 5322 §3.2.3 atext; RFC 6531 §3.3 adds every UTF-8 non-ASCII character (subject to _REFUSED).
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
# RFC 5321 §4.1.2 sub-domain (letters, digits, hyphens); RFC 6531 §3.3 adds U-labels (non-ASCII).
_LDH = frozenset(string.ascii_letters + string.digits + "-")
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F))  # printable ASCII: shown without a flag
# Code points without a character name get a label in the manner of UAX #44 §4.8.
_UNNAMED = {"Cc": "<control>", "Cs": "<surrogate>", "Co": "<private-use>", "Cn": "<unassigned>"}


def code_point(ch: str) -> str:
    """``U+2714 HEAVY CHECK MARK``: how a page or an error names a character without showing it."""
    name = unicodedata.name(ch, "") or _UNNAMED.get(unicodedata.category(ch), "<unnamed>")
    return f"U+{ord(ch):04X} {name}"


def _refused(ch: str) -> str | None:
    """Why ``ch`` may never appear in an email or an agent label, or None."""
    category = unicodedata.category(ch)
    if category in _REFUSED:
        return f"{code_point(ch)}, {_KIND[category]}"
    return None


def _mark_run(value: str) -> str | None:
    """UTS #39 §5.4 on the NFD form: no nonspacing mark twice in a row, at most 4 in a row. Stacked
    marks only serve to overdraw the text around them (or to fake a character with a doubled mark)."""
    run, previous = 0, ""
    for ch in unicodedata.normalize("NFD", value):
        if unicodedata.category(ch) not in ("Mn", "Me"):
            run, previous = 0, ""
            continue
        if ch == previous:
            return f"it repeats {code_point(ch)} on one character"
        run, previous = run + 1, ch
        if run > MAX_MARK_RUN:
            return f"it stacks more than {MAX_MARK_RUN} combining marks on one character"
    return None


# ---- email addresses ------------------------------------------------------------------------------


def normalize_email(value: str) -> str:
    """NFC, then lower-case (as every address here is compared), then NFC again (lower-casing can
    decompose, e.g. U+0130). NFC because RFC 6532 §3.1 asks for it: the same address typed on two
    keyboards (``é`` as one code point or as ``e`` + U+0301) must be one person, and a ``login_hint``
    must match the email the provider signs in. Only ASCII spaces around it are trimmed (a paste
    accident); anything else is kept and judged."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value.strip(" ")).lower())


def email_problem(address: str) -> str | None:
    """Why a normalised address is refused, or None when it is acceptable."""
    if not address:
        return "it is empty"
    for ch in address:
        if (why := _refused(ch)) is not None:
            return f"it contains {why}"
        if ch.isspace():
            return f"it contains {code_point(ch)}, {_KIND['Zs']}"
    if address.count("@") != 1:
        return "it must contain exactly one @"
    local, domain = address.split("@")
    if len(address.encode()) > MAX_ADDRESS_OCTETS:
        return f"it is longer than {MAX_ADDRESS_OCTETS} octets (RFC 5321 §4.5.3.1.3)"
    if len(local.encode()) > MAX_LOCAL_OCTETS:
        return f"its local part is longer than {MAX_LOCAL_OCTETS} octets (RFC 5321 §4.5.3.1.1)"
    for part, allowed, where in ((local, _ATEXT, "local part"), (domain, _LDH, "domain")):
        atoms = part.split(".")
        if not all(atoms):
            return f"its {where} is empty or has an empty dot-separated part"
        for ch in part:
            if ch != "." and ch.isascii() and ch not in allowed:
                return f"its {where} contains {code_point(ch)}, not allowed in an address"
            # RFC 5892: a U-label holds letters, marks and digits; symbols and punctuation (a fullwidth
            # or ideographic full stop among them) are DISALLOWED.
            if where == "domain" and not ch.isascii() and unicodedata.category(ch)[0] not in "LMN":
                return f"its domain contains {code_point(ch)}, not allowed in a domain name"
        if where == "domain" and any(a.startswith("-") or a.endswith("-") for a in atoms):
            return "a label of its domain starts or ends with a hyphen"
    return None


def email(value: object, code: str, what: str, hint: str | None = None) -> str:
    """The normalised address, or ``AuthError(code)`` saying what is wrong (naming a bad character by
    its code point, never echoing it)."""
    if not isinstance(value, str):
        raise AuthError(code, f"{what} must be an email address", hint)
    address = normalize_email(value)
    problem = email_problem(address)
    if problem is not None:
        raise AuthError(code, f"{what} must be a plain email address: {problem}", hint)
    return address


def phone(value: str, code: str, what: str) -> str:
    """A verified phone number (OpenID Connect Core §5.1: E.164, perhaps with an RFC 3966 extension)
    is printable ASCII; anything else could hide or reorder text where it is shown or logged."""
    number = value.strip(" ")
    odd = next((ch for ch in number if ch not in _PLAIN), None)
    if odd is not None:
        raise AuthError(code, f"{what} must be printable ASCII: it contains {code_point(odd)}")
    if not number or len(number) > MAX_PHONE:
        raise AuthError(code, f"{what} must be 1 to {MAX_PHONE} characters")
    return number


# ---- agent names and platforms --------------------------------------------------------------------


def label_problem(value: str) -> str | None:
    """Why an agent's name or platform is refused at registration, or None."""
    if len(value) > MAX_LABEL:
        return f"it is longer than {MAX_LABEL} characters"
    return _hazard(value)


def _hazard(value: str) -> str | None:
    """What in ``value`` could hide, reorder or overdraw the text around it, or None."""
    for ch in value:
        if (why := _refused(ch)) is not None:
            return f"it contains {why}"
        if ch.isspace() and ch != " ":
            return f"it contains {code_point(ch)}, {_KIND['Zs']} other than U+0020"
    return _mark_run(value)


def agent_label(value: str | None, field: str) -> str | None:
    """``agent.name`` / ``agent.platform`` as sent (not normalised: the page shows what was sent), or
    a 400 ``invalid_request``."""
    if value is None:
        return None
    problem = label_problem(value)
    if problem is not None:
        raise AuthError(
            "invalid_request",
            f"agent.{field} must be printable text of at most {MAX_LABEL} characters: {problem}",
        )
    return value


# ---- showing a label to a person ------------------------------------------------------------------


class Shown(NamedTuple):
    """What a page shows for a label. ``text`` is the value itself, or None when it must not be drawn
    at all (it holds characters that registration refuses today, e.g. a bidi override stored before
    this rule); ``escaped`` and ``code_points`` are set whenever ``flagged``."""

    text: str | None
    flagged: bool
    escaped: str
    code_points: tuple[str, ...]


def escape_unicode(value: str) -> str:
    """Printable ASCII as it is, a backslash doubled, everything else as ``\\uXXXX``/``\\UXXXXXXXX``:
    one unambiguous ASCII spelling of the exact code points."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch in _PLAIN:
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def shown(value: str) -> Shown:
    """Flag every character beyond printable ASCII (see the module's docstring for why all of them)."""
    unusual = [ch for ch in value if ch not in _PLAIN]
    if not unusual:
        return Shown(value, False, value, ())
    drawable = _hazard(value) is None
    names = tuple(dict.fromkeys(code_point(ch) for ch in unusual))
    return Shown(value if drawable else None, True, escape_unicode(value), names)
