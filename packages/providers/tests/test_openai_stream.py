"""Streaming OpenAI chat.completion.chunk SSE to Anthropic SSE events."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from better_ccflare.providers._openai_response import (
    IdFactory,
    TranslationError,
    anthropic_message_from_openai,
)
from better_ccflare.providers._openai_stream import OpenAIStreamTransformer

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
Event = tuple[str, dict[str, Any]]


def counting_ids() -> IdFactory:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def parse_events(sse: bytes) -> list[Event]:
    events: list[Event] = []
    for raw in sse.split(b"\n\n"):
        if not raw:
            continue
        name_line, data_line = raw.split(b"\n")
        assert name_line.startswith(b"event: ")
        assert data_line.startswith(b"data: ")
        events.append((name_line[7:].decode(), json.loads(data_line[6:])))
    return events


def transform(pieces: Iterable[bytes]) -> bytes:
    transformer = OpenAIStreamTransformer(new_id=counting_ids())
    return b"".join(transformer.feed(piece) for piece in pieces) + transformer.close()


def sse(*chunks: dict[str, Any] | str) -> bytes:
    return b"".join(
        b"data: "
        + (
            chunk.encode()
            if isinstance(chunk, str)
            else json.dumps(chunk, ensure_ascii=False).encode()
        )
        + b"\n\n"
        for chunk in chunks
    )


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": choices,
    } | extra


def assert_well_formed(events: list[Event]) -> None:
    """message_start first; blocks numbered in order, started once, stopped once, deltas only
    while open and of their block's kind; message_delta then message_stop last; or an error last.
    """
    names = [name for name, _ in events]
    assert all(data["type"] == name for name, data in events)
    if "error" in names:
        assert names.index("error") == len(names) - 1
        assert "message_stop" not in names
    else:
        assert names[0] == "message_start"
        assert names[-2:] == ["message_delta", "message_stop"]
        assert names.count("message_start") == names.count("message_delta") == 1
    kinds: dict[int, str] = {}
    open_blocks: set[int] = set()
    delta_kinds = {
        "text": "text_delta",
        "thinking": "thinking_delta",
        "tool_use": "input_json_delta",
    }
    for name, data in events:
        if name == "content_block_start":
            assert data["index"] == len(kinds)
            kinds[data["index"]] = data["content_block"]["type"]
            open_blocks.add(data["index"])
        elif name == "content_block_delta":
            assert data["index"] in open_blocks
            assert data["delta"]["type"] == delta_kinds[kinds[data["index"]]]
        elif name == "content_block_stop":
            open_blocks.remove(data["index"])
        elif name == "message_delta":
            assert not open_blocks
    assert "error" in names or not open_blocks


def message_from_events(events: list[Event]) -> dict[str, Any]:
    """Accumulate an Anthropic stream the way the SDKs do, into a message."""
    message: dict[str, Any] = {}
    content: list[dict[str, Any]] = []
    partial_json: dict[int, str] = {}
    for name, data in events:
        if name == "message_start":
            message = dict(data["message"])
            message["content"] = content
        elif name == "content_block_start":
            content.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block = content[int(data["index"])]
            delta = data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            else:
                partial_json[data["index"]] = (
                    partial_json.get(data["index"], "") + delta["partial_json"]
                )
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"] = data["usage"]
    for index, text in partial_json.items():
        content[index]["input"] = json.loads(text)
    return message


# -- recorded streams ----------------------------------------------------------------------------


def test_recorded_parallel_tool_call_stream() -> None:
    events = parse_events(transform([(FIXTURES / "parallel_tool_calls.sse").read_bytes()]))
    assert_well_formed(events)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["id"] == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert events[0][1]["message"]["model"] == "gpt-4o-2024-08-06"
    assert events[1][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
        "name": "get_weather",
        "input": {},
    }
    assert [
        data["delta"]["partial_json"]
        for name, data in events
        if data.get("index") == 1 and name.endswith("delta")
    ] == [
        '{"lo',
        'cation": "Bog',
        'otá, Colombia"}',
    ]
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 212,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
            "output_tokens": 49,
        },
    }
    message = message_from_events(events)
    assert [block["input"] for block in message["content"]] == [
        {"location": "Paris, France"},
        {"location": "Bogotá, Colombia"},
    ]


def test_recorded_reasoning_stream_has_a_thinking_block_then_a_text_block() -> None:
    events = parse_events(transform([(FIXTURES / "reasoning_then_text.sse").read_bytes()]))
    assert_well_formed(events)
    message = message_from_events(events)
    assert message["content"] == [
        {
            "type": "thinking",
            "thinking": "The user asks 9.11 vs 9.9. 0.90 > 0.11, so 9.9 is larger.",
            "signature": "",
        },
        {"type": "text", "text": "9.9 is larger — 9.9 > 9.11."},
    ]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 17
    assert message["usage"]["output_tokens"] == 61


# -- incremental behaviour -----------------------------------------------------------------------


def test_each_argument_fragment_is_forwarded_as_soon_as_it_arrives() -> None:
    transformer = OpenAIStreamTransformer()
    start = {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": ""},
            }
        ]
    }
    transformer.feed(sse(chunk({"role": "assistant", "content": None})))
    assert [name for name, _ in parse_events(transformer.feed(sse(chunk(start))))] == [
        "content_block_start"
    ]
    for fragment in ['{"a"', ": 1", "}"]:
        out = transformer.feed(
            sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}))
        )
        assert parse_events(out) == [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                },
            )
        ]


def test_text_is_forwarded_before_the_line_ending_blank_line_arrives() -> None:
    transformer = OpenAIStreamTransformer()
    line = b"data: " + json.dumps(chunk({"content": "Hi"})).encode() + b"\n"
    out = parse_events(transformer.feed(line))
    assert [name for name, _ in out] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]


def test_nothing_is_emitted_for_an_unfinished_line() -> None:
    transformer = OpenAIStreamTransformer()
    assert transformer.feed(sse(chunk({"content": "Hi"}))[:-3]) == b""


def test_finish_reason_length_is_max_tokens() -> None:
    events = parse_events(transform([sse(chunk({"content": "a"}), chunk({}, "length"), "[DONE]")]))
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_blocks_stop_at_finish_reason_before_usage_arrives() -> None:
    transformer = OpenAIStreamTransformer()
    transformer.feed(sse(chunk({"content": "a"})))
    out = parse_events(transformer.feed(sse(chunk({}, "stop"))))
    assert [name for name, _ in out] == ["content_block_stop"]
    usage = {"prompt_tokens": 5, "completion_tokens": 1}
    out = parse_events(transformer.feed(sse(chunk(None, usage=usage))))
    assert [name for name, _ in out] == ["message_delta", "message_stop"]
    assert transformer.feed(sse("[DONE]")) == b""
    assert transformer.close() == b""


def test_usage_on_the_finishing_chunk_ends_the_message_there() -> None:
    transformer = OpenAIStreamTransformer()
    out = transformer.feed(
        sse(chunk({"content": "a"}, "stop", usage={"prompt_tokens": 3, "completion_tokens": 1}))
    )
    assert [name for name, _ in parse_events(out)][-2:] == ["message_delta", "message_stop"]


def test_a_stream_without_done_is_completed_by_close() -> None:
    transformer = OpenAIStreamTransformer()
    transformer.feed(sse(chunk({"content": "partial"}, "stop")))
    events = parse_events(transformer.close())
    assert [name for name, _ in events] == ["message_delta", "message_stop"]
    assert events[0][1]["delta"]["stop_reason"] == "end_turn"


def test_a_stream_cut_off_mid_tool_call_closes_well_formed() -> None:
    start = {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"x'},
            }
        ]
    }
    body = sse(chunk({"content": "Let me check."}), chunk(start))
    events = parse_events(transform([body, b'data: {"id":"chatcmpl-9","choi']))
    assert_well_formed(events)
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_an_empty_upstream_body_is_an_empty_message() -> None:
    events = parse_events(transform([]))
    assert_well_formed(events)
    assert events[0][1]["message"]["id"] == "msg_1"
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]


def test_a_final_line_without_newline_is_still_read() -> None:
    events = parse_events(
        transform([sse(chunk({"content": "a"}), chunk({}, "length")) + b"data: [DONE]"])
    )
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_an_error_chunk_becomes_an_error_event_and_ends_the_stream() -> None:
    error = {
        "error": {
            "message": "Rate limit reached for gpt-4o",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    events = parse_events(
        transform([sse(chunk({"content": "a"}), error, chunk({"content": "ignored"}))])
    )
    assert_well_formed(events)
    assert events[-1] == (
        "error",
        {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "Rate limit reached for gpt-4o"},
        },
    )


def test_openrouter_error_code_is_read_as_a_status() -> None:
    error = {"error": {"message": "Upstream overloaded", "code": 529}}
    events = parse_events(transform([sse(error)]))
    assert events == [
        (
            "error",
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Upstream overloaded"},
            },
        )
    ]


def test_a_malformed_data_line_raises_translation_error() -> None:
    with pytest.raises(TranslationError):
        OpenAIStreamTransformer().feed(b"data: {not json}\n\n")


def test_comments_event_lines_and_crlf_are_tolerated() -> None:
    body = (
        b": OPENROUTER PROCESSING\r\n\r\n"
        b"event: chunk\r\n"
        + b"data: "
        + json.dumps(chunk({"content": "ok"}, "stop")).encode()
        + b"\r\n\r\n"
        b"data: [DONE]\r\n\r\n"
    )
    assert message_from_events(parse_events(transform([body])))["content"] == [
        {"type": "text", "text": "ok"}
    ]


def test_a_character_split_across_chunks_survives() -> None:
    body = sse(chunk({"content": "日本語"}), chunk({}, "stop"))
    cut = body.index("本".encode()) + 1
    events = parse_events(transform([body[:cut], body[cut:]]))
    assert message_from_events(events)["content"] == [{"type": "text", "text": "日本語"}]


def test_calls_that_all_use_index_zero_are_told_apart_by_id() -> None:
    def call(call_id: str, city: str) -> dict[str, Any]:
        function = {"name": "get_weather", "arguments": json.dumps({"city": city})}
        return {
            "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": function}]
        }

    events = parse_events(
        transform(
            [sse(chunk(call("c1", "Paris")), chunk(call("c2", "Rome")), chunk({}, "tool_calls"))]
        )
    )
    assert_well_formed(events)
    message = message_from_events(events)
    assert [(b["id"], b["input"]) for b in message["content"]] == [
        ("c1", {"city": "Paris"}),
        ("c2", {"city": "Rome"}),
    ]


def test_interleaved_fragments_reach_their_own_blocks() -> None:
    def fragment(index: int, arguments: str, call_id: str | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if call_id:
            call |= {
                "id": call_id,
                "type": "function",
                "function": {"name": "f", "arguments": arguments},
            }
        return chunk({"tool_calls": [call]})

    body = sse(
        fragment(0, '{"a":', "c1"),
        fragment(1, '{"b":', "c2"),
        fragment(0, "1}"),
        fragment(1, "2}"),
        chunk({}, "tool_calls"),
    )
    events = parse_events(transform([body]))
    assert_well_formed(events)
    assert [b["input"] for b in message_from_events(events)["content"]] == [{"a": 1}, {"b": 2}]


def test_text_after_thinking_after_text_opens_new_blocks() -> None:
    body = sse(
        chunk({"content": "a"}),
        chunk({"reasoning_content": "r"}),
        chunk({"content": "b"}),
        chunk({}, "stop"),
    )
    events = parse_events(transform([body]))
    assert_well_formed(events)
    assert [b["type"] for b in message_from_events(events)["content"]] == [
        "text",
        "thinking",
        "text",
    ]


def test_a_missing_tool_call_id_is_generated() -> None:
    start = {
        "tool_calls": [
            {"index": 0, "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]
    }
    events = parse_events(transform([sse(chunk(start))]))
    assert events[1][1]["content_block"]["id"] == "toolu_1"


# -- properties ----------------------------------------------------------------------------------

fragments = st.lists(st.text(min_size=1, max_size=12), max_size=4)
json_inputs = st.dictionaries(
    st.text(max_size=6),
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    max_size=3,
)


@st.composite
def split_text(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(1, max(len(text) - 1, 1)), max_size=4)))
    return [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)]) if text[a:b]]


@st.composite
def logical_responses(draw: st.DrawFn) -> dict[str, Any]:
    """One model answer, as both a chat.completion and a chunk sequence would carry it."""
    calls: list[dict[str, Any]] = []
    for n in range(draw(st.integers(0, 3))):
        arguments = json.dumps(draw(json_inputs), ensure_ascii=draw(st.booleans()))
        calls.append(
            {
                "id": f"call_{n}",
                "name": draw(st.sampled_from(["Read", "Bash", "get_weather"])),
                "arguments": arguments,
                "pieces": draw(split_text(arguments)),
            }
        )
    usage = draw(
        st.none()
        | st.fixed_dictionaries(
            {"prompt_tokens": st.integers(100, 10**6), "completion_tokens": st.integers(0, 10**5)},
            optional={
                "prompt_tokens_details": st.fixed_dictionaries(
                    {"cached_tokens": st.integers(0, 100)}
                )
            },
        )
    )
    return {
        "id": "chatcmpl-" + draw(st.text("abcXYZ019", min_size=1, max_size=10)),
        "model": draw(st.sampled_from(["gpt-4o", "deepseek-reasoner", "qwen3-coder"])),
        "reasoning": draw(fragments),
        "text": draw(fragments),
        "calls": calls,
        "finish_reason": draw(
            st.sampled_from([None, "stop", "length", "tool_calls", "content_filter"])
        ),
        "usage": usage,
        "done": draw(st.booleans()),
        "crlf": draw(st.booleans()),
    }


def completion_body(response: dict[str, Any]) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(response["text"]) or None}
    if response["reasoning"]:
        message["reasoning_content"] = "".join(response["reasoning"])
    if response["calls"]:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in response["calls"]
        ]
    body = {
        "id": response["id"],
        "object": "chat.completion",
        "model": response["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": response["finish_reason"]}],
        "usage": response["usage"],
    }
    return json.dumps(body).encode()


def stream_body(response: dict[str, Any]) -> bytes:
    base = {"id": response["id"], "object": "chat.completion.chunk", "model": response["model"]}

    def delta(d: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return base | {
            "choices": [{"index": 0, "delta": d, "finish_reason": finish_reason}],
            "usage": None,
        }

    chunks: list[dict[str, Any] | str] = [delta({"role": "assistant", "content": ""})]
    chunks += [delta({"reasoning_content": piece}) for piece in response["reasoning"]]
    chunks += [delta({"content": piece}) for piece in response["text"]]
    for index, call in enumerate(response["calls"]):
        function = {"name": call["name"], "arguments": ""}
        chunks.append(
            delta(
                {
                    "tool_calls": [
                        {"index": index, "id": call["id"], "type": "function", "function": function}
                    ]
                }
            )
        )
        chunks += [
            delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in call["pieces"]
        ]
    if response["finish_reason"]:
        chunks.append(delta({}, response["finish_reason"]))
    if response["usage"]:
        chunks.append(base | {"choices": [], "usage": response["usage"]})
    if response["done"]:
        chunks.append("[DONE]")
    body = sse(*chunks)
    return body.replace(b"\n", b"\r\n") if response["crlf"] else body


@st.composite
def split_bytes(draw: st.DrawFn, body: bytes) -> list[bytes]:
    cuts = sorted(draw(st.sets(st.integers(0, len(body)), max_size=12)))
    return [body[a:b] for a, b in itertools.pairwise([0, *cuts, len(body)])]


@given(st.data(), logical_responses())
@settings(max_examples=300)
def test_output_is_the_same_however_the_input_is_split(
    data: st.DataObject, response: dict[str, Any]
) -> None:
    body = stream_body(response)
    assert transform(data.draw(split_bytes(body))) == transform([body])


@given(logical_responses())
@settings(max_examples=300)
def test_stream_is_well_formed_and_matches_the_non_streaming_translation(
    response: dict[str, Any],
) -> None:
    events = parse_events(transform([stream_body(response)]))
    assert_well_formed(events)
    streamed = message_from_events(events)
    expected = anthropic_message_from_openai(completion_body(response))
    assert streamed == expected


@given(st.data(), logical_responses())
@settings(max_examples=200)
def test_streams_cut_anywhere_or_ending_in_an_error_stay_well_formed(
    data: st.DataObject, response: dict[str, Any]
) -> None:
    body = stream_body(response)
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body)))]
    else:
        body += sse({"error": {"message": "boom", "type": "server_error"}})
    assert_well_formed(parse_events(transform([body])))


def test_the_property_strategy_emits_realistic_chunks() -> None:
    response = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "reasoning": [],
        "text": ["Hel", "lo"],
        "calls": [],
        "finish_reason": "stop",
        "usage": None,
        "done": True,
        "crlf": False,
    }
    lines = [line for line in stream_body(response).split(b"\n") if line]
    assert lines[-1] == b"data: [DONE]"
    assert msgspec.json.decode(lines[1][6:])["choices"][0]["delta"] == {"content": "Hel"}
