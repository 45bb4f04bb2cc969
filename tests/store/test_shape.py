"""The store's shape: ``Store`` is exactly the composition of the narrow ports, and each adapter keeps a
port's methods in that port's own module (Upkeep in the adapter's base), with the port's parameters.
Read from the classes (no backend is opened)."""

from __future__ import annotations

import inspect

import pytest

from app.store import port
from app.store.redis import RedisStore
from app.store.sqlite import SQLiteStore

PORTS = {
    port.Upkeep: "base",
    port.Limits: "limits",
    port.Marks: "marks",
    port.Grants: "grants",
    port.People: "people",
    port.Claims: "claims",
    port.Notes: "notes",
    port.Events: "events",
    port.Counters: "counters",
}


def _methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items() if inspect.iscoroutinefunction(value)}


def test_store_is_the_composition_of_the_narrow_ports_and_adds_nothing():
    assert not _methods(port.Store)
    assert set(port.Store.__mro__) >= set(PORTS)
    names = [name for p in PORTS for name in _methods(p)]
    assert len(names) == len(set(names)), "a method belongs to one port"


@pytest.mark.parametrize("adapter", [SQLiteStore, RedisStore], ids=["sqlite", "redis"])
@pytest.mark.parametrize("narrow", list(PORTS), ids=lambda p: p.__name__)
def test_each_adapter_keeps_a_ports_methods_in_that_ports_module(adapter: type, narrow: type) -> None:
    package = adapter.__module__
    for name in _methods(narrow):
        implementation = getattr(adapter, name)
        assert implementation.__module__ == f"{package}.{PORTS[narrow]}", name
        wanted = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(narrow, name)).parameters.values()]
        found = [(p.name, p.kind, p.default) for p in inspect.signature(implementation).parameters.values()]
        assert found == wanted, name
