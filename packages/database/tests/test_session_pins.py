"""Session pins: stored so that every instance keeps a session on one account."""

from __future__ import annotations

from better_ccflare.core import SessionPin
from better_ccflare.database import Store

from .builders import T0


def pin(account_id: str, expires_at_ms: int, session_id: str = "s") -> SessionPin:
    return SessionPin(session_id=session_id, account_id=account_id, expires_at_ms=expires_at_ms)


async def test_a_stored_pin_is_read_back_until_it_expires(store: Store) -> None:
    store.session_pins.save_nowait(pin("a", T0 + 100), T0)
    await store.flush()
    assert await store.session_pins.list_live(T0 + 99) == [pin("a", T0 + 100)]
    assert await store.session_pins.list_live(T0 + 100) == []


async def test_the_pin_that_runs_longer_stays_whatever_the_order(store: Store) -> None:
    store.session_pins.save_nowait(pin("a", T0 + 200), T0)
    store.session_pins.save_nowait(pin("b", T0 + 100), T0)  # shorter: ignored
    store.session_pins.save_nowait(pin("c", T0 + 300, "other"), T0)
    store.session_pins.save_nowait(pin("b", T0 + 300, "other"), T0)  # equal end: greater id
    await store.flush()
    live = sorted(await store.session_pins.list_live(T0), key=lambda p: p.session_id)
    assert live == [pin("c", T0 + 300, "other"), pin("a", T0 + 200)]


async def test_storing_a_pin_forgets_the_expired_ones(store: Store) -> None:
    store.session_pins.save_nowait(pin("a", T0 + 100, "old"), T0)
    store.session_pins.save_nowait(pin("a", T0 + 1000, "new"), T0 + 100)
    await store.flush()
    assert await store.session_pins.list_live(0) == [pin("a", T0 + 1000, "new")]
