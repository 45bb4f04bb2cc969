"""How the human pages show an agent's self-chosen text (app/web/pages.py over app/text.py): plain ASCII as
before, anything else flagged with its exact code points, every part HTML-escaped."""

from __future__ import annotations

import re

from app.web import pages

BRAND = pages.Brand("authmd")


def details(name: str | None, platform: str | None) -> pages.ClaimDetails:
    return pages.ClaimDetails(
        registration_id="reg_x",
        kind="anonymous",
        agent_name=name,
        agent_platform=platform,
        provider=None,
        created_at="1 Jan 2026",
        source=None,
        scopes_now=("notes:read",),
        scopes_after=("notes:read", "notes:delete"),
        quota_now=25,
        quota_after=1000,
        expires_at=None,
        first_link=False,
    )


def test_the_claim_page_flags_a_badge_and_a_lookalike_and_explains() -> None:
    html = pages.claim_ready("", BRAND, "ada@example.com", "csrf", details("✔ Verified", "\u0410pple"), "ref")
    assert html.count('<span class="tag warn">look-alike characters</span>') == 2
    assert "<bdi>✔ Verified</bdi>" in html and "<code>\\u2714 Verified</code> (U+2714 HEAVY CHECK MARK)" in html
    assert "<code>\\u0410pple</code> (U+0410 CYRILLIC CAPITAL LETTER A)" in html
    assert pages.LOOKALIKE_ADVICE in html and html.count('class="tag">unverified') == 2


def test_the_claim_page_shows_plain_ascii_as_before() -> None:
    html = pages.claim_ready("", BRAND, "ada@example.com", "csrf", details("Docs bot", "pytest"), "ref")
    assert '<dd>Docs bot<span class="tag">unverified</span></dd>' in html
    assert "look-alike" not in html and pages.LOOKALIKE_ADVICE not in html and "<bdi>" not in html


def test_agent_text_is_html_escaped_in_every_part() -> None:
    got = pages.agent_text("<b>✔</b>&")
    assert got.text == "<bdi>&lt;b&gt;✔&lt;/b&gt;&amp;</bdi>"
    assert "<code>&lt;b&gt;\\u2714&lt;/b&gt;&amp;</code>" in got.characters
    hidden = pages.agent_text("x\u202e<i>")
    assert "\u202e" not in "".join(hidden) and "not drawn" in hidden.text and "\\u202e&lt;i&gt;" in hidden.characters


def test_the_account_page_flags_agents_too() -> None:
    grant = pages.GrantRow("acct_x", "reg_x", "\u0410pple", "claimed by you", "notes:read", "active", "1 minute ago")
    plain = pages.GrantRow("acct_x", "reg_y", "Docs bot", "claimed by you", "notes:read", "active", "1 minute ago")
    view = pages.AccountView("acct_x", "An account you claimed", "It holds 1 note.", [grant, plain])
    html = pages.account_page("", BRAND, "ada@example.com", "csrf", [view])
    assert html.count("look-alike characters") == 1 and "U+0410 CYRILLIC CAPITAL LETTER A" in html
    assert "<strong>Docs bot</strong>" in html


def test_the_wrong_account_page_flags_what_the_mask_leaves_of_an_agents_hint() -> None:
    html = pages.wrong_account("", BRAND, "bob@example.com", "csrf", "ada@ex\u0430mple.com")
    assert "look-alike characters" in html and "a@ex\\u0430mple.com" in html and "U+0430" in html
    assert "ada" not in html  # the mask still hides the local part
    plain = pages.wrong_account("", BRAND, "bob@example.com", "csrf", "ada@example.com")
    assert "<bdi>a•••@example.com</bdi>" in plain and "look-alike" not in plain and "ada@" not in plain


def test_the_stylesheet_hash_covers_the_new_rules() -> None:
    assert ".tag.warn{" in pages.STYLE and ".chars{" in pages.STYLE
    csp = pages.security_headers()["Content-Security-Policy"]
    assert re.search(r"style-src 'sha256-([A-Za-z0-9+/=]+)'", csp).group(1) == pages.STYLE_HASH  # type: ignore[union-attr]
