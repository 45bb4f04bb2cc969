"""jwks.*: the published JWK set: public asymmetric signing keys only, each with a kid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.agent.doctor.http import Problem, http_url, short
from app.agent.doctor.references import R_JWKS, R_JWKS_PRIVATE
from app.agent.doctor.report import Status, worst
from app.agent.doctor.session import Doctor

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
KNOWN_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519"}
)
KEY_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}


def check_jwks(d: Doctor) -> None:
    assert d.as_meta is not None
    if "jwks_uri" not in d.as_meta.doc:
        return
    try:
        url = http_url(d.as_meta.doc["jwks_uri"])
        got, doc = d.http.get_json(url)
    except Problem as exc:
        d.add("jwks.fetch", "fail", str(exc), R_JWKS)
        return
    d.cached.append(("jwks", got))
    keys = doc.get("keys")
    if not isinstance(keys, list):
        d.add("jwks.fetch", "fail", f"{url}: no keys list", R_JWKS)
        return
    if not keys:
        d.add("jwks.fetch", "fail", f"{url}: the keys list is empty (nothing can be verified)", R_JWKS)
        return
    d.add("jwks.fetch", "pass", f"{url}: {len(keys)} key(s)", R_JWKS)

    findings: list[tuple[Status, str]] = []
    private: list[str] = []
    kids: list[str] = []
    for i, key in enumerate(keys):
        label = f"keys[{i}]"
        if not isinstance(key, dict):
            findings.append(("fail", f"{label} is not an object"))
            continue
        private += [f"{label}.{m}" for m in PRIVATE_MEMBERS if m in key]
        findings += list(_key_findings(label, key))
        if isinstance(key.get("kid"), str):
            kids.append(key["kid"])
    if len(set(kids)) != len(kids):
        findings.append(("warn", "duplicate kid values"))
    if findings:
        d.add("jwks.keys", worst(s for s, _ in findings), "; ".join(m for _, m in findings), R_JWKS)
    else:
        d.add("jwks.keys", "pass", "every key has kty, kid and a sane use/alg", R_JWKS)
    if private:
        d.add("jwks.private", "fail", f"private key material published: {', '.join(private)}", R_JWKS_PRIVATE)
    else:
        d.add("jwks.private", "pass", "public members only", R_JWKS_PRIVATE)


def _key_findings(label: str, key: dict[str, Any]) -> Iterator[tuple[Status, str]]:
    kty = key.get("kty")
    if not isinstance(kty, str):
        yield "fail", f"{label} has no kty"
        return
    if kty == "oct":
        yield "fail", f"{label} is a symmetric oct key (a shared secret has no place in a public JWKS)"
        return
    if kty not in KEY_MEMBERS:
        yield "warn", f"{label} has an unusual kty {short(kty)}"
    else:
        missing = [m for m in KEY_MEMBERS[kty] if not isinstance(key.get(m), str)]
        if missing:
            yield "fail", f"{label} ({kty}) lacks {', '.join(missing)}"
    if not isinstance(key.get("kid"), str) or not key.get("kid"):
        yield "warn", f"{label} has no kid (verifiers cannot pick it during a rotation)"
    use = key.get("use")
    if use is not None and use != "sig":
        yield "warn", f"{label} use is {short(use)}, not sig"
    alg = key.get("alg")
    if alg is not None:
        if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
            yield "fail", f"{label} alg {short(alg)} is not an asymmetric signature algorithm"
        elif alg not in KNOWN_ALGS:
            yield "warn", f"{label} has an unknown alg {short(alg)}"
