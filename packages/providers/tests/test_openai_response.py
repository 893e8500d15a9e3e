"""Non-streaming OpenAI chat completions ⇄ Anthropic messages, and errors both ways."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from better_ccflare.providers._openai_response import (
    IdFactory,
    OpenAIJsonTransformer,
    TranslationError,
    anthropic_error_from_openai_body,
    anthropic_message_from_openai,
    anthropic_message_to_openai,
    openai_error_from_anthropic,
)


def from_openai(body: bytes, new_id: IdFactory | None = None) -> Any:
    """The translation, typed loosely so tests can index into it."""
    if new_id is None:
        return anthropic_message_from_openai(body)
    return anthropic_message_from_openai(body, new_id=new_id)


def error_from_openai(status: int, body: bytes) -> Any:
    return anthropic_error_from_openai_body(status, body)


def to_openai(message: dict[str, Any]) -> Any:
    return anthropic_message_to_openai(message, created=0)


FIXTURES = Path(__file__).parent / "fixtures" / "openai"


def counting_ids() -> IdFactory:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def completion(message: dict[str, Any], finish_reason: str | None = "stop", **extra: Any) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "finish_reason": finish_reason,
            }
        ],
    }
    return json.dumps(body | extra).encode()


# -- OpenAI to Anthropic -------------------------------------------------------------------------


def test_recorded_parallel_tool_calls_become_tool_use_blocks_with_anthropic_usage() -> None:
    body = (FIXTURES / "parallel_tool_calls_completion.json").read_bytes()
    assert from_openai(body) == {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-2024-08-06",
        "content": [
            {
                "type": "tool_use",
                "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                "name": "get_weather",
                "input": {"location": "Paris, France"},
            },
            {
                "type": "tool_use",
                "id": "call_ABgbcrGJ7CzJTNhQkVPqOnTv",
                "name": "get_weather",
                "input": {"location": "Bogotá, Colombia"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 212,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1024,
            "output_tokens": 49,
        },
    }


def test_text_answer_becomes_a_text_block() -> None:
    message = from_openai(completion({"content": "Hello!"}))
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert message["stop_reason"] == "end_turn"


def test_reasoning_content_becomes_a_leading_thinking_block() -> None:
    body = completion({"content": "9.9", "reasoning_content": "Compare decimals."})
    assert from_openai(body)["content"] == [
        {"type": "thinking", "thinking": "Compare decimals.", "signature": ""},
        {"type": "text", "text": "9.9"},
    ]


def test_openrouter_reasoning_field_is_thinking_too() -> None:
    body = completion({"content": "ok", "reasoning": "hmm"})
    assert from_openai(body)["content"][0]["thinking"] == "hmm"


def test_refusal_is_shown_as_text() -> None:
    body = completion({"content": None, "refusal": "I can't help with that."})
    assert from_openai(body)["content"] == [{"type": "text", "text": "I can't help with that."}]


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("something_new", "end_turn"),
    ],
)
def test_finish_reason_maps_to_stop_reason(finish_reason: str | None, stop_reason: str) -> None:
    body = completion({"content": "x"}, finish_reason)
    assert from_openai(body)["stop_reason"] == stop_reason


def test_tool_calls_finished_with_stop_are_still_tool_use() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = completion({"content": None, "tool_calls": [call]}, "stop")
    assert from_openai(body)["stop_reason"] == "tool_use"


def test_truncated_tool_arguments_become_an_empty_input() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"path": "/tm'}}
    body = completion({"content": None, "tool_calls": [call]}, "length")
    message = from_openai(body)
    assert message["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]
    assert message["stop_reason"] == "max_tokens"


def test_missing_ids_are_generated() -> None:
    body = json.dumps(
        {
            "model": "local",
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {"type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        }
    ).encode()
    message = from_openai(body, counting_ids())
    assert message["content"][0]["id"] == "toolu_1"
    assert message["id"] == "msg_2"


def test_missing_usage_counts_zero() -> None:
    usage = from_openai(completion({"content": "x"}))["usage"]
    assert usage == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }


def test_an_error_in_a_200_body_becomes_an_anthropic_error() -> None:
    body = b'{"error": {"message": "Provider returned error", "code": 502}}'
    assert from_openai(body) == {
        "type": "error",
        "error": {"type": "api_error", "message": "Provider returned error"},
    }


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"choices": "nope"}', b""])
def test_a_body_that_is_not_a_completion_raises_translation_error(body: bytes) -> None:
    with pytest.raises(TranslationError, match="not a valid chat completion"):
        from_openai(body)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "invalid_request_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_type_follows_the_http_status(status: int, error_type: str) -> None:
    body = b'{"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}'
    assert error_from_openai(status, body) == {
        "type": "error",
        "error": {"type": error_type, "message": "boom"},
    }


def test_recorded_openai_quota_error_is_a_rate_limit_error() -> None:
    body = (
        b'{"error": {"message": "You exceeded your current quota, please check your plan and '
        b'billing details.", "type": "insufficient_quota", "param": null, '
        b'"code": "insufficient_quota"}}'
    )
    error = error_from_openai(429, body)["error"]
    assert error["type"] == "rate_limit_error"
    assert error["message"].startswith("You exceeded your current quota")


def test_vllm_top_level_error_shape_is_understood() -> None:
    body = (
        b'{"object": "error", "message": "max_tokens is too large", '
        b'"type": "BadRequestError", "param": null, "code": 400}'
    )
    assert error_from_openai(400, body)["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens is too large",
    }


def test_non_json_error_body_becomes_the_message() -> None:
    body = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
    assert error_from_openai(502, body)["error"] == {
        "type": "api_error",
        "message": "<html><body><h1>502 Bad Gateway</h1></body></html>",
    }


def test_empty_error_body_still_has_a_message() -> None:
    error = error_from_openai(503, b"")["error"]
    assert error["message"] == "The upstream returned HTTP 503 with no error message."


def test_string_error_is_the_message() -> None:
    assert error_from_openai(400, b'{"error": "bad model"}')["error"] == {
        "type": "invalid_request_error",
        "message": "bad model",
    }


def test_anthropic_error_becomes_an_openai_error() -> None:
    anthropic = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert openai_error_from_anthropic(anthropic) == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}
    }


# -- Anthropic to OpenAI -------------------------------------------------------------------------

ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Need the weather.", "signature": "EqQBCkYIBxgC"},
        {"type": "text", "text": "Checking both cities."},
        {
            "type": "tool_use",
            "id": "toolu_01",
            "name": "get_weather",
            "input": {"location": "Paris"},
        },
        {
            "type": "tool_use",
            "id": "toolu_02",
            "name": "get_weather",
            "input": {"location": "Lyon"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1000,
        "output_tokens": 55,
    },
}


def test_anthropic_message_becomes_a_chat_completion() -> None:
    assert anthropic_message_to_openai(ANTHROPIC_MESSAGE, created=1741569952) == {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking both cities.",
                    "reasoning_content": "Need the weather.",
                    "tool_calls": [
                        {
                            "id": "toolu_01",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"location":"Paris"}',
                            },
                        },
                        {
                            "id": "toolu_02",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"location":"Lyon"}'},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 1120,
            "completion_tokens": 55,
            "total_tokens": 1175,
            "prompt_tokens_details": {"cached_tokens": 1000},
        },
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reason_maps_to_finish_reason(stop_reason: str, finish_reason: str) -> None:
    message = ANTHROPIC_MESSAGE | {"stop_reason": stop_reason}
    choice = to_openai(message)["choices"][0]
    assert choice["finish_reason"] == finish_reason


# -- the JSON transformer ------------------------------------------------------------------------


def test_json_transformer_holds_the_body_and_translates_at_close() -> None:
    body = completion({"content": "Hi"})
    transformer = OpenAIJsonTransformer(status=200)
    assert transformer.feed(body[:10]) == b""
    assert transformer.feed(body[10:]) == b""
    message = msgspec.json.decode(transformer.close())
    assert message["content"] == [{"type": "text", "text": "Hi"}]


def test_json_transformer_translates_error_statuses_as_errors() -> None:
    transformer = OpenAIJsonTransformer(status=401)
    transformer.feed(
        b'{"error": {"message": "Incorrect API key provided: sk-****", '
        b'"type": "invalid_request_error", "code": "invalid_api_key"}}'
    )
    assert msgspec.json.decode(transformer.close()) == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided: sk-****"},
    }


# -- properties ----------------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=30)
json_inputs = st.dictionaries(
    st.text(max_size=6),
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    max_size=3,
)


@st.composite
def anthropic_messages(draw: st.DrawFn) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if draw(st.booleans()):
        content.append({"type": "thinking", "thinking": draw(texts), "signature": draw(texts)})
    if draw(st.booleans()):
        content.append({"type": "text", "text": draw(texts)})
    for n in range(draw(st.integers(0, 3))):
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{n}",
                "name": draw(texts),
                "input": draw(json_inputs),
            }
        )
    return {
        "id": "msg_" + draw(st.text("abc123", min_size=1, max_size=8)),
        "type": "message",
        "role": "assistant",
        "model": draw(st.sampled_from(["claude-sonnet-4-5", "gpt-4o"])),
        "content": content,
        "stop_reason": draw(st.sampled_from(["end_turn", "max_tokens", "tool_use", "refusal"])),
        "stop_sequence": None,
        "usage": {
            "input_tokens": draw(st.integers(0, 10**6)),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": draw(st.integers(0, 10**6)),
            "output_tokens": draw(st.integers(0, 10**6)),
        },
    }


def _comparable(message: dict[str, Any]) -> dict[str, Any]:
    """Signatures are lost; an ``end_turn`` with tool calls reads back as ``tool_use``."""
    content = [{k: v for k, v in block.items() if k != "signature"} for block in message["content"]]
    called = any(block["type"] == "tool_use" for block in content)
    stop_reason = (
        "tool_use" if called and message["stop_reason"] == "end_turn" else message["stop_reason"]
    )
    return message | {"content": content, "stop_reason": stop_reason}


@given(anthropic_messages())
@settings(max_examples=300)
def test_anthropic_message_round_trips_through_a_chat_completion(message: dict[str, Any]) -> None:
    body = msgspec.json.encode(anthropic_message_to_openai(message, created=0))
    assert _comparable(from_openai(body)) == _comparable(message)
