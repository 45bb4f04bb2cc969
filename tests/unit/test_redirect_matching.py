"""Redirect URI matching (app/flows/clients.py): exact strings, except a loopback IP literal's port
(RFC 8252 §7.3)."""

from __future__ import annotations

import pytest

from app.flows.clients import Client


def client(*uris: str) -> Client:
    return Client(client_id="c", name="C", redirect_uris=uris, auth_method="none", kind="registered")


@pytest.mark.parametrize(
    ("registered", "presented", "allowed"),
    [
        ("https://app.example/cb", "https://app.example/cb", True),
        ("https://app.example/cb", "https://app.example/cb/", False),
        ("https://app.example/cb", "https://APP.example/cb", False),
        ("https://app.example/cb", "https://app.example:443/cb", False),
        ("https://app.example/cb", "https://app.example/cb?x=1", False),
        ("http://127.0.0.1:5173/cb", "http://127.0.0.1:61000/cb", True),
        ("http://127.0.0.1/cb", "http://127.0.0.1:61000/cb", True),
        ("http://[::1]:5173/cb", "http://[::1]:1/cb", True),
        ("http://127.0.0.1:5173/cb", "http://127.0.0.2:5173/cb", False),
        ("http://127.0.0.1:5173/cb", "http://127.0.0.1:5173/cb2", False),
        ("http://127.0.0.1:5173/cb", "http://127.0.0.1:61000/cb?x=1", False),
        ("http://127.0.0.1:5173/cb", "http://127.0.0.1:61000/cb#f", False),
        ("http://127.0.0.1:5173/cb", "http://u@127.0.0.1:61000/cb", False),
        ("http://127.0.0.1:5173/cb", "http://127.0.0.1:bad/cb", False),
        ("http://localhost:5173/cb", "http://localhost:61000/cb", False),  # a name: exact only
        ("http://localhost:5173/cb", "http://localhost:5173/cb", True),
        ("com.example.app:/cb", "com.example.app:/cb", True),
        ("com.example.app:/cb", "com.example.app:/cb2", False),
    ],
)
def test_redirect_matching(registered: str, presented: str, allowed: bool) -> None:
    assert client(registered).redirect_allowed(presented) is allowed


def test_local_only_means_every_redirect_is_on_this_computer() -> None:
    assert client("http://127.0.0.1:1/cb", "http://localhost/cb").local_only
    assert not client("http://127.0.0.1:1/cb", "https://app.example/cb").local_only
    assert not client("com.example.app:/cb").local_only
