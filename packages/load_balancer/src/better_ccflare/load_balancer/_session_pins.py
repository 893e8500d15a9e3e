"""Which account each client session keeps to: the ``session-affinity`` strategy's memory.

Kept apart from the strategy so that it outlives a strategy switch and can be shared: several
instances behind one load balancer must send a session to the same account whichever of them
gets its next request. The pins stay in memory (routing reads them without I/O); a pin made or
moved here is handed to ``share`` (the service stores it, and PostgreSQL tells the other
instances), and a pin another instance shared arrives through :meth:`SessionPins.adopt`.

Two instances may pin a new session at the same moment to different accounts. Every copy keeps
the pin that runs longest (equal ends: the greater account id), and so does the store, so all
copies settle on one account whatever order the pins arrive in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["MAX_PINNED_SESSIONS", "SessionPins", "SharePin"]

MAX_PINNED_SESSIONS = 10_000

SHARE_SLACK_MS = 60_000
"""How far a pin's end may run ahead of the end last shared before it is shared again: a
session's every request extends its pin, and sharing each extension would write per request."""

SharePin = Callable[[str, str, int], None]
"""Told ``(session_id, account_id, expires_at_ms)`` when a pin is made, moved or extended."""


class _Pin(NamedTuple):
    account_id: str
    expires_at_ms: int
    shared_until_ms: int
    """The end the other instances know (the pin's own end when it came from them)."""


class SessionPins:
    """An LRU map of at most ``max_sessions`` client sessions to their account and pin end.

    Args:
        max_sessions: How many pins to keep; the least recently used goes first.
        share: Told of the pins made here that other instances should know; nobody by default.
    """

    __slots__ = ("_max_sessions", "_pins", "share")

    def __init__(
        self, max_sessions: int = MAX_PINNED_SESSIONS, *, share: SharePin | None = None
    ) -> None:
        self._max_sessions = max_sessions
        self._pins: OrderedDict[str, _Pin] = OrderedDict()
        self.share = share

    def __len__(self) -> int:
        return len(self._pins)

    def live(self, session_id: str, now_ms: int) -> str | None:
        """The account ``session_id`` is pinned to, if the pin has not expired."""
        pin = self._pins.get(session_id)
        if pin is None or now_ms >= pin.expires_at_ms:
            return None
        return pin.account_id

    def pin(self, session_id: str, account_id: str, expires_at_ms: int) -> None:
        """Pin (or extend the pin of) ``session_id`` to ``account_id`` until ``expires_at_ms``."""
        old = self._pins.get(session_id)
        shared = old.shared_until_ms if old is not None and old.account_id == account_id else 0
        if expires_at_ms - shared >= SHARE_SLACK_MS and self.share is not None:
            self.share(session_id, account_id, expires_at_ms)
            shared = expires_at_ms
        self._put(session_id, _Pin(account_id, expires_at_ms, shared))

    def adopt(self, session_id: str, account_id: str, expires_at_ms: int) -> None:
        """Take a pin another instance shared, unless the one held here runs longer."""
        old = self._pins.get(session_id)
        if old is None or (expires_at_ms, account_id) > (old.expires_at_ms, old.account_id):
            self._put(session_id, _Pin(account_id, expires_at_ms, expires_at_ms))

    def _put(self, session_id: str, pin: _Pin) -> None:
        self._pins[session_id] = pin
        self._pins.move_to_end(session_id)
        while len(self._pins) > self._max_sessions:
            self._pins.popitem(last=False)
