"""The statements both backends use for session pins, written once in each's placeholders."""

from __future__ import annotations

__all__ = ["session_pin_sql"]


def session_pin_sql(placeholders: tuple[str, str, str, str]) -> tuple[str, str, str]:
    """The upsert (session, account, end), the purge (now) and the live read (now), with the
    given placeholders in that order (``?`` four times for SQLite, ``$1``... for PostgreSQL).

    The upsert keeps whichever pin runs longer (equal ends: the greater account id), the rule
    every instance's memory follows too, so the stored pin and every copy agree.
    """
    session, account, expires, now = placeholders
    upsert = (
        "INSERT INTO session_pins (session_id, account_id, expires_at) "  # noqa: S608 (placeholders)
        f"VALUES ({session}, {account}, {expires}) "
        "ON CONFLICT (session_id) DO UPDATE SET "
        "account_id = excluded.account_id, expires_at = excluded.expires_at "
        "WHERE excluded.expires_at > session_pins.expires_at "
        "OR (excluded.expires_at = session_pins.expires_at "
        "AND excluded.account_id > session_pins.account_id)"
    )
    purge = f"DELETE FROM session_pins WHERE expires_at <= {now}"  # noqa: S608 (placeholders)
    live = (
        "SELECT session_id, account_id, expires_at FROM session_pins "  # noqa: S608 (placeholders)
        f"WHERE expires_at > {now}"
    )
    return upsert, purge, live
