"""transport.* (plain http only on loopback) and cache.* (Cache-Control and ETag on what is fetched)."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.agent.doctor.http import is_loopback
from app.agent.doctor.references import R_CACHE, R_TLS
from app.agent.doctor.session import Doctor


def check_transport(d: Doctor) -> None:
    urls = {"URL": d.url}
    if d.prm is not None:
        urls["resource metadata"] = d.prm.fetched.url
    if d.report.issuer:
        urls["issuer"] = d.report.issuer
    plain = {name: u for name, u in urls.items() if urlsplit(u).scheme == "http"}
    bad = {name: u for name, u in plain.items() if not is_loopback(urlsplit(u).hostname)}
    if bad:
        names = ", ".join(f"{n} {u}" for n, u in bad.items())
        d.add("transport.tls", "fail", f"plain http on a non-loopback host: {names}", R_TLS)
    elif plain:
        d.add("transport.tls", "pass", "plain http only on loopback (dev mode)", R_TLS)
    else:
        d.add("transport.tls", "pass", "https throughout", R_TLS)


def check_caching(d: Doctor) -> None:
    for name, got in d.cached:
        cache_control = got.headers.get("cache-control")
        etag = got.headers.get("etag")
        missing = [h for h, v in (("Cache-Control", cache_control), ("ETag", etag)) if not v]
        if missing:
            have = f"; Cache-Control: {cache_control}" if cache_control else ""
            d.add(f"cache.{name}", "warn", f"{got.url}: no {' and no '.join(missing)}{have}", R_CACHE)
        else:
            d.add(f"cache.{name}", "pass", f"Cache-Control: {cache_control}; ETag present", R_CACHE)
