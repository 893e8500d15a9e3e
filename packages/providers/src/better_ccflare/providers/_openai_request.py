"""Anthropic Messages requests to OpenAI Chat Completions requests, and back.

``openai-compatible`` accounts serve Anthropic clients, so every ``/v1/messages`` body is
rewritten as a ``/v1/chat/completions`` body; the reverse direction lets an OpenAI client be
served by an Anthropic-shaped account. Both work on decoded JSON objects and never raise: a field
of the wrong shape is skipped rather than guessed at, and what the other format cannot express is
dropped (documented per function). Decoding the bytes is the caller's step.

The mapping, Anthropic on the left:

* ``system`` (string or text blocks) is a leading ``system`` message; text blocks are joined.
* ``text`` blocks are joined into a string when a message has nothing else, otherwise they stay
  parts beside the images; ``image`` blocks are ``image_url`` parts (``data:`` URLs for base64
  sources); base64 ``document`` blocks are ``file`` parts and text documents plain text.
* ``tool_use`` blocks are ``tool_calls``; ``thinking`` blocks are ``reasoning_content``.
* ``tool_result`` blocks are ``role: "tool"`` messages placed before the rest of the user turn,
  as OpenAI requires them right after the assistant's calls. Their text is joined; images and
  documents, which tool messages cannot carry, move into the user message that follows; an error
  result is prefixed with ``Error:`` because tool messages have no error flag.
* ``tools[].input_schema`` is ``parameters`` (without ``$schema``); ``tool_choice`` auto, any,
  none and tool are ``"auto"``, ``"required"``, ``"none"`` and a named function;
  ``disable_parallel_tool_use`` is ``parallel_tool_calls: false``.
* ``stop_sequences`` is ``stop``, ``metadata.user_id`` is ``user``; a streaming request asks for
  the final usage chunk with ``stream_options.include_usage``.

The ``thinking`` switch itself is not translated: ``reasoning_effort`` is rejected by OpenAI
models that do not reason, and the proxy cannot tell which models those are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import cast

import msgspec

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "TEXT_SEPARATOR",
    "anthropic_to_openai_request",
    "openai_to_anthropic_request",
]

JsonObject = dict[str, object]

TEXT_SEPARATOR = "\n\n"
"""Joins text that one format keeps as several blocks and the other as one string."""
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires ``max_tokens``; OpenAI clients may leave it out."""
_MAX_ANTHROPIC_TEMPERATURE = 1.0
_ERROR_PREFIX = "Error: "


# -- typed access to decoded JSON --------------------------------------------------------------


def as_object(value: object) -> JsonObject | None:
    """``value`` if it is a JSON object."""
    return cast("JsonObject", value) if isinstance(value, dict) else None


def as_str(value: object) -> str | None:
    """``value`` if it is a string."""
    return value if isinstance(value, str) else None


def objects(value: object) -> Iterator[JsonObject]:
    """The objects in ``value`` if it is a JSON array; anything else yields nothing."""
    if isinstance(value, list):
        for item in cast("list[object]", value):
            obj = as_object(item)
            if obj is not None:
                yield obj


def content_blocks(content: object) -> list[JsonObject]:
    """Anthropic ``content``, a string or a list of blocks, as a list of blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(objects(content))


def joined_text(content: object) -> str:
    """All text in Anthropic or OpenAI ``content`` (a string, blocks or parts) as one string."""
    return TEXT_SEPARATOR.join(
        text
        for block in content_blocks(content)
        if block.get("type") == "text" and (text := as_str(block.get("text")))
    )


# -- assistant turns, shared with the response translation ----------------------------------


class ToolCall(msgspec.Struct, frozen=True):
    """One function call, as both formats can name it."""

    id: str
    name: str
    arguments: str
    """The arguments as JSON text, as OpenAI carries them."""


def openai_assistant_message(blocks: Iterable[JsonObject]) -> JsonObject:
    """An OpenAI assistant message from Anthropic assistant content blocks.

    OpenAI has one slot each for reasoning, text and calls, so the blocks' interleaving is lost;
    thinking signatures and redacted thinking have no OpenAI form and are dropped.
    """
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JsonObject] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and (text := as_str(block.get("text"))):
            texts.append(text)
        elif kind == "thinking" and (thought := as_str(block.get("thinking"))):
            thoughts.append(thought)
        elif kind == "tool_use":
            arguments = msgspec.json.encode(as_object(block.get("input")) or {}).decode()
            calls.append(
                {
                    "id": as_str(block.get("id")) or "",
                    "type": "function",
                    "function": {"name": as_str(block.get("name")) or "", "arguments": arguments},
                }
            )
    # OpenAI allows a null content only beside tool calls.
    message: JsonObject = {
        "role": "assistant",
        "content": TEXT_SEPARATOR.join(texts) if texts or not calls else None,
    }
    if thoughts:
        message["reasoning_content"] = TEXT_SEPARATOR.join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return message


def anthropic_assistant_blocks(
    reasoning: str | None, text: str | None, calls: Iterable[ToolCall]
) -> list[JsonObject]:
    """Anthropic assistant content blocks from the parts of an OpenAI assistant message.

    Thinking blocks get an empty signature: OpenAI reasoning is not signed.
    """
    blocks: list[JsonObject] = []
    if reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if text:
        blocks.append({"type": "text", "text": text})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)}
        for call in calls
    )
    return blocks


def tool_input(arguments: str) -> JsonObject:
    """A tool call's ``arguments`` text as Anthropic's ``input`` object.

    Models truncated by ``max_tokens`` leave unfinished JSON; that, like anything that is not
    an object, becomes ``{}`` so the response stays valid.
    """
    try:
        decoded: object = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        return {}
    return as_object(decoded) or {}


# -- Anthropic to OpenAI ---------------------------------------------------------------------


def anthropic_to_openai_request(request: Mapping[str, object]) -> JsonObject:
    """An OpenAI Chat Completions request from an Anthropic Messages request.

    The model is copied as is; model mapping is the caller's business. Fields with no OpenAI
    counterpart (``top_k``, ``thinking``, ``cache_control``, server tools such as web search)
    are dropped.

    Args:
        request: The decoded Anthropic request.

    Returns:
        The OpenAI request, ready to encode.
    """
    messages = _openai_system(request.get("system"))
    for message in objects(request.get("messages")):
        blocks = content_blocks(message.get("content"))
        if message.get("role") == "assistant":
            messages.append(openai_assistant_message(blocks))
        else:
            messages.extend(_openai_user_turn(blocks))
    out: JsonObject = {"model": request.get("model"), "messages": messages}
    for key in ("max_tokens", "temperature", "top_p"):
        if request.get(key) is not None:
            out[key] = request[key]
    stop = [s for s in _list(request.get("stop_sequences")) if isinstance(s, str)]
    if stop:
        out["stop"] = stop
    stream = request.get("stream")
    if isinstance(stream, bool):
        out["stream"] = stream
        if stream:
            out["stream_options"] = {"include_usage": True}
    user = as_str((as_object(request.get("metadata")) or {}).get("user_id"))
    if user:
        out["user"] = user
    tools = [_openai_tool(tool) for tool in objects(request.get("tools")) if "input_schema" in tool]
    if tools:
        out["tools"] = tools
        choice = as_object(request.get("tool_choice"))
        if choice is not None:
            out.update(_openai_tool_choice(choice))
    return out


def _list(value: object) -> list[object]:
    return cast("list[object]", value) if isinstance(value, list) else []


def _openai_system(system: object) -> list[JsonObject]:
    text = joined_text(system)
    return [{"role": "system", "content": text}] if text else []


def _openai_user_turn(blocks: list[JsonObject]) -> list[JsonObject]:
    """One Anthropic user message: its tool results as tool messages, then the rest."""
    messages: list[JsonObject] = []
    parts: list[JsonObject] = []
    for block in blocks:
        if block.get("type") == "tool_result":
            content = content_blocks(block.get("content"))
            text = joined_text(content)
            if block.get("is_error") is True:
                text = _ERROR_PREFIX + text
            tool_call_id = as_str(block.get("tool_use_id")) or ""
            messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": text})
            for item in content:
                if item.get("type") != "text" and (part := _openai_part(item)):
                    parts.append(part)
        elif part := _openai_part(block):
            parts.append(part)
    if parts or not messages:
        messages.append({"role": "user", "content": _openai_content(parts)})
    return messages


def _openai_content(parts: list[JsonObject]) -> str | list[JsonObject]:
    """Text-only content as one string, which every OpenAI-compatible server accepts."""
    if all(part["type"] == "text" for part in parts):
        return TEXT_SEPARATOR.join(cast("str", part["text"]) for part in parts)
    return parts


def _openai_part(block: JsonObject) -> JsonObject | None:
    kind = block.get("type")
    source = as_object(block.get("source")) or {}
    source_kind = source.get("type")
    if kind == "text":
        text = as_str(block.get("text"))
        return {"type": "text", "text": text} if text else None
    if kind == "image":
        if source_kind == "base64":
            return {"type": "image_url", "image_url": {"url": _data_url(source)}}
        url = as_str(source.get("url"))
        return {"type": "image_url", "image_url": {"url": url}} if url else None
    if kind == "document":
        if source_kind == "base64":
            filename = as_str(block.get("title")) or "document.pdf"
            return {"type": "file", "file": {"filename": filename, "file_data": _data_url(source)}}
        text = as_str(source.get("data")) if source_kind == "text" else None
        return {"type": "text", "text": text} if text else None
    return None


def _data_url(source: JsonObject) -> str:
    media_type = as_str(source.get("media_type")) or "application/octet-stream"
    return f"data:{media_type};base64,{as_str(source.get('data')) or ''}"


def _openai_tool(tool: JsonObject) -> JsonObject:
    schema = dict(as_object(tool.get("input_schema")) or {"type": "object"})
    schema.pop("$schema", None)  # OpenAI's strict validator rejects the meta-schema key.
    function: JsonObject = {"name": as_str(tool.get("name")) or ""}
    description = as_str(tool.get("description"))
    if description:
        function["description"] = description
    function["parameters"] = schema
    return {"type": "function", "function": function}


def _openai_tool_choice(choice: JsonObject) -> JsonObject:
    kind = choice.get("type")
    out: JsonObject = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = as_str(choice.get("name")) or ""
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


# -- OpenAI to Anthropic ---------------------------------------------------------------------


def openai_to_anthropic_request(request: Mapping[str, object]) -> JsonObject:
    """An Anthropic Messages request from an OpenAI Chat Completions request.

    System and developer messages become ``system``; tool messages become ``tool_result``
    blocks; consecutive messages of one role are merged, as Anthropic alternates roles. OpenAI's
    temperature range is twice Anthropic's, so it is capped at 1. Sampling options Anthropic
    lacks (``n``, penalties, ``seed``, ``response_format``, ``logprobs``) are dropped.

    Args:
        request: The decoded OpenAI request.

    Returns:
        The Anthropic request, ready to encode.
    """
    system, messages = _anthropic_messages(request.get("messages"))
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    out: JsonObject = {
        "model": request.get("model"),
        "max_tokens": max_tokens if isinstance(max_tokens, int) else DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        out["system"] = system
    temperature = request.get("temperature")
    if isinstance(temperature, int | float):
        out["temperature"] = min(temperature, _MAX_ANTHROPIC_TEMPERATURE)
    if request.get("top_p") is not None:
        out["top_p"] = request["top_p"]
    stop = request.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in _list(stop) if isinstance(s, str)]
    if stops:
        out["stop_sequences"] = stops
    if isinstance(request.get("stream"), bool):
        out["stream"] = request["stream"]
    user = as_str(request.get("user"))
    if user:
        out["metadata"] = {"user_id": user}
    tools = [_anthropic_tool(tool) for tool in objects(request.get("tools"))]
    tools = [tool for tool in tools if tool is not None]
    if tools:
        out["tools"] = tools
        choice = _anthropic_tool_choice(request.get("tool_choice"))
        if request.get("parallel_tool_calls") is False:
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            out["tool_choice"] = choice
    return out


def _anthropic_messages(openai_messages: object) -> tuple[str, list[JsonObject]]:
    """The system prompt and the role-alternating messages of an OpenAI conversation."""
    system: list[str] = []
    messages: list[JsonObject] = []
    for message in objects(openai_messages):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(joined_text(content))
            continue
        if role == "assistant":
            blocks = _anthropic_assistant_turn(message)
        elif role == "tool":
            blocks = [_anthropic_tool_result(message)]
        else:
            blocks = _anthropic_user_blocks(content)
        anthropic_role = "assistant" if role == "assistant" else "user"
        if messages and messages[-1]["role"] == anthropic_role:
            cast("list[JsonObject]", messages[-1]["content"]).extend(blocks)
        else:
            messages.append({"role": anthropic_role, "content": blocks})
    return TEXT_SEPARATOR.join(text for text in system if text), messages


def _anthropic_assistant_turn(message: JsonObject) -> list[JsonObject]:
    calls: list[ToolCall] = []
    for call in objects(message.get("tool_calls")):
        function = as_object(call.get("function")) or {}
        calls.append(
            ToolCall(
                id=as_str(call.get("id")) or "",
                name=as_str(function.get("name")) or "",
                arguments=as_str(function.get("arguments")) or "",
            )
        )
    reasoning = as_str(message.get("reasoning_content"))
    return anthropic_assistant_blocks(reasoning, joined_text(message.get("content")), calls)


def _anthropic_tool_result(message: JsonObject) -> JsonObject:
    return {
        "type": "tool_result",
        "tool_use_id": as_str(message.get("tool_call_id")) or "",
        "content": joined_text(message.get("content")),
    }


def _anthropic_user_blocks(content: object) -> list[JsonObject]:
    if isinstance(content, str):
        return content_blocks(content)
    blocks: list[JsonObject] = []
    for part in objects(content):
        block = _anthropic_block(part)
        if block is not None:
            blocks.append(block)
    return blocks


def _anthropic_block(part: JsonObject) -> JsonObject | None:
    kind = part.get("type")
    if kind == "text":
        text = as_str(part.get("text"))
        return {"type": "text", "text": text} if text else None
    if kind == "image_url":
        url = as_str((as_object(part.get("image_url")) or {}).get("url"))
        return {"type": "image", "source": _anthropic_source(url)} if url else None
    if kind == "file":
        data = as_str((as_object(part.get("file")) or {}).get("file_data"))
        source = _anthropic_source(data) if data else None
        if source is not None and source["type"] == "base64":
            return {"type": "document", "source": source}
    return None


def _anthropic_source(url: str) -> JsonObject:
    """A ``data:<type>;base64,`` URL as a base64 source; any other URL as a URL source."""
    header, comma, data = url.partition(",")
    if url.startswith("data:") and comma and header.endswith(";base64"):
        media_type = header.removeprefix("data:").removesuffix(";base64")
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _anthropic_tool(tool: JsonObject) -> JsonObject | None:
    function = as_object(tool.get("function"))
    if tool.get("type") != "function" or function is None:
        return None
    out: JsonObject = {"name": as_str(function.get("name")) or ""}
    description = as_str(function.get("description"))
    if description:
        out["description"] = description
    out["input_schema"] = as_object(function.get("parameters")) or {"type": "object"}
    return out


def _anthropic_tool_choice(choice: object) -> JsonObject | None:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    function = as_object((as_object(choice) or {}).get("function"))
    name = as_str((function or {}).get("name"))
    return {"type": "tool", "name": name} if name is not None else None
