"""The event catalogue (app/events.py): closed, round-trips, sortable unique ids, and no field that
could carry a secret."""

from __future__ import annotations

import typing

import msgspec
import pytest

from app import events as ev

# Names a secret would go by (tokens, codes, keys, hashes of them, links that embed them).
SECRETISH = ("token", "secret", "code", "hash", "key", "password", "assertion", "link", "uri", "url", "cookie")
# The types a payload field may have: plain facts, no free-form blobs a secret could hide in.
PLAIN = {str, int, float, bool, type(None)}


def _leaves(tp: object) -> set[object]:
    """The concrete types a field annotation allows (through unions, Literals and tuples)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return {type(v) for v in typing.get_args(tp)}
    if origin in (typing.Union, tuple) or str(origin) == "<class 'types.UnionType'>":
        return set().union(*(_leaves(a) for a in typing.get_args(tp) if a is not Ellipsis))
    return {tp}


@pytest.mark.parametrize("cls", ev.EVENT_TYPES, ids=lambda c: c.__name__)
def test_no_field_can_hold_a_secret(cls: type[msgspec.Struct]) -> None:
    hints = typing.get_type_hints(cls, include_extras=False, globalns=vars(ev))
    for name, tp in hints.items():
        assert not any(word in name.lower() for word in SECRETISH), f"{cls.__name__}.{name}"
        assert _leaves(tp) <= PLAIN, f"{cls.__name__}.{name}: {tp}"


def test_the_catalogue_is_closed_and_every_type_round_trips() -> None:
    tags = [c.__struct_config__.tag for c in ev.EVENT_TYPES]
    assert len(set(tags)) == len(tags) == len(typing.get_args(ev.Event))
    deleted = ev.new(ev.AccountDeleted, 1_800_000_000.25, "acct_1", "reg_1", by="agent", registrations=1, notes=2)
    assert ev.decode(ev.encode(deleted)) == deleted
    assert ev.type_of(deleted) == "agent_registration.deleted"
    with pytest.raises(msgspec.ValidationError):
        ev.decode(b'{"type":"account.renamed","id":"evt_x","at":1.0,"account_id":"a"}')
    with pytest.raises(msgspec.ValidationError):  # a closed set of values too
        ev.decode(ev.encode(deleted).replace(b'"agent"', b'"someone"'))


def test_ids_are_unique_sort_by_time_and_grow_within_a_process() -> None:
    base = 4_000_000_000.0  # later than any time other tests in this process used (ids only grow)
    ids = [ev.new_event_id(base) for _ in range(1000)]
    assert len(set(ids)) == 1000 and ids == sorted(ids)
    later = ev.new_event_id(base + 1)
    assert later > ids[-1] and ev.ms_of(later) == 4_000_000_001_000
    assert ev.new_event_id(base - 10**8) > later  # a clock stepping back never sorts before
