"""Streaming OpenAI ``chat.completion.chunk`` SSE to Anthropic Messages SSE, as bytes arrive.

Every Anthropic event is written as soon as the chunk that causes it has been read; the only
thing held back is an unfinished line. Lines are split on the newline byte, which never occurs
inside a UTF-8 sequence, so a chunk boundary in the middle of a character is harmless. Each
OpenAI chunk is one ``data:`` line; ``event:``, ``id:`` and comment lines carry nothing here.

The events:

* ``message_start`` with the first chunk's id and model (usage is not known yet);
* a ``thinking`` block for ``reasoning_content`` and a ``text`` block for ``content``, a new block
  whenever the stream switches between them;
* one ``tool_use`` block per tool call, started by the call's first fragment, and one
  ``input_json_delta`` per argument fragment, forwarded as it arrives (the reference held them
  all back until the end);
* at ``finish_reason``, ``content_block_stop`` for every open block; then, once usage arrives
  (the ``include_usage`` chunk, which follows the finish), at ``[DONE]`` or at :meth:`close`,
  ``message_delta`` with the stop reason and usage, and ``message_stop``.

Text and thinking blocks close when another block starts, as in Anthropic streams. Tool blocks
stay open until the finish instead: OpenAI never says a call's arguments are complete, and a
server may send a fragment for an earlier call after a later one has begun. Anthropic events
carry their block index, so clients handle several open blocks.

An upstream that stops without ``finish_reason`` or ``[DONE]`` still yields a complete message
from :meth:`close`. An ``{"error": ...}`` chunk becomes an ``error`` event and ends the stream,
as an in-stream error does on Anthropic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from better_ccflare.core import TokenUsage

from ._contract import ResponseTransformer
from ._openai_request import JsonObject
from ._openai_response import (
    IdFactory,
    OpenAICompletion,
    OpenAIMessage,
    OpenAIToolCall,
    OpenAIUsage,
    TranslationError,
    anthropic_error,
    anthropic_stop_reason,
    anthropic_usage,
    decode_completion,
    random_id,
)

__all__ = ["OpenAIStreamTransformer"]

_TextKind = Literal["text", "thinking"]
_DONE = b"[DONE]"


def _event(name: str, data: Mapping[str, object]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


class OpenAIStreamTransformer(ResponseTransformer):
    """Translates one OpenAI SSE response body into an Anthropic SSE body, incrementally.

    Args:
        new_id: Makes the message id and tool-call ids the upstream left out.

    Raises:
        TranslationError: From :meth:`feed`, when a complete ``data:`` line is not a chunk.
    """

    __slots__ = (
        "_called_tools",
        "_ended",
        "_finish_reason",
        "_new_id",
        "_next_index",
        "_open",
        "_partial",
        "_started",
        "_text_block",
        "_tool_blocks",
        "_usage",
    )

    def __init__(self, *, new_id: IdFactory = random_id) -> None:
        self._new_id = new_id
        self._partial = bytearray()
        self._started = False
        self._ended = False
        self._next_index = 0
        self._open: list[int] = []
        """Anthropic indexes of the blocks started and not yet stopped, in start order."""
        self._text_block: tuple[_TextKind, int] | None = None
        self._tool_blocks: dict[int, tuple[str, int]] = {}
        """OpenAI tool-call index to (call id, Anthropic index), for the open tool blocks."""
        self._called_tools = False
        self._finish_reason: str | None = None
        self._usage: OpenAIUsage | None = None

    def feed(self, chunk: bytes) -> bytes:
        if b"\n" not in chunk:
            self._partial += chunk
            return b""
        lines = chunk.split(b"\n")
        lines[0] = bytes(self._partial) + lines[0]
        self._partial[:] = lines.pop()
        return b"".join(self._line(line) for line in lines)

    def close(self) -> bytes:
        tail = bytes(self._partial)
        self._partial.clear()
        try:
            out = self._line(tail)
        except TranslationError:
            out = b""  # A line cut off by the upstream closing mid-chunk, not a bad chunk.
        return out + self._end()

    def _line(self, line: bytes) -> bytes:
        line = line.removesuffix(b"\r")
        if self._ended or not line.startswith(b"data:"):
            return b""
        payload = line[len(b"data:") :].strip()
        if payload == _DONE:
            return self._end()
        return self._chunk(decode_completion(payload))

    def _chunk(self, chunk: OpenAICompletion) -> bytes:
        if chunk.error is not None:
            self._ended = True
            return _event("error", anthropic_error(chunk.error, status=None))
        out = bytearray()
        if not self._started:
            out += self._start(chunk.id, chunk.model)
        choice = chunk.first_choice
        if choice is not None:
            if choice.delta is not None:
                out += self._delta(choice.delta)
            if choice.finish_reason:
                self._finish_reason = choice.finish_reason
                out += self._stop_blocks()
        if chunk.usage is not None:
            self._usage = chunk.usage
            if self._finish_reason is not None:
                out += self._end()
        return bytes(out)

    def _start(self, message_id: str | None, model: str | None) -> bytes:
        self._started = True
        message: JsonObject = {
            "id": message_id or self._new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model or "",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(TokenUsage()),
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _delta(self, delta: OpenAIMessage) -> bytes:
        out = bytearray()
        if delta.thinking:
            out += self._text_fragment("thinking", delta.thinking)
        if delta.text:
            out += self._text_fragment("text", delta.text)
        for call in delta.tool_calls or ():
            out += self._tool_fragment(call)
        return bytes(out)

    def _text_fragment(self, kind: _TextKind, fragment: str) -> bytes:
        out = bytearray()
        if self._text_block is None or self._text_block[0] != kind:
            empty: JsonObject = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            out += self._start_block(empty)
            self._text_block = (kind, self._open[-1])
        delta: JsonObject = (
            {"type": "text_delta", "text": fragment}
            if kind == "text"
            else {"type": "thinking_delta", "thinking": fragment}
        )
        out += self._block_delta(self._text_block[1], delta)
        return bytes(out)

    def _tool_fragment(self, call: OpenAIToolCall) -> bytes:
        out = bytearray()
        function = call.function
        block = self._tool_blocks.get(call.index)
        if block is None or (call.id is not None and call.id != block[0]):
            if block is not None:
                # A new id at a used index: servers that number every call 0 send whole calls.
                out += self._stop_block(block[1])
            call_id = call.id or self._new_id("toolu")
            name = (function.name if function else None) or ""
            out += self._start_block({"type": "tool_use", "id": call_id, "name": name, "input": {}})
            block = (call_id, self._open[-1])
            self._tool_blocks[call.index] = block
            self._called_tools = True
        if function is not None and function.arguments:
            delta: JsonObject = {"type": "input_json_delta", "partial_json": function.arguments}
            out += self._block_delta(block[1], delta)
        return bytes(out)

    def _start_block(self, content_block: JsonObject) -> bytes:
        """Start a block at the next index, stopping the open text or thinking block first."""
        out = self._stop_block(self._text_block[1]) if self._text_block else b""
        index = self._next_index
        self._next_index += 1
        self._open.append(index)
        start = {"type": "content_block_start", "index": index, "content_block": content_block}
        return out + _event("content_block_start", start)

    def _block_delta(self, index: int, delta: JsonObject) -> bytes:
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        return _event("content_block_delta", event)

    def _stop_block(self, index: int) -> bytes:
        self._open.remove(index)
        if self._text_block is not None and self._text_block[1] == index:
            self._text_block = None
        self._tool_blocks = {k: v for k, v in self._tool_blocks.items() if v[1] != index}
        return _event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _stop_blocks(self) -> bytes:
        return b"".join(self._stop_block(index) for index in list(self._open))

    def _end(self) -> bytes:
        """Finish the message: stop open blocks, then ``message_delta`` and ``message_stop``."""
        if self._ended:
            return b""
        self._ended = True
        out = b"" if self._started else self._start(None, None)
        out += self._stop_blocks()
        usage = self._usage.token_usage() if self._usage else TokenUsage()
        stop_reason = anthropic_stop_reason(self._finish_reason, called_tools=self._called_tools)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": anthropic_usage(usage),
        }
        return (
            out + _event("message_delta", delta) + _event("message_stop", {"type": "message_stop"})
        )
