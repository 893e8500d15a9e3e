"""Session pins: shared sparingly, and copies that hear the same pins agree, in any order."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.load_balancer import SessionAffinityStrategy, SessionPins

from .builders import NOW, SESSION, account, ids, request

MINUTE = 60_000


def sharing() -> tuple[SessionPins, list[tuple[str, str, int]]]:
    """Pins, and what they shared."""
    told: list[tuple[str, str, int]] = []
    pins = SessionPins(
        share=lambda session, account_id, until: told.append((session, account_id, until))
    )
    return pins, told


def test_a_new_pin_is_shared_and_its_extensions_only_past_a_minute() -> None:
    pins, told = sharing()

    pins.pin("s", "a", NOW + SESSION)
    pins.pin("s", "a", NOW + SESSION + MINUTE - 1)  # the others' copy is close enough
    pins.pin("s", "a", NOW + SESSION + MINUTE)

    assert told == [("s", "a", NOW + SESSION), ("s", "a", NOW + SESSION + MINUTE)]
    assert pins.live("s", NOW + SESSION + MINUTE - 1) == "a"


def test_a_pin_moved_to_another_account_is_shared_at_once() -> None:
    pins, told = sharing()
    pins.pin("s", "a", NOW)
    pins.pin("s", "b", NOW + 1)
    assert told == [("s", "a", NOW), ("s", "b", NOW + 1)]


def test_an_adopted_pin_is_kept_to_and_not_shared_back() -> None:
    pins, told = sharing()
    strategy = SessionAffinityStrategy(pins=pins)
    pins.adopt("s", "b", NOW + SESSION)  # another instance pinned the session to "b"

    selection = strategy.select([account("a"), account("b")], request(session_id="s"))

    assert ids(selection)[0] == "b"
    assert told == []  # extended by nothing the others need to hear


def test_a_pin_that_runs_shorter_is_not_adopted() -> None:
    pins = SessionPins()
    pins.pin("s", "a", NOW + SESSION)
    pins.adopt("s", "b", NOW + SESSION - 1)
    assert pins.live("s", NOW) == "a"


pin_values = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(NOW, NOW + 5))


@given(st.lists(pin_values, min_size=1, max_size=6), st.randoms())
def test_copies_that_hear_the_same_pins_in_any_order_agree(
    heard: list[tuple[str, int]], order: random.Random
) -> None:
    first, second = SessionPins(), SessionPins()
    shuffled = list(heard)
    order.shuffle(shuffled)
    for account_id, expires in heard:
        first.adopt("s", account_id, expires)
    for account_id, expires in shuffled:
        second.adopt("s", account_id, expires)
    assert first.live("s", NOW - 1) == second.live("s", NOW - 1)
