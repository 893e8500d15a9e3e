"""Anthropic Messages requests ⇄ OpenAI Chat Completions requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from better_ccflare.providers._openai_request import (
    DEFAULT_MAX_TOKENS,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)


def to_openai(request: dict[str, Any]) -> Any:
    """The translation, typed loosely so tests can index into it."""
    return anthropic_to_openai_request(request)


def to_anthropic(request: dict[str, Any]) -> Any:
    return openai_to_anthropic_request(request)


FIXTURES = Path(__file__).parent / "fixtures" / "openai"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def claude_code_request() -> dict[str, Any]:
    return json.loads((FIXTURES / "claude_code_request.json").read_text())


def user(*content: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": list(content)}],
    }


# -- Anthropic to OpenAI: a recorded Claude Code request ---------------------------------------


def test_claude_code_request_translates_to_the_expected_openai_request() -> None:
    out = to_openai(claude_code_request())

    assert out == {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "temperature": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user_3f1c_account__session_6a2e9d4b-58c4-4c7e-9d0a-1b2c3d4e5f60",
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "Read",
                    "description": "Reads a file from the local filesystem.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "file_path": {
                                "type": "string",
                                "description": "The absolute path to the file to read",
                            },
                            "offset": {"type": "number"},
                            "limit": {"type": "number"},
                        },
                        "required": ["file_path"],
                        "additionalProperties": False,
                    },
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "Bash",
                    "description": "Executes a given bash command.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "command": {"type": "string"},
                            "timeout": {"type": "number"},
                        },
                        "required": ["command"],
                        "additionalProperties": False,
                    },
                },
            },
        ],
        "messages": [
            {
                "role": "system",
                "content": "You are Claude Code, Anthropic's official CLI for Claude.\n\n"
                "You are an interactive CLI tool that helps users with software engineering tasks.",
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<system-reminder>\nAs you answer the user's questions, "
                        "you can use the following context.\n</system-reminder>",
                    },
                    {
                        "type": "text",
                        "text": "What is in this screenshot, and what does README.md say?",
                    },
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": "The image is a single pixel. Let me look at the repository.",
                "reasoning_content": "The screenshot is a 1x1 pixel. "
                "Let me read the README and list the directory.",
                "tool_calls": [
                    {
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {
                            "name": "Read",
                            "arguments": '{"file_path":"/repo/README.md"}',
                        },
                    },
                    {
                        "id": "toolu_01B7xZyTr3N3kM8Gq2eLkWbV",
                        "type": "function",
                        "function": {
                            "name": "Bash",
                            "arguments": '{"command":"ls -la /repo","timeout":120000}',
                        },
                    },
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
                "content": "     1→# demo\n     2→A tiny demo repository.",
            },
            {
                "role": "tool",
                "tool_call_id": "toolu_01B7xZyTr3N3kM8Gq2eLkWbV",
                "content": "Error: ls: cannot access '/repo': Permission denied",
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Also, here is the logo:"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/logo.png"}},
                ],
            },
        ],
    }


def test_thinking_switch_top_k_and_server_tools_are_not_sent_to_openai() -> None:
    request = claude_code_request() | {"top_k": 40}
    out = to_openai(request)
    assert "thinking" not in out
    assert "top_k" not in out
    assert "reasoning_effort" not in out
    assert [tool["function"]["name"] for tool in out["tools"]] == ["Read", "Bash"]


def test_text_only_user_content_is_one_string() -> None:
    out = to_openai(user({"type": "text", "text": "a"}, {"type": "text", "text": "b"}))
    assert out["messages"] == [{"role": "user", "content": "a\n\nb"}]


def test_string_system_prompt_is_a_system_message() -> None:
    out = to_openai(user({"type": "text", "text": "hi"}) | {"system": "Be brief."})
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}


def test_non_streaming_request_has_no_stream_options() -> None:
    out = to_openai(user({"type": "text", "text": "hi"}) | {"stream": False})
    assert out["stream"] is False
    assert "stream_options" not in out


def test_stop_sequences_become_stop() -> None:
    out = to_openai(user({"type": "text", "text": "hi"}) | {"stop_sequences": ["###"]})
    assert out["stop"] == ["###"]


@pytest.mark.parametrize(
    ("anthropic", "openai"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "Read"},
            {"tool_choice": {"type": "function", "function": {"name": "Read"}}},
        ),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
    ],
)
def test_tool_choice_maps_to_openai(anthropic: dict[str, Any], openai: dict[str, Any]) -> None:
    request = claude_code_request() | {"tool_choice": anthropic}
    out = to_openai(request)
    chosen = {key: out[key] for key in ("tool_choice", "parallel_tool_calls") if key in out}
    assert chosen == openai


def test_tool_choice_without_tools_is_not_sent() -> None:
    out = to_openai(user({"type": "text", "text": "hi"}) | {"tool_choice": {"type": "auto"}})
    assert "tool_choice" not in out
    assert "tools" not in out


def test_images_inside_tool_results_move_to_the_following_user_message() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"},
    }
    out = to_openai(
        user(
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": [{"type": "text", "text": "screenshot taken"}, image],
            }
        )
    )
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "screenshot taken"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}],
        },
    ]


def test_pdf_document_becomes_a_file_part_and_text_document_text() -> None:
    out = to_openai(
        user(
            {
                "type": "document",
                "title": "spec.pdf",
                "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
            },
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
            },
        )
    )
    assert out["messages"][0]["content"] == [
        {
            "type": "file",
            "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"},
        },
        {"type": "text", "text": "notes"},
    ]


def test_assistant_turn_with_only_tool_calls_has_null_content() -> None:
    request: dict[str, Any] = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
            },
        ],
    }
    assistant = to_openai(request)["messages"][1]
    assert assistant["content"] is None
    assert assistant["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}


# -- OpenAI to Anthropic -----------------------------------------------------------------------

OPENAI_REQUEST: dict[str, Any] = {
    "model": "gpt-4o",
    "max_completion_tokens": 1024,
    "temperature": 1.6,
    "top_p": 0.9,
    "stop": "END",
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "u-42",
    "n": 1,
    "parallel_tool_calls": False,
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather.",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
                "strict": True,
            },
        }
    ],
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "https://example.com/sky.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21°C"}]},
        {"role": "user", "content": "Thanks!"},
    ],
}


def test_openai_request_translates_to_the_expected_anthropic_request() -> None:
    assert to_anthropic(OPENAI_REQUEST) == {
        "model": "gpt-4o",
        "max_tokens": 1024,
        "system": "You are helpful.\n\nAnswer in French.",
        "temperature": 1.0,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
        "metadata": {"user_id": "u-42"},
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather.",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/sky.jpg"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "get_weather",
                        "input": {"location": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "call_2",
                        "name": "get_weather",
                        "input": {"location": "Lyon"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "21°C"},
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ],
    }


def test_missing_max_tokens_gets_the_default() -> None:
    out = to_anthropic({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert out["max_tokens"] == DEFAULT_MAX_TOKENS


@pytest.mark.parametrize(
    ("openai", "anthropic"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"})],
)
def test_openai_tool_choice_maps_to_anthropic(openai: str, anthropic: dict[str, Any]) -> None:
    request = OPENAI_REQUEST | {"tool_choice": openai, "parallel_tool_calls": True}
    assert to_anthropic(request)["tool_choice"] == anthropic


def test_parallel_tool_calls_false_without_tool_choice_disables_parallel_use_on_auto() -> None:
    request = {k: v for k, v in OPENAI_REQUEST.items() if k != "tool_choice"}
    assert to_anthropic(request)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }


def test_reasoning_content_becomes_an_unsigned_thinking_block() -> None:
    request = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "reasoning_content": "thought"},
        ],
    }
    assert to_anthropic(request)["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "thought", "signature": ""},
        {"type": "text", "text": "a"},
    ]


def test_pdf_file_part_becomes_a_document_block() -> None:
    part = {
        "type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
    }
    out = to_anthropic({"model": "m", "messages": [{"role": "user", "content": [part]}]})
    assert out["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        }
    ]


# -- properties ----------------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=30)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
cache_control = st.sampled_from([{}, {"cache_control": {"type": "ephemeral"}}])
tool_names = st.sampled_from(["Read", "Bash", "get_weather", "search"])


@st.composite
def text_blocks(draw: st.DrawFn) -> dict[str, Any]:
    return {"type": "text", "text": draw(texts)} | draw(cache_control)


@st.composite
def image_blocks(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        media_type = draw(st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]))
        data = draw(st.text("ABCDEFabcdef0123456789+/", min_size=4, max_size=16))
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {
            "type": "url",
            "url": "https://example.com/" + draw(st.text("abc123", min_size=1)),
        }
    return {"type": "image", "source": source} | draw(cache_control)


@st.composite
def tool_results(draw: st.DrawFn, tool_use_id: str) -> dict[str, Any]:
    content = draw(st.one_of(texts, st.lists(text_blocks() | image_blocks(), max_size=3)))
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if draw(st.booleans()):
        block["is_error"] = draw(st.booleans())
    return block


@st.composite
def assistant_messages(draw: st.DrawFn) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 2))):
        blocks.append({"type": "thinking", "thinking": draw(texts), "signature": draw(texts)})
    blocks.extend(draw(st.lists(text_blocks(), max_size=2)))
    for _ in range(draw(st.integers(0 if blocks else 1, 3))):
        blocks.append(
            {
                "type": "tool_use",
                "id": "toolu_" + draw(st.text("abcdef0123456789", min_size=6, max_size=6)),
                "name": draw(tool_names),
                "input": draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3)),
            }
        )
    return {"role": "assistant", "content": blocks}


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    pending: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        content: list[dict[str, Any]] = [draw(tool_results(tool_use_id)) for tool_use_id in pending]
        content.extend(
            draw(st.lists(text_blocks() | image_blocks(), min_size=0 if pending else 1, max_size=3))
        )
        if len(content) == 1 and content[0]["type"] == "text" and draw(st.booleans()):
            messages.append({"role": "user", "content": content[0]["text"]})
        else:
            messages.append({"role": "user", "content": content})
        assistant = draw(assistant_messages())
        messages.append(assistant)
        pending = [block["id"] for block in assistant["content"] if block["type"] == "tool_use"]
    if draw(st.booleans()):
        messages.pop()  # end on a user turn, as a real request does
    return messages


@st.composite
def tools(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 5)) == 0:
        return {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": draw(
            st.dictionaries(
                st.text("abcxyz", min_size=1, max_size=4), st.just({"type": "string"}), max_size=3
            )
        ),
    }
    if draw(st.booleans()):
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    tool: dict[str, Any] = {"name": draw(tool_names), "input_schema": schema} | draw(cache_control)
    if draw(st.booleans()):
        tool["description"] = draw(texts)
    return tool


@st.composite
def tool_choices(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["auto", "any", "none", "tool"]))
    choice: dict[str, Any] = {"type": kind}
    if kind == "tool":
        choice["name"] = draw(tool_names)
    if kind != "none" and draw(st.booleans()):
        choice["disable_parallel_tool_use"] = draw(st.booleans())
    return choice


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": draw(
            st.sampled_from(["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"])
        ),
        "max_tokens": draw(st.integers(1, 64000)),
        "messages": draw(conversations()),
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "system": texts | st.lists(text_blocks(), max_size=3),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(1, 100),
        "stop_sequences": st.lists(texts, max_size=3),
        "stream": st.booleans(),
        "metadata": st.fixed_dictionaries({"user_id": texts}),
        "tools": st.lists(tools(), max_size=3),
        "tool_choice": tool_choices(),
        "thinking": st.just({"type": "enabled", "budget_tokens": 1024}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            request[key] = draw(strategy)
    return request


def _joined(texts_: list[str]) -> str:
    return "\n\n".join(texts_)


def _texts_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    return [block["text"] for block in content if block["type"] == "text"]


def _merge_texts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for block in blocks:
        if block["type"] == "text" and merged and merged[-1]["type"] == "text":
            merged[-1] = {"type": "text", "text": _joined([merged[-1]["text"], block["text"]])}
        else:
            merged.append(block)
    return merged


def _plain(block: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in block.items() if key != "cache_control"}


def _normal_user(content: Any) -> list[dict[str, Any]]:
    """Tool results (text only) first, then every other block in order, adjacent texts merged."""
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    results: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for block in content:
        if block["type"] == "tool_result":
            text = _joined(_texts_of(block.get("content", "")))
            prefix = "Error: " if block.get("is_error") else ""
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": block["tool_use_id"],
                    "content": prefix + text,
                }
            )
            if isinstance(block.get("content"), list):
                rest.extend(_plain(b) for b in block["content"] if b["type"] != "text")
        else:
            rest.append(_plain(block))
    return results + _merge_texts(rest)


def _normal_assistant(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Thinking, then text, then tool calls: the order OpenAI's fields impose."""
    thinking = _joined([b["thinking"] for b in content if b["type"] == "thinking"])
    text = _joined(_texts_of(content))
    blocks = [{"type": "thinking", "thinking": thinking}] if thinking else []
    blocks += [{"type": "text", "text": text}] if text else []
    blocks += [
        {"type": "tool_use", "id": b["id"], "name": b["name"], "input": b["input"]}
        for b in content
        if b["type"] == "tool_use"
    ]
    return blocks


def normalize(request: dict[str, Any]) -> dict[str, Any]:
    """What an Anthropic request means to an OpenAI upstream: the translatable subset."""
    out = {
        key: request[key]
        for key in ("model", "max_tokens", "temperature", "top_p", "stream")
        if key in request
    }
    system = _joined(_texts_of(request.get("system", "")))
    if system:
        out["system"] = system
    if request.get("stop_sequences"):
        out["stop_sequences"] = request["stop_sequences"]
    if request.get("metadata", {}).get("user_id"):
        out["metadata"] = {"user_id": request["metadata"]["user_id"]}
    function_tools = [
        {
            "name": t["name"],
            **({"description": t["description"]} if t.get("description") else {}),
            "input_schema": {k: v for k, v in t["input_schema"].items() if k != "$schema"},
        }
        for t in request.get("tools", [])
        if "input_schema" in t
    ]
    if function_tools:
        out["tools"] = function_tools
        if "tool_choice" in request:
            choice = dict(request["tool_choice"])
            if not choice.get("disable_parallel_tool_use"):
                choice.pop("disable_parallel_tool_use", None)
            out["tool_choice"] = choice
    out["messages"] = [
        {
            "role": message["role"],
            "content": (
                _normal_assistant(message["content"])
                if message["role"] == "assistant"
                else _normal_user(message["content"])
            ),
        }
        for message in request["messages"]
    ]
    return out


@given(anthropic_requests())
@settings(max_examples=300)
def test_anthropic_to_openai_never_raises_and_encodes(request: dict[str, Any]) -> None:
    out = to_openai(request)
    assert msgspec.json.decode(msgspec.json.encode(out)) == out


@given(anthropic_requests())
@settings(max_examples=300)
def test_anthropic_to_openai_to_anthropic_round_trips_the_translatable_subset(
    request: dict[str, Any],
) -> None:
    round_tripped = to_anthropic(to_openai(request))
    assert normalize(round_tripped) == normalize(request)


request_keys = st.sampled_from(
    [
        "model",
        "messages",
        "role",
        "content",
        "type",
        "text",
        "tool_calls",
        "function",
        "name",
        "arguments",
        "tools",
        "tool_choice",
        "system",
        "source",
        "image_url",
        "url",
        "input",
        "tool_result",
        "tool_use",
        "image",
        "file",
        "file_data",
        "stop",
        "stop_sequences",
        "metadata",
        "user",
        "temperature",
        "max_tokens",
        "parameters",
        "input_schema",
        "stream",
    ]
)
shaped_json = st.recursive(
    json_scalars | request_keys,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(request_keys, inner, max_size=5),
    max_leaves=25,
)


@given(st.dictionaries(request_keys, shaped_json, max_size=6))
@settings(max_examples=500)
def test_both_directions_never_raise_on_any_json_object(request: dict[str, Any]) -> None:
    to_openai(request)
    to_anthropic(request)
