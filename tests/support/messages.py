"""Anthropic Messages API bodies the fake upstreams answer with, shared by end-to-end tests."""

from __future__ import annotations

from .fake_upstream import Reply, sse

__all__ = ["MODEL", "message_json", "quota_429", "stream_events"]

MODEL = "claude-sonnet-5"


def message_json(text: str = "Hello!") -> dict[str, object]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0,
        },
    }


def stream_events(words: list[str]) -> list[bytes]:
    events = [
        sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_02",
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 20, "output_tokens": 1},
                },
            },
        ),
        sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
        )
        for w in words
    ]
    events += [
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]
    return events


def quota_429(reset_s: int) -> Reply:
    """A 429 for the account's window, which resets at ``reset_s`` (epoch seconds)."""
    return Reply.json(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "limit"}},
        status=429,
        headers={"anthropic-ratelimit-unified-reset": str(reset_s)},
    )
