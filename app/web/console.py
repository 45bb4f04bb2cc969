"""The operator console's HTML: the human pages' stylesheet and helpers (app/web/pages.py) plus one
stylesheet of its own (wider pages, a chart grid; allowed by its hash like the other), no script.
Every value is escaped; every form carries the session's CSRF token; agents' self-chosen names go
through ``pages.agent_text`` (look-alike characters flagged, as on the claim page)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from app import endpoints as ep
from app.flows import console as flows
from app.flows.admin import views
from app.flows.admin.webhooks import EndpointView
from app.web import charts, pages
from app.web.pages import Brand

CONSOLE_STYLE = """
main.console{max-width:72rem}.console .card{padding:1rem 1.25rem}
nav.tabs{display:flex;flex-wrap:wrap;gap:.25rem 1rem;margin:0 0 1rem}nav.tabs a[aria-current]{font-weight:700}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,28rem),1fr));gap:1rem}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.75rem;margin:1rem 0}
.tile{border:1px solid var(--line);border-radius:8px;padding:.5rem .75rem}.tile strong{display:block;font-size:1.5rem}
figure.chart{margin:0;border:1px solid var(--line);border-radius:8px;padding:.5rem .75rem}
figure.chart svg{width:100%;height:auto;display:block}figcaption{font-weight:600;margin-bottom:.25rem}
svg text{font:13px system-ui,sans-serif;fill:var(--muted)}svg text.empty{font-size:15px}
svg text.value{fill:var(--fg)}svg line.grid{stroke:var(--line);stroke-width:1}
.t0{fill:#1a56db;stroke:#1a56db}.t1{fill:#0e9f6e;stroke:#0e9f6e}.t2{fill:#c27803;stroke:#c27803}
.t3{fill:#b42318;stroke:#b42318}.t4{fill:#7e3af2;stroke:#7e3af2}.t5{fill:#6b7280;stroke:#6b7280}
polyline.line{fill:none;stroke-width:2.5}
@media (max-width:40rem){svg text{font-size:24px}svg text.empty{font-size:26px}}
ul.legend{list-style:none;padding:0;margin:.25rem 0 0;display:flex;flex-wrap:wrap;gap:.15rem 1rem;font-size:.88rem}
.key{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.35rem;vertical-align:-.05rem}
span.key.t0{background:#1a56db}span.key.t1{background:#0e9f6e}span.key.t2{background:#c27803}
span.key.t3{background:#b42318}span.key.t4{background:#7e3af2}span.key.t5{background:#6b7280}
table{border-collapse:collapse;width:100%;font-size:.92rem}th,td{text-align:left;padding:.35rem .5rem;
border-top:1px solid var(--line);vertical-align:top}.scroll{overflow-x:auto}
input[type=search]{font:inherit;width:100%;padding:.55rem .7rem;border:1px solid var(--line);border-radius:8px;
background:var(--bg);color:var(--fg)}div.search{display:flex;gap:.5rem;align-items:center}
ol.timeline{list-style:none;padding:0;margin:0}ol.timeline li{border-top:1px solid var(--line);padding:.5rem 0}
ol.timeline code{display:block;font:.8rem ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere;
color:var(--muted)}
"""
TABS = (("Overview", ep.CONSOLE), ("Search", ep.CONSOLE_SEARCH), ("Providers", ep.CONSOLE_PROVIDERS))
DEV_BANNER = (
    "Development mode with no console_admins: everyone signed in with the development sign-in is an "
    "operator here. List the operators' emails in console_admins before real people use this service."
)


class Frame:
    """What every console page shows around its content: the service, the tabs, who is signed in."""

    def __init__(self, base: str, brand: Brand, email: str, csrf: str, *, dev_open: bool) -> None:
        self.base, self.brand, self.email, self.csrf, self.dev_open = base, brand, email, csrf, dev_open

    def page(self, title: str, body: str, current: str | None = None) -> str:
        tabs = "".join(
            f'<a href="{escape(self.base + path)}"{" aria-current=page" if path == current else ""}>{name}</a>'
            for name, path in TABS
        )
        banner = f'<p class="dev" role="note">{escape(DEV_BANNER)}</p>' if self.dev_open else ""
        name = escape(self.brand.name)
        logo = f'<img src="{escape(self.brand.logo_url)}" alt="{name} logo">' if self.brand.logo_url else ""
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)} · Console · {name}</title><style>{pages.STYLE}</style>"
            f"<style>{CONSOLE_STYLE}</style></head>"
            f'<body><main class="console"><p class="brand">{logo}<span>{name} · console</span></p>'
            f'{pages.signed_in_header(self.base, self.email, self.csrf)}<nav class="tabs">{tabs}</nav>{banner}'
            f'<div class="card">{body}</div></main></body></html>'
        )

    def form(self, path: str, label: str, css: str, fields: dict[str, str]) -> str:
        return pages.form(self.base + path, self.csrf, label, css, fields)


def refused(brand: Brand, email: str, base: str, csrf: str, closed: bool) -> str:
    """The 403 page: a signed-in person who is not an operator, or a console nobody may use yet."""
    if closed:
        text = (
            "The console is closed: no operator is configured. List the operators' emails in the "
            "console_admins setting (AUTHMD_CONSOLE_ADMINS) and restart."
        )
    else:
        text = f"{email} is not an operator of this service. Sign in with an operator's account."
    body = (
        pages.signed_in_header(base, email, csrf)
        + f"<h1>Not an operator</h1><p>{escape(text)}</p>"
        + f'<p><a href="{escape(base + ep.ACCOUNT)}">Your agents and accounts</a></p>'
    )
    return pages.layout("Not an operator", body, brand)


def _window_links(frame: Frame, current: str) -> str:
    links = []
    for name in flows.WINDOWS:
        href = escape(f"{frame.base}{ep.CONSOLE}?{urlencode({'window': name})}")
        mark = " aria-current=page" if name == current else ""
        links.append(f'<a href="{href}"{mark}>last {name}</a>')
    return f'<nav class="tabs" aria-label="Time window">{"".join(links)}</nav>'


def _tile(label: str, value: str) -> str:
    return f'<div class="tile"><span class="muted">{escape(label)}</span><strong>{escape(value)}</strong></div>'


def overview(frame: Frame, o: flows.Overview) -> str:
    w, labels = o.window, o.labels
    registered = sum(sum(v) for v in o.registered.values())
    started, _, completed = (n for _, n in o.funnel)
    conversion = f"{100 * completed / started:.0f}%" if started else "n/a"
    unit = f"per {'minute' if w.step == 1 else pages.duration(w.step * 60)}"
    tiles = (
        _tile("Live temporary accounts", charts.number(o.live_now))
        + _tile(f"Registrations, last {w.name}", charts.number(registered))
        + _tile("Claim conversion", conversion)
        + _tile("Expired unclaimed", charts.number(sum(o.expired)))
    )
    figures = [
        charts.bars(
            "registrations",
            "Registrations by method",
            labels,
            [charts.Series(m, v) for m, v in o.registered.items()]
            + [charts.Series("refused (any method)", o.registration_refused)],
            unit=unit,
        ),
        charts.funnel("funnel", f"Claim funnel, last {w.name} (conversion {conversion})", o.funnel),
        charts.bars("claims", "Claims by stage", labels, [charts.Series(s, v) for s, v in o.claims.items()], unit=unit),
        charts.lines(
            "live",
            "Live temporary accounts (derived)",
            labels,
            [charts.Series("live", o.live)],
            summary=f"Live temporary accounts now: {o.live_now}.",
        ),
        charts.bars("expiries", "Temporary accounts expired", labels, [charts.Series("expired", o.expired)], unit=unit),
        charts.bars(
            "pow",
            "Proof-of-work challenges and refusals",
            labels,
            [charts.Series("challenges", o.pow_challenges), charts.Series("refused", o.pow_refused)],
            unit=unit,
        ),
        charts.lines(
            "difficulty", "Proof-of-work mean difficulty (bits)", labels, [charts.Series("bits", o.pow_mean_bits)]
        ),
        charts.bars("refusals", "Refusals", labels, [charts.Series(k, v) for k, v in o.refused.items()], unit=unit),
        charts.bars(
            "webhooks", "Webhook deliveries", labels, [charts.Series(k, v) for k, v in o.webhooks.items()], unit=unit
        ),
    ]
    body = (
        f"<h1>Overview</h1>{_window_links(frame, w.name)}"
        f'<div class="tiles">{tiles}</div><div class="grid">{"".join(figures)}</div>'
        f"<h2>Webhook endpoints</h2>{_endpoints(o.endpoints)}"
        '<p class="muted">Counts are added to the store every few seconds by each instance; the live '
        "accounts line is derived from the live count now and the registrations and expiries since.</p>"
    )
    return frame.page("Overview", body, ep.CONSOLE)


def _endpoints(found: Sequence[EndpointView]) -> str:
    if not found:
        return '<p class="muted">No webhook endpoints are configured.</p>'
    rows = "".join(
        f"<tr><td>{escape(e.name)}</td><td>{'enabled' if e.enabled else 'disabled'}</td>"
        f"<td>{escape(e.last_success_at or 'never')}</td><td>{escape(e.last_failure_at or 'never')}</td>"
        f"<td>{e.waiting}</td></tr>"
        for e in found
    )
    head = "<tr><th>Endpoint</th><th>State</th><th>Last success</th><th>Last failure</th><th>Waiting</th></tr>"
    return f'<div class="scroll"><table>{head}{rows}</table></div>'


def search(frame: Frame, found: flows.Found | None) -> str:
    value = escape(found.query) if found else ""
    parts = [
        "<h1>Search</h1>",
        f'<form method="get" action="{escape(frame.base + ep.CONSOLE_SEARCH)}" role="search">'
        '<label for="q">Account or registration id, email, or agent name</label><div class="search">'
        f'<input id="q" name="q" type="search" value="{value}" placeholder="acct_…, reg_…, ada@example.com, Docs bot">'
        '<button class="primary" type="submit">Search</button></div></form>',
    ]
    if found is not None and found.query:
        if not found.hits:
            parts.append(f"<p>Nothing found for <strong>{value}</strong>.</p>")
        else:
            items = "".join(_hit(frame, h) for h in found.hits)
            parts.append(f'<h2>{escape(pages.plural(len(found.hits), "match"))}</h2><ul class="grants">{items}</ul>')
        if found.bound:
            parts.append(
                f'<p class="note" role="note">The search stopped at {escape(found.bound)}: there may be more.</p>'
            )
    return frame.page("Search", "".join(parts), ep.CONSOLE_SEARCH)


def account_href(base: str, account_id: str) -> str:
    return f"{base}{ep.CONSOLE_ACCOUNT}?{urlencode({'id': account_id})}"


def _hit(frame: Frame, h: flows.Hit) -> str:
    agent = pages.agent_text(h.agent_name) if h.agent_name else None
    name = f"<strong>{agent.text}</strong>{agent.warning} " if agent else ""
    reg = f' <code class="id">{escape(h.registration_id)}</code>' if h.registration_id else ""
    return (
        f'<li>{name}<span class="muted">{escape(h.why)}</span><br>'
        f'<a href="{escape(account_href(frame.base, h.account_id))}"><code class="id">{escape(h.account_id)}</code></a>'
        f"{reg}</li>"
    )


def account(frame: Frame, a: flows.AccountPage) -> str:
    d = a.detail
    facts = [
        ("Account", f'<code class="id">{escape(d.id)}</code>'),
        ("Kind", escape(d.kind)),
        ("Owner", escape(d.owner_email) if d.owner_email else '<span class="muted">nobody (unclaimed)</span>'),
        ("Created", _when(a.account.created_at, a.now)),
        (
            "Deleted if unclaimed",
            _when(a.account.expires_at, a.now) if a.account.expires_at else "never (not temporary)",
        ),
        ("Notes", f"{d.notes} of {d.quota_notes}"),
    ]
    regs = "".join(_registration(frame, r) for r in d.registrations) or '<li class="muted">No registrations.</li>'
    events = "".join(_event(e) for e in a.events) or '<li class="muted">No events.</li>'
    bound = (
        '<p class="note" role="note">Only the newest events are shown: older ones are in the admin API.</p>'
        if a.events_bound
        else ""
    )
    body = (
        "<h1>Account</h1><dl>"
        + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
        + f'</dl><h2>Registrations</h2><ul class="grants">{regs}</ul>'
        + f'<h2>Events, newest first</h2>{bound}<ol class="timeline">{events}</ol>'
    )
    return frame.page("Account", body)


def _when(at: int, now: float) -> str:
    """A moment in words and exactly: ``12 minutes ago (05 Dec 2026, 21:27 UTC)``, or ``in 48 minutes (…)``."""
    words = f"{pages.duration(now - at)} ago" if at <= now else f"in {pages.duration(at - now)}"
    return f"{escape(words)} ({escape(pages.human_time(at))})"


def _registration(frame: Frame, r: views.RegistrationView) -> str:
    agent = pages.agent_text(r.agent_name or "unnamed agent")
    claim = f" · claim {escape(r.claim.status)}" if r.claim else ""
    action = ""
    if r.status != "revoked":
        fields = {"account_id": r.account_id, "registration_id": r.id}
        action = frame.form(ep.CONSOLE_REVOKE, "Revoke…", "danger", fields)
    return (
        f'<li><strong>{agent.text}</strong>{agent.warning} <span class="tag">{escape(r.type)}</span> '
        f'<span class="tag">{escape(r.status)}</span>{agent.characters or "<br>"}'
        f'<span class="muted">Registered {escape(r.created_at or "n/a")} · '
        f"{escape(' '.join(r.scopes))}{claim}</span><br>"
        f'<code class="id">{escape(r.id)}</code>{action}</li>'
    )


def _event(e: views.EventView) -> str:
    data = json.dumps(e.data, sort_keys=True, ensure_ascii=True)
    reg = f' <span class="id">{escape(e.registration_id)}</span>' if e.registration_id else ""
    when = f'<span class="muted">{escape(e.at)}</span>'
    return f"<li>{when} <strong>{escape(e.type)}</strong>{reg}<code>{escape(data)}</code></li>"


def revoke_confirm(frame: Frame, r: views.RegistrationView) -> str:
    agent = pages.agent_text(r.agent_name or "unnamed agent")
    fields = {"account_id": r.account_id, "registration_id": r.id}
    body = (
        "<h1>Revoke this registration?</h1>"
        f"<p><strong>{agent.text}</strong>{agent.warning}{agent.characters} loses access at once: every token "
        "issued to it stops working and it cannot get new ones. This cannot be undone. The revocation is "
        f"recorded as done by <strong>{escape('console:' + frame.email)}</strong>.</p>"
        f'<p class="muted">Registration <code class="id">{escape(r.id)}</code> of account '
        f'<code class="id">{escape(r.account_id)}</code></p><div class="actions">'
        + frame.form(ep.CONSOLE_REVOKE_CONFIRM, "Revoke", "danger", fields)
        + f'<a class="button" href="{escape(account_href(frame.base, r.account_id))}">Cancel</a></div>'
    )
    return frame.page("Revoke this registration?", body)


def revoked(frame: Frame, account_id: str, registration_id: str, done: bool) -> str:
    said = "is revoked" if done else "was already revoked: nothing changed"
    body = (
        f'<h1>Revoked</h1><p>Registration <code class="id">{escape(registration_id)}</code> {said}.</p>'
        f'<p><a href="{escape(account_href(frame.base, account_id))}">Back to the account</a></p>'
    )
    return frame.page("Revoked", body)


def problem(frame: Frame, title: str, text: str) -> str:
    return frame.page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")


def providers(frame: Frame, rows: Sequence[flows.ProviderRow], untrusted: int) -> str:
    if not rows:
        table = '<p class="muted">No agent identity providers are trusted (the providers setting is empty).</p>'
    else:
        table = (
            '<div class="scroll"><table><tr><th>Provider</th><th>Keys (last fetch)</th><th>Refused, last day</th></tr>'
        )
        table += "".join(_provider(r) for r in rows) + "</table></div>"
    body = (
        f"<h1>Providers</h1>{table}"
        f"<p>ID-JAGs from issuers not on the trust list refused in the last day: <strong>{untrusted}</strong>.</p>"
        '<p class="muted">Keys as this instance fetched them; each instance keeps its own cache.</p>'
    )
    return frame.page("Providers", body, ep.CONSOLE_PROVIDERS)


def _provider(r: flows.ProviderRow) -> str:
    k = r.keys
    if k is None:
        keys = '<span class="muted">not fetched yet by this instance</span>'
    else:
        when = pages.human_time(int(k.fetched_at)) if k.fetched_at is not None else "never fetched successfully"
        failed = ' <span class="tag warn">last fetch failed</span>' if k.failed else ""
        kids = " ".join(f'<code class="id">{escape(kid)}</code>' for kid in k.kids) or "no usable keys"
        keys = f"{escape(when)}{failed}<br>{kids}"
    return (
        f'<tr><td><strong>{escape(r.name)}</strong><br><span class="id">{escape(r.issuer)}</span><br>'
        f'<span class="muted">{escape(r.jwks_url)}</span></td><td>{keys}</td><td>{r.refused_day}</td></tr>'
    )
