"""The human pages: plain, accessible HTML with one inline stylesheet (allowed by its CSP hash), no
scripts and no external assets but the operator's optional logo (the only image origin the CSP allows).
Every value is escaped; every form carries the CSRF token. Times are said in words ("12 minutes ago")
beside the exact UTC time, and ids are secondary: a person recognises an agent by its name and age."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import NamedTuple
from urllib.parse import urlsplit

from app import endpoints as ep
from app.text import shown

STYLE = """
:root{color-scheme:light dark;--fg:#1d1d1f;--muted:#5f6368;--bg:#f6f7f9;--card:#fff;--line:#d9dce1;
--accent:#1a56db;--danger:#b42318;--warn-bg:#fff7e6;--warn:#7a4b00}
@media (prefers-color-scheme:dark){:root{--fg:#ececf1;--muted:#a9adb6;--bg:#15171a;--card:#1f2227;
--line:#363a41;--accent:#7aa2ff;--danger:#ff7b6e;--warn-bg:#33290f;--warn:#f3d27a}}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg);overflow-wrap:break-word}main{max-width:40rem;margin:2rem auto;padding:0 1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:1.5rem}
h1{font-size:1.4rem;margin:0 0 1rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
p{margin:.5rem 0}.muted{color:var(--muted);font-size:.92rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:1rem 0}dt{color:var(--muted)}
dd{margin:0}.tag{font-size:.8rem;border:1px solid var(--line);border-radius:6px;white-space:nowrap;
padding:0 .35rem;margin-left:.35rem;color:var(--muted)}
.id{font:.8rem ui-monospace,SFMono-Regular,Menlo,monospace;white-space:nowrap;color:var(--muted)}
.brand{display:flex;align-items:center;gap:.6rem;margin:0 0 1rem;font-weight:600}
.brand img{height:2rem;width:auto;max-width:10rem}header strong{overflow-wrap:anywhere}
.note{background:var(--warn-bg);color:var(--warn);border-radius:8px;padding:.75rem 1rem;margin:1rem 0}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.25rem}form{margin:0}
button,.button{font:inherit;border-radius:8px;padding:.6rem 1.1rem;border:1px solid var(--line);
background:var(--card);color:var(--fg);cursor:pointer;text-decoration:none;display:inline-block}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.danger{color:var(--danger);border-color:var(--danger)}
button:focus-visible,a:focus-visible,input:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
input[type=email]{font:inherit;width:100%;padding:.55rem .7rem;border:1px solid var(--line);border-radius:8px;
background:var(--bg);color:var(--fg)}label{display:block;margin:.75rem 0 .35rem}
.code{font:600 2.4rem/1.2 ui-monospace,SFMono-Regular,Menlo,monospace;letter-spacing:.3rem;text-align:center;
padding:1rem;border:2px dashed var(--accent);border-radius:12px;margin:1rem 0}
header{display:flex;justify-content:space-between;align-items:center;gap:1rem;margin-bottom:1rem;flex-wrap:wrap}
ul.grants{list-style:none;padding:0;margin:0}ul.grants li{border-top:1px solid var(--line);padding:.75rem 0}
.dev{border:2px solid var(--danger);border-radius:8px;padding:.5rem .75rem;color:var(--danger);font-weight:600}
.tag.warn{color:var(--warn);background:var(--warn-bg);border-color:var(--warn);font-weight:600}
.chars{display:block;font-size:.85rem;color:var(--muted);font-weight:400}
.chars code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
@media (max-width:30rem){main{margin:1rem auto}.card{padding:1rem}dl{grid-template-columns:1fr;gap:0}
dd{margin-bottom:.6rem}}
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()  # see style_hash


def human_time(ts: int) -> str:
    """A moment as a person reads it (UTC, named month: no day/month ambiguity)."""
    return time.strftime("%d %b %Y, %H:%M UTC", time.gmtime(ts))


def plural(count: int, word: str) -> str:
    """``1 note``, ``2 notes``: every count the pages show goes through here."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def duration(seconds: float) -> str:
    """A span in the largest whole unit that fits: ``12 minutes``, ``1 hour``, ``3 days``."""
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return plural(seconds // size, unit)
    return "less than a minute"


class Brand(NamedTuple):
    """How every page names the service: its display name (``service_name``) and optional logo."""

    name: str
    logo_url: str | None = None


def style_hash(css: str) -> str:
    return base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()


def security_headers(
    form_targets: Sequence[str] = (), image_origin: str | None = None, styles: Sequence[str] = ()
) -> dict[str, str]:
    """A strict CSP (no scripts at all; images only from the logo's origin, if there is a logo), no framing,
    no caching, no referrer that could carry a secret. ``styles``: more inline stylesheets a page carries
    (the console's), allowed by their hashes like STYLE."""
    form_action = " ".join(["'self'", *form_targets])
    images = f"img-src {image_origin}; " if image_origin else ""
    hashes = " ".join(f"'sha256-{h}'" for h in (STYLE_HASH, *(style_hash(css) for css in styles)))
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src {hashes}; {images}form-action {form_action}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def layout(title: str, body: str, brand: Brand) -> str:
    name = escape(brand.name)
    logo = f'<img src="{escape(brand.logo_url)}" alt="{name} logo">' if brand.logo_url else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · {name}</title><style>{STYLE}</style></head>"
        f'<body><main><p class="brand">{logo}<span>{name}</span></p><div class="card">{body}</div>'
        f'<p class="muted">{name} · agent sign-up and claims</p></main></body></html>'
    )


def landing(brand: Brand, auth_md_url: str, account_url: str) -> str:
    """``/``: what this service is, for a person who opens its address (agents read ``/auth.md``)."""
    name = escape(brand.name)
    body = (
        f"<h1>{name}</h1>"
        f"<p>{name} lets AI agents sign themselves up. An agent gets a temporary account at once, with "
        "limited rights, and a person can claim it later to keep it.</p>"
        f'<p>Agents: the contract is at <a href="{escape(auth_md_url)}">{escape(auth_md_url)}</a>.</p>'
        f'<p>People: <a href="{escape(account_url)}">your agents and accounts</a> (sign-in required).</p>'
    )
    return layout(brand.name, body, brand)


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def form(action: str, csrf: str, label: str, css: str = "", fields: dict[str, str] | None = None) -> str:
    hidden = "".join(_hidden(k, v) for k, v in (fields or {}).items())
    klass = f' class="{css}"' if css else ""
    return (
        f'<form method="post" action="{escape(action)}">{_hidden("csrf", csrf)}{hidden}'
        f'<button type="submit"{klass}>{escape(label)}</button></form>'
    )


def signed_in_header(base: str, email: str, csrf: str, *, switch: bool = False) -> str:
    fields = {"return_to": "/claim"} if switch else {}
    out = form(base + ep.LOGOUT, csrf, "Switch account" if switch else "Sign out", fields=fields)
    return f"<header><span>Signed in as <strong>{escape(email)}</strong></span>{out}</header>"


def dev_sign_in(base: str, brand: Brand, csrf: str, return_to: str) -> str:
    body = (
        "<h1>Development sign-in</h1>"
        '<p class="dev" role="note">Development mode: this is not a real sign-in. Any email is accepted. '
        "Configure an OpenID Connect provider before real people use this service.</p>"
        f'<form method="post" action="{escape(base + ep.DEV_LOGIN)}">{_hidden("csrf", csrf)}'
        f'{_hidden("return_to", return_to)}<label for="email">Email</label>'
        '<input id="email" name="email" type="email" autocomplete="email" required>'
        '<div class="actions"><button class="primary" type="submit">Continue</button></div></form>'
    )
    return layout("Sign in", body, brand)


class AgentText(NamedTuple):
    """An agent's self-chosen text as HTML: the text itself, its warning tag and its exact characters."""

    text: str
    warning: str = ""
    characters: str = ""

    @property
    def flagged(self) -> bool:
        return bool(self.warning)


def agent_text(value: str) -> AgentText:
    """Plain printable ASCII as it is; anything else flagged as look-alike with its code points beside
    it (app/text.py says why every non-ASCII character), so ``✔ Verified`` cannot pass for a badge nor
    ``\\u0410pple`` (a Cyrillic A) for Apple. ``<bdi>`` keeps right-to-left text from reordering what follows it."""
    seen = shown(value)
    if not seen.flagged:
        return AgentText(escape(value))
    drawn = (
        f"<bdi>{escape(seen.text)}</bdi>"
        if seen.text is not None
        else '<span class="muted">(not drawn: it holds invisible characters)</span>'
    )
    return AgentText(
        drawn,
        '<span class="tag warn">look-alike characters</span>',
        f'<span class="chars">Exact characters: <code>{escape(seen.escaped)}</code> '
        f"({escape(', '.join(seen.code_points))})</span>",
    )


LOOKALIKE_ADVICE = (
    "The agent's name or platform holds characters beyond plain ASCII. They can imitate other letters, "
    "words or badges (a Cyrillic letter can look Latin; a check mark can pose as a verified badge): read "
    "the exact characters listed before you trust it."
)


@dataclass(frozen=True, slots=True)
class ClaimDetails:
    registration_id: str
    kind: str  # "anonymous" | "service_auth" | "identity_assertion"
    agent_name: str | None
    agent_platform: str | None
    provider: str | None  # display name of an ID-JAG provider asking to link
    created_at: str
    source: str | None
    scopes_now: Sequence[str]
    scopes_after: Sequence[str]
    quota_now: int | None
    quota_after: int | None
    expires_at: str | None
    first_link: bool
    age: str = ""  # how long ago the agent registered, in words ("12 minutes")
    time_left: str | None = None  # how long until an unclaimed temporary account is deleted, in words


def claim_ready(base: str, brand: Brand, email: str, csrf: str, d: ClaimDetails, attempt_ref: str) -> str:
    """The review page; both buttons name the attempt shown (``attempt_ref``), so they act on exactly it."""
    vouched = d.provider is not None
    tag = "" if vouched else '<span class="tag">unverified</span>'

    name, platform = (agent_text(v) if v else None for v in (d.agent_name, d.agent_platform))

    def value(v: AgentText | None) -> str:
        return f"{v.text}{tag}{v.warning}{v.characters}" if v else '<span class="muted">not given</span>'

    rows = [("Registration", f'<code class="id">{escape(d.registration_id)}</code>')]
    if d.provider:
        rows.append(("Provider", f"{escape(d.provider)} (vouched for this agent's user)"))
    rows += [
        ("Agent name", value(name)),
        ("Agent platform", value(platform)),
        ("Registered", escape(d.created_at) + (f" from {escape(d.source)}" if d.source else "")),
        ("Scopes now", escape(" ".join(d.scopes_now)) or '<span class="muted">none</span>'),
        ("Scopes after", escape(" ".join(d.scopes_after))),
    ]
    if d.quota_now is not None and d.quota_after is not None:
        rows.append(("Notes quota", f"{d.quota_now} → {d.quota_after}"))
    if d.expires_at:
        rows.append(("Deleted if unclaimed", escape(d.expires_at)))
    details = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    advisories = []
    if any(v is not None and v.flagged for v in (name, platform)):
        advisories.append(LOOKALIKE_ADVICE)
    if d.first_link:
        advisories.append(f"This is the first time {escape(d.provider or 'this provider')} links to your account.")
    advisories.append(
        "Only authorize an agent you started yourself. You will get a code: share it only with that agent, "
        "never with a person or a website that asks for it."
    )
    notes = "".join(f'<p class="note" role="note">{a}</p>' for a in advisories)
    question = "Link this agent to your account?" if d.kind == "identity_assertion" else "Authorize this agent?"
    body = (
        signed_in_header(base, email, csrf)
        + f"<h1>{question}</h1>"
        + (summary := _claim_summary(d, name))
        + f"<p>{'It' if summary else 'An agent'} asks to make this account yours. After you authorize, it works "
        "for you with the scopes below, and its limits lift.</p>"
        + f"<dl>{details}</dl>{notes}"
        + '<div class="actions">'
        + form(base + ep.CLAIM_CONFIRM, csrf, "Authorize", "primary", {"attempt": attempt_ref})
        + form(base + ep.CLAIM_DENY, csrf, "This wasn't me", "danger", {"attempt": attempt_ref})
        + "</div>"
    )
    return layout("Authorize this agent?", body, brand)


def _claim_summary(d: ClaimDetails, name: AgentText | None) -> str:
    """The account in words: who made it, how long ago, and how long it has left if nobody claims it."""
    if not d.age or d.kind == "identity_assertion":
        return ""
    who = f"An agent calling itself <strong>{name.text}</strong>" if name else "An unnamed agent"
    said = f"<p>{who} created a temporary account here {escape(d.age)} ago."
    if d.time_left:
        said += f" Unless you claim it, it is deleted with everything in it in {escape(d.time_left)}."
    return said + "</p>"


def code_shown(base: str, brand: Brand, email: str, csrf: str, code: str, minutes: int) -> str:
    spaced = f"{code[:3]} {code[3:]}"
    body = (
        signed_in_header(base, email, csrf)
        + "<h1>Your code</h1>"
        + "<p>Read this code back to the agent that asked. It works once and expires in "
        + f"{plural(minutes, 'minute')}.</p>"
        + f'<p class="code" aria-label="code {" ".join(code)}">{escape(spaced)}</p>'
        + '<p class="note" role="note">Share it only with an agent you started yourself.</p>'
        + f'<p><a href="{escape(base + ep.ACCOUNT)}">Your agents and accounts</a></p>'
    )
    return layout("Your code", body, brand)


def mask_email(email: str) -> str:
    """Enough for the intended person to recognise their address, not enough to learn someone else's."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


def wrong_account(base: str, brand: Brand, email: str, csrf: str, hint: str) -> str:
    # The agent chose this address: what the mask leaves visible is flagged as an agent's name would be.
    local, _, domain = hint.partition("@")
    visible = agent_text(f"{local[:1]}@{domain}")
    body = (
        signed_in_header(base, email, csrf, switch=True)
        + "<h1>Wrong account</h1>"
        + f"<p>This request is meant for <strong><bdi>{escape(mask_email(hint))}</bdi></strong>{visible.warning}, "
        + f"but you are signed in as <strong>{escape(email)}</strong>.{visible.characters}</p>"
        + "<p>Switch account to continue, or close this page if the request is not for you.</p>"
        + '<div class="actions">'
        + form(base + ep.LOGOUT, csrf, "Switch account", "primary", {"return_to": "/claim"})
        + "</div>"
    )
    return layout("Wrong account", body, brand)


def message(brand: Brand, title: str, text: str, *, link: tuple[str, str] | None = None) -> str:
    extra = f'<p><a href="{escape(link[0])}">{escape(link[1])}</a></p>' if link else ""
    return layout(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>{extra}", brand)


@dataclass(frozen=True, slots=True)
class GrantRow:
    """One agent's grant as the account page says it."""

    account_id: str
    registration_id: str
    agent: str
    how: str  # in words: "claimed by you", "linked by an agent platform"
    scopes: str
    status: str  # "active" | "revoked" | "waiting for you"
    created: str  # in words and exactly: "12 minutes ago (04 Dec 2026, 20:12 UTC)"


@dataclass(frozen=True, slots=True)
class AccountView:
    """One account as the account page says it: a title and a sentence first, the id after."""

    account_id: str
    title: str
    summary: str
    grants: Sequence[GrantRow]


def _grant(base: str, csrf: str, g: GrantRow) -> str:
    action = ""
    if g.status == "active":
        fields = {"account_id": g.account_id, "registration_id": g.registration_id}
        action = form(base + ep.ACCOUNT_REVOKE, csrf, "Revoke…", "danger", fields)
    agent = agent_text(g.agent)
    return (
        f'<li><strong>{agent.text}</strong>{agent.warning} <span class="tag">{escape(g.how)}</span> '
        f'<span class="tag">{escape(g.status)}</span>{agent.characters or "<br>"}'
        f'<span class="muted">Registered {escape(g.created)} · {escape(g.scopes)}</span><br>'
        f'<code class="id">{escape(g.registration_id)}</code>{action}</li>'
    )


def account_page(base: str, brand: Brand, email: str, csrf: str, accounts: Sequence[AccountView]) -> str:
    parts = [signed_in_header(base, email, csrf), "<h1>Your agents and accounts</h1>"]
    if not accounts:
        parts.append(
            "<p>No agents yet. When an agent you started asks you to claim its account, open the link it shows "
            "you: once you authorize, the account and the agent are listed here.</p>"
        )
    for a in accounts:
        parts.append(
            f"<h2>{escape(a.title)}</h2><p>{escape(a.summary)}</p>"
            f'<p class="muted">Account <code class="id">{escape(a.account_id)}</code></p>'
        )
        if not a.grants:
            parts.append('<p class="muted">No agents.</p>')
            continue
        parts.append('<ul class="grants">' + "".join(_grant(base, csrf, g) for g in a.grants) + "</ul>")
    return layout("Your agents and accounts", "".join(parts), brand)


def revoke_confirm(base: str, brand: Brand, email: str, csrf: str, g: GrantRow) -> str:
    """The second step of Revoke: nothing is revoked until this page's button is pressed."""
    agent = agent_text(g.agent)
    fields = {"account_id": g.account_id, "registration_id": g.registration_id}
    body = (
        signed_in_header(base, email, csrf)
        + "<h1>Revoke this agent?</h1>"
        + f"<p><strong>{agent.text}</strong>{agent.warning}{agent.characters} loses access at once: every token "
        "issued to it stops working and it cannot get new ones. This cannot be undone. The account and "
        "its notes stay yours.</p>"
        + f'<p class="muted">Registered {escape(g.created)} · <code class="id">{escape(g.registration_id)}</code></p>'
        + '<div class="actions">'
        + form(base + ep.ACCOUNT_REVOKE_CONFIRM, csrf, "Revoke access", "danger", fields)
        + f'<a class="button" href="{escape(base + ep.ACCOUNT)}">Cancel</a>'
        + "</div>"
    )
    return layout("Revoke this agent?", body, brand)


@dataclass(frozen=True, slots=True)
class ConsentView:
    """What an OAuth client's authorization request asks, as the consent page says it."""

    request_id: str
    client_name: str
    client_id: str
    client_kind: str  # "metadata_document" | "registered" | "dynamic"
    redirect_to: str  # where the answer goes: the redirect URI's host (or scheme, for an app's own scheme)
    local_only: bool
    scopes: Sequence[str]
    resource: str
    refresh: bool
    replaces: bool  # the human already authorized this client: this approval replaces that one
    kept: Sequence[str] = ()  # scopes that earlier approval allowed, kept through this one


SCOPE_WORDS = {
    "notes:read": "read your notes",
    "notes:write": "create notes",
    "notes:delete": "delete your notes",
    "offline_access": "stay connected when you are away (a refresh token)",
}


def consent(base: str, brand: Brand, email: str, csrf: str, v: ConsentView) -> str:
    """The consent page: who asks (the client's name with where the answer goes: a name alone proves
    nothing), what it may do, on which resource; approving and denying both name the request."""
    name = agent_text(v.client_name)
    where = {
        "registered": "a registered client of this service",
        "dynamic": "registered itself: unverified",
    }.get(v.client_kind) or f"described by {escape(urlsplit_host(v.client_id))}"

    def listed(names: Sequence[str]) -> str:
        return "".join(f'<li>{escape(SCOPE_WORDS.get(s, s))} <code class="id">{escape(s)}</code></li>' for s in names)

    asked = [s for s in v.scopes if s not in v.kept]
    scopes = listed(asked) or "<li>nothing more than before</li>"
    kept = f"<p>It keeps what you allowed before:</p><ul>{listed(v.kept)}</ul>" if v.kept else ""
    rows = [
        ("Application", f'{name.text}{name.warning}{name.characters} <span class="tag">{where}</span>'),
        ("Client ID", f'<code class="id">{escape(v.client_id)}</code>'),
        ("Sends you back to", f"<strong>{escape(v.redirect_to)}</strong>"),
        ("Resource", f'<code class="id">{escape(v.resource)}</code>'),
    ]
    details = "".join(f"<dt>{k}</dt><dd>{val}</dd>" for k, val in rows)
    advisories = []
    if name.flagged:
        advisories.append(LOOKALIKE_ADVICE)
    if v.local_only:
        advisories.append(
            "This application runs on your own computer (it receives the answer on localhost). Its name is "
            "whatever it says it is: only continue if you started it yourself just now."
        )
    if v.replaces:
        advisories.append("You connected this application before: this replaces that connection.")
    notes = "".join(f'<p class="note" role="note">{a}</p>' for a in advisories)
    fields = {"request": v.request_id}
    body = (
        signed_in_header(base, email, csrf)
        + f"<h1>Connect {name.text} to your account?</h1>"
        + f"<dl>{details}</dl>"
        + f"<p>It asks to:</p><ul>{scopes}</ul>{kept}"
        + (
            '<p class="muted">It keeps access until you revoke it on your account page.</p>'
            if v.refresh
            else '<p class="muted">Its access lasts until its token expires.</p>'
        )
        + notes
        + '<div class="actions">'
        + form(base + ep.CONSENT, csrf, "Allow", "primary", {**fields, "decision": "approve"})
        + form(base + ep.CONSENT, csrf, "Deny", "danger", {**fields, "decision": "deny"})
        + "</div>"
    )
    return layout("Connect an application?", body, brand)


def urlsplit_host(url: str) -> str:
    return urlsplit(url).netloc or url
