"""Usage read off Anthropic responses: SSE streams split anywhere, and JSON bodies."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import TokenUsage
from better_ccflare.providers import UsageResult
from better_ccflare.providers._sse_usage import AnthropicUsageParser


def sse(*events: tuple[str, object]) -> bytes:
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
        for name, data in events
    )


def parse(body: bytes, *, streaming: bool = True, chunk: int | None = None) -> UsageResult:
    parser = AnthropicUsageParser(streaming=streaming)
    step = chunk or len(body) or 1
    for start in range(0, len(body), step):
        parser.feed(body[start : start + step])
    return parser.result()


MESSAGE_START: dict[str, object] = {
    "type": "message_start",
    "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 2095,
            "cache_creation_input_tokens": 4000,
            "cache_read_input_tokens": 18000,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 2500,
                "ephemeral_1h_input_tokens": 1500,
            },
            "output_tokens": 1,
            "service_tier": "standard",
        },
    },
}

CLAUDE_STREAM = sse(
    ("message_start", MESSAGE_START),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {
                "type": "thinking_delta",
                "thinking": 'The user wants a "message_delta" error check',
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("ping", {"type": "ping"}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Here is the file:\n\n"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "Read",
                "input": {},
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"file_path": "/tmp/usage"'},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "}"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 512},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)
CLAUDE_RESULT = UsageResult(
    model="claude-sonnet-4-5-20250929",
    usage=TokenUsage(
        input_tokens=2095,
        output_tokens=512,
        cache_read_input_tokens=18000,
        cache_write_5m_input_tokens=2500,
        cache_write_1h_input_tokens=1500,
    ),
    stop_reason="tool_use",
    message_stopped=True,
)

# GLM-style upstreams report the input side only in message_delta.
LATE_INPUT_STREAM = sse(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_2025",
                "type": "message",
                "role": "assistant",
                "model": "glm-4.6",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "你好"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"input_tokens": 1204, "output_tokens": 37, "cache_read_input_tokens": 896},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)
LATE_INPUT_RESULT = UsageResult(
    model="glm-4.6",
    usage=TokenUsage(input_tokens=1204, output_tokens=37, cache_read_input_tokens=896),
    stop_reason="end_turn",
    message_stopped=True,
)

ERROR_STREAM = sse(
    ("message_start", MESSAGE_START),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Partial"},
        },
    ),
    ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
)


def test_claude_stream_usage_model_and_stop_reason() -> None:
    assert parse(CLAUDE_STREAM) == CLAUDE_RESULT


def test_message_delta_input_side_counts_replace_message_start() -> None:
    assert parse(LATE_INPUT_STREAM) == LATE_INPUT_RESULT


def test_a_stream_without_message_stop_says_so() -> None:
    unfinished = parse(CLAUDE_STREAM.removesuffix(sse(("message_stop", {"type": "message_stop"}))))
    assert (unfinished.stop_reason, unfinished.message_stopped) == ("tool_use", False)
    assert parse(CLAUDE_STREAM, chunk=7).message_stopped


def test_in_band_error_event_sets_error_type() -> None:
    result = parse(ERROR_STREAM)
    assert result.error_type == "overloaded_error"
    assert result.usage.input_tokens == 2095
    assert result.stop_reason is None


def test_cache_creation_total_without_split_counts_as_5m() -> None:
    start = {
        "type": "message_start",
        "message": {
            "model": "claude-3-5-haiku-20241022",
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        },
    }
    result = parse(sse(("message_start", start)))
    assert result.usage.cache_write_5m_input_tokens == 300
    assert result.usage.cache_write_1h_input_tokens == 0


def test_delta_repeating_the_cache_total_keeps_the_split() -> None:
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 9, "cache_creation_input_tokens": 4000},
    }
    result = parse(sse(("message_start", MESSAGE_START), ("message_delta", delta)))
    assert (result.usage.cache_write_5m_input_tokens, result.usage.cache_write_1h_input_tokens) == (
        2500,
        1500,
    )


def test_crlf_line_endings() -> None:
    assert parse(CLAUDE_STREAM.replace(b"\n", b"\r\n"), chunk=5) == CLAUDE_RESULT


def test_events_without_names_are_read_by_their_type() -> None:
    unnamed = b"\n".join(
        line for line in CLAUDE_STREAM.split(b"\n") if not line.startswith(b"event:")
    )
    assert parse(unnamed, chunk=11) == CLAUDE_RESULT


def test_multi_line_data_is_joined() -> None:
    body = (
        b"event: message_start\n"
        b'data: {"type":"message_start",\n'
        b'data: "message":{"model":"claude-opus-4-1-20250805",\n'
        b'data: "usage":{"input_tokens":7,"output_tokens":1}}}\n'
        b"\n"
    )
    result = parse(body)
    assert (result.model, result.usage.input_tokens) == ("claude-opus-4-1-20250805", 7)


def test_comments_ids_and_retry_lines_are_ignored() -> None:
    body = b": keepalive\nid: 1\nretry: 1000\n" + CLAUDE_STREAM
    assert parse(body) == CLAUDE_RESULT


def test_result_mid_stream_reflects_what_was_fed() -> None:
    parser = AnthropicUsageParser(streaming=True)
    cut = CLAUDE_STREAM.index(b"event: content_block_start")
    parser.feed(CLAUDE_STREAM[:cut])
    assert parser.result().usage.input_tokens == 2095
    assert parser.result().usage.output_tokens == 1
    parser.feed(CLAUDE_STREAM[cut:])
    assert parser.result() == CLAUDE_RESULT


def test_final_event_without_trailing_blank_line_is_counted_once() -> None:
    body = CLAUDE_STREAM.rstrip(b"\n")
    parser = AnthropicUsageParser(streaming=True)
    parser.feed(body)
    assert parser.result() == CLAUDE_RESULT
    parser.feed(b"\n\n")
    assert parser.result() == CLAUDE_RESULT


def test_malformed_json_in_a_usage_event_is_skipped() -> None:
    body = (
        b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":\n\n'
        + CLAUDE_STREAM
    )
    assert parse(body) == CLAUDE_RESULT


def test_unterminated_giant_line_is_dropped_without_holding_it() -> None:
    parser = AnthropicUsageParser(streaming=True)
    piece = b"x" * 65536
    tracemalloc.start()
    try:
        parser.feed(b"data: ")
        for _ in range(320):  # 20 MiB without a newline
            parser.feed(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    parser.feed(b"\n\n" + CLAUDE_STREAM)
    assert parser.result() == CLAUDE_RESULT


NON_STREAMING = {
    "id": "msg_01HCDu5LRGeP2o7s2xGmxyx8",
    "type": "message",
    "role": "assistant",
    "model": "claude-opus-4-1-20250805",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "cache_creation_input_tokens": 1200,
        "cache_read_input_tokens": 300,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1200},
        "output_tokens": 9,
    },
}


def test_json_body_usage_is_read_at_result() -> None:
    result = parse(json.dumps(NON_STREAMING).encode(), streaming=False, chunk=13)
    assert result == UsageResult(
        model="claude-opus-4-1-20250805",
        usage=TokenUsage(
            input_tokens=20,
            output_tokens=9,
            cache_read_input_tokens=300,
            cache_write_1h_input_tokens=1200,
        ),
        stop_reason="end_turn",
    )


def test_json_error_body_sets_error_type() -> None:
    body = (
        b'{"type":"error","error":{"type":"rate_limit_error",'
        b'"message":"Number of request tokens has exceeded your per-minute rate limit"}}'
    )
    assert parse(body, streaming=False).error_type == "rate_limit_error"


def test_unparseable_json_body_yields_empty_result() -> None:
    assert parse(b"<html>502 Bad Gateway</html>", streaming=False) == UsageResult()
    assert parse(b"", streaming=False) == UsageResult()


STREAMS = st.sampled_from(
    [
        (CLAUDE_STREAM, CLAUDE_RESULT),
        (CLAUDE_STREAM.replace(b"\n", b"\r\n"), CLAUDE_RESULT),
        (LATE_INPUT_STREAM, LATE_INPUT_RESULT),
    ]
)


@given(STREAMS, st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_same_totals_however_the_stream_is_split(
    stream: tuple[bytes, UsageResult], cuts: list[int]
) -> None:
    body, expected = stream
    points = sorted({cut % (len(body) + 1) for cut in cuts})
    parser = AnthropicUsageParser(streaming=True)
    previous = 0
    for point in [*points, len(body)]:
        parser.feed(body[previous:point])
        previous = point
    assert parser.result() == expected


@pytest.mark.parametrize(
    "closing",
    [
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',  # recognised whole
        b'event: message_stop\ndata: {"type": "message_stop"}\n\n',  # recognised whole
        b'event: message_stop\ndata:{"type":"message_stop"}\n\n',  # walked and decoded
        b'data: {"type":"message_stop"}\n\n',  # no event line: walked and decoded
    ],
)
def test_the_closing_event_is_noticed_however_it_is_spelled(closing: bytes) -> None:
    body = CLAUDE_STREAM[: CLAUDE_STREAM.rindex(b"event: message_stop")] + closing
    parser = AnthropicUsageParser(streaming=True)
    parser.feed(body)
    assert parser.result() == CLAUDE_RESULT


def test_an_event_named_message_stop_with_other_data_is_decoded() -> None:
    # The data's type wins over the event line, so only the exact closing bytes skip decoding.
    body = b'event: message_stop\ndata: {"type":"message_delta","delta":{"stop_reason":"x"}}\n\n'
    parser = AnthropicUsageParser(streaming=True)
    parser.feed(body)
    result = parser.result()
    assert (result.message_stopped, result.stop_reason) == (False, "x")
