"""A request's client session: Claude Code's session id in either ``metadata.user_id`` format."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.proxy._client_session import claude_session_id, client_session_id

SESSION = "7f0c5b0e-3c1d-4a7e-9d8c-2b1f4e5a6c7d"
LEGACY = f"user_{'ab' * 32}_account_1b2c3d4e-0000-4000-8000-000000000000_session_{SESSION}"
JSON_FORM = json.dumps(
    {
        "device_id": "ab" * 32,
        "account_uuid": "1b2c3d4e-0000-4000-8000-000000000000",
        "session_id": SESSION,
    }
)


def test_the_legacy_user_id_gives_its_session_tail() -> None:
    assert claude_session_id(LEGACY) == SESSION


def test_the_json_user_id_gives_its_session_id() -> None:
    assert claude_session_id(JSON_FORM) == SESSION


def test_a_user_id_without_a_session_gives_none() -> None:
    assert claude_session_id("team-alice") is None
    assert claude_session_id('{"device_id": "x"}') is None
    assert claude_session_id("{not json") is None
    assert claude_session_id('{"session_id": "\ud800"}') is None


@given(st.text().filter(lambda t: not t.startswith("{")), st.uuids())
def test_any_prefix_before_the_session_mark_is_ignored(prefix: str, session: object) -> None:
    assert claude_session_id(f"{prefix}_session_{session}") == str(session)


@given(st.text())
def test_no_text_makes_it_raise(user_id: str) -> None:
    claude_session_id(user_id)


def test_the_session_key_prefers_the_embedded_id_then_the_user_id_then_the_header() -> None:
    header = {"x-claude-code-session-id": SESSION}
    assert client_session_id({"user_id": LEGACY}, {}) == SESSION
    assert client_session_id({"user_id": "team-alice"}, header) == "team-alice"
    assert client_session_id({"user_id": ""}, header) == SESSION
    assert client_session_id(None, header) == SESSION
    assert client_session_id({"user_id": 7}, {}) is None
