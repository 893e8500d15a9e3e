"""Small factories for core values with sensible defaults, so tests state only what matters."""

from __future__ import annotations

from typing import Any

from better_ccflare.core import (
    Account,
    ApiKey,
    Credentials,
    OAuthMode,
    OAuthSession,
    RequestRecord,
    TokenUsage,
)

T0 = 1_767_225_600_000
"""FakeClock's default start (2026-01-01T00:00:00Z)."""
DAY_MS = 86_400_000


def account(account_id: str = "acc-1", **fields: Any) -> Account:
    defaults: dict[str, Any] = {
        "id": account_id,
        "name": f"name-{account_id}",
        "provider": "anthropic",
        "created_at_ms": T0,
        "credentials": Credentials(
            access_token=f"access-{account_id}",
            refresh_token=f"refresh-{account_id}",
            expires_at_ms=T0 + 3_600_000,
        ),
    }
    return Account(**(defaults | fields))


def request(request_id: str = "req-1", **fields: Any) -> RequestRecord:
    defaults: dict[str, Any] = {
        "id": request_id,
        "timestamp_ms": T0,
        "method": "POST",
        "path": "/v1/messages",
        "account_id": "acc-1",
        "status_code": 200,
        "success": True,
        "model": "claude-sonnet-4-5",
        "usage": TokenUsage(input_tokens=10, output_tokens=20),
    }
    return RequestRecord(**(defaults | fields))


def api_key(key_id: str = "key-1", **fields: Any) -> ApiKey:
    defaults: dict[str, Any] = {
        "id": key_id,
        "name": f"name-{key_id}",
        "hashed_key": f"salt:hash-{key_id}",
        "prefix_last_8": key_id[-8:],
        "created_at_ms": T0,
    }
    return ApiKey(**(defaults | fields))


def oauth_session(session_id: str = "sess-1", **fields: Any) -> OAuthSession:
    defaults: dict[str, Any] = {
        "id": session_id,
        "account_name": "new-account",
        "verifier": f"verifier-{session_id}",
        "mode": OAuthMode.CLAUDE_OAUTH,
        "created_at_ms": T0,
        "expires_at_ms": T0 + 600_000,
    }
    return OAuthSession(**(defaults | fields))
