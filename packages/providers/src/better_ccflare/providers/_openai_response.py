"""Non-streaming OpenAI Chat Completions responses to Anthropic Messages responses, and back.

Also the pieces the streaming translation shares: the decoded shape of a completion (a
``chat.completion`` and a ``chat.completion.chunk`` differ only in ``message`` versus
``delta``), stop reasons, usage and errors.

OpenAI bodies are decoded into typed structs that ignore unknown fields, so the extra fields
OpenAI-compatible servers add are harmless. Usage maps as Anthropic counts it: OpenAI's
``prompt_tokens`` includes cached tokens, Anthropic's ``input_tokens`` does not. Errors map by
HTTP status when there is one, and by the OpenAI error type or numeric code otherwise.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

import msgspec

from better_ccflare.core import BetterCcflareError, TokenUsage

from ._contract import ResponseTransformer
from ._openai_request import (
    JsonObject,
    ToolCall,
    anthropic_assistant_blocks,
    as_object,
    as_str,
    content_blocks,
    openai_assistant_message,
)

__all__ = [
    "IdFactory",
    "OpenAIJsonTransformer",
    "TranslationError",
    "anthropic_error",
    "anthropic_error_from_openai_body",
    "anthropic_message_from_openai",
    "anthropic_message_to_openai",
    "anthropic_stop_reason",
    "openai_error_from_anthropic",
    "random_id",
]


class TranslationError(BetterCcflareError):
    """An upstream body could not be translated because it is not the JSON it should be."""


IdFactory = Callable[[str], str]
"""Makes a fresh id from a prefix (``msg``, ``toolu``); injectable so tests are deterministic."""


def random_id(prefix: str) -> str:
    """``<prefix>_`` and 24 random hex digits, like Anthropic's ids in length."""
    return f"{prefix}_{secrets.token_hex(12)}"


# -- the decoded OpenAI shapes ---------------------------------------------------------------


class OpenAIFunction(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class OpenAIToolCall(msgspec.Struct):
    index: int = 0
    """Which call a streamed fragment belongs to; absent in non-streaming responses."""
    id: str | None = None
    function: OpenAIFunction | None = None


class OpenAIMessage(msgspec.Struct):
    """A choice's ``message``, or a chunk's ``delta`` (the same fields, in fragments)."""

    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    """What OpenRouter and some others call ``reasoning_content``."""
    tool_calls: list[OpenAIToolCall] | None = None

    @property
    def text(self) -> str | None:
        """The visible answer; a refusal stands in for content, which is then null."""
        return self.content or self.refusal

    @property
    def thinking(self) -> str | None:
        return self.reasoning_content or self.reasoning


class OpenAIChoice(msgspec.Struct):
    index: int = 0
    message: OpenAIMessage | None = None
    delta: OpenAIMessage | None = None
    finish_reason: str | None = None


class OpenAIPromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class OpenAIUsage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: OpenAIPromptDetails | None = None

    def token_usage(self) -> TokenUsage:
        """The counts the Anthropic way: cached tokens are not part of ``input_tokens``."""
        details = self.prompt_tokens_details
        cached = (details.cached_tokens if details else None) or 0
        return TokenUsage(
            input_tokens=max((self.prompt_tokens or 0) - cached, 0),
            output_tokens=self.completion_tokens or 0,
            cache_read_input_tokens=cached,
        )


class OpenAICompletion(msgspec.Struct):
    """A ``chat.completion`` body or one ``chat.completion.chunk``; also an error body."""

    id: str | None = None
    model: str | None = None
    choices: list[OpenAIChoice] = msgspec.field(default_factory=list[OpenAIChoice])
    usage: OpenAIUsage | None = None
    error: object = None
    """``{"message", "type", "code"}`` (or, from some servers, a bare string)."""

    @property
    def first_choice(self) -> OpenAIChoice | None:
        """Choice 0: a request sent by the proxy never asks for more than one."""
        return next((choice for choice in self.choices if choice.index == 0), None)


# strict=False accepts the numeric strings and integral floats some servers send.
_COMPLETION_DECODER = msgspec.json.Decoder(OpenAICompletion, strict=False)


def decode_completion(body: bytes) -> OpenAICompletion:
    """Decode a completion or chunk.

    Raises:
        TranslationError: ``body`` is not JSON, or not shaped like a completion.
    """
    try:
        return _COMPLETION_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TranslationError(
            f"The upstream's OpenAI response is not a valid chat completion ({exc}): {body[:200]!r}"
        ) from exc


# -- stop reasons and usage ------------------------------------------------------------------

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def anthropic_stop_reason(finish_reason: str | None, *, called_tools: bool) -> str:
    """Anthropic's ``stop_reason`` for an OpenAI ``finish_reason``.

    Some servers finish a tool-calling turn with ``stop`` or nothing at all; the calls decide.
    """
    if called_tools and finish_reason in (None, "stop"):
        return "tool_use"
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def anthropic_usage(usage: TokenUsage) -> JsonObject:
    """The ``usage`` object of an Anthropic message (or ``message_delta``)."""
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _openai_usage(usage: JsonObject) -> JsonObject:
    cached = _int(usage.get("cache_read_input_tokens"))
    prompt = (
        _int(usage.get("input_tokens")) + cached + _int(usage.get("cache_creation_input_tokens"))
    )
    completion = _int(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


# -- errors ----------------------------------------------------------------------------------

_ERROR_TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_ERROR_TYPES_BY_NAME = {
    **{name: name for name in _ERROR_TYPES_BY_STATUS.values()},
    "insufficient_quota": "rate_limit_error",
    "requests": "rate_limit_error",
    "tokens": "rate_limit_error",
    "rate_limit_exceeded": "rate_limit_error",
}
_FIRST_SERVER_ERROR = 500
_MAX_RAW_MESSAGE = 500


def _error_type(status: int | None, name: str | None) -> str:
    if status is not None and status in _ERROR_TYPES_BY_STATUS:
        return _ERROR_TYPES_BY_STATUS[status]
    if status is not None and status >= _FIRST_SERVER_ERROR:
        return "api_error"
    if name in _ERROR_TYPES_BY_NAME:
        return _ERROR_TYPES_BY_NAME[name]
    return "invalid_request_error" if status is not None else "api_error"


def anthropic_error(error: object, *, status: int | None) -> JsonObject:
    """An Anthropic error body from an OpenAI ``error`` value.

    Args:
        error: The ``error`` member of an OpenAI body: an object with ``message``, ``type`` and
            ``code``, or a bare message string.
        status: The HTTP status, or ``None`` for an error inside a 200 stream; then a numeric
            ``code`` (OpenRouter puts the status there) or the OpenAI type decides.
    """
    fields = as_object(error) or {}
    message = as_str(fields.get("message")) or as_str(error)
    code = fields.get("code")
    if status is None and isinstance(code, int):
        status = code
    kind = _error_type(status, as_str(fields.get("type")) or as_str(code))
    if not message:
        where = f"HTTP {status}" if status is not None else "an error"
        message = f"The upstream returned {where} with no error message."
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_error_from_openai_body(status: int, body: bytes) -> JsonObject:
    """An Anthropic error body from an OpenAI-compatible server's error response.

    Gateways in front of these servers answer with HTML or plain text as often as with JSON,
    so anything that is not an OpenAI error object becomes the message, shortened.
    vLLM's older top-level ``{"object": "error", "message": ...}`` shape is understood too.
    """
    try:
        decoded: object = msgspec.json.decode(body)
    except msgspec.DecodeError:
        decoded = None
    fields = as_object(decoded)
    if fields is not None:
        return anthropic_error(fields.get("error", fields), status=status)
    text = body.decode("utf-8", "replace").strip()[:_MAX_RAW_MESSAGE]
    return anthropic_error(text or None, status=status)


def openai_error_from_anthropic(error_body: Mapping[str, object]) -> JsonObject:
    """An OpenAI error body from an Anthropic one; the type is kept, OpenAI SDKs go by status."""
    error = as_object(error_body.get("error")) or {}
    return {
        "error": {
            "message": as_str(error.get("message")) or "",
            "type": as_str(error.get("type")) or "api_error",
            "param": None,
            "code": None,
        }
    }


# -- messages --------------------------------------------------------------------------------


def _tool_calls(message: OpenAIMessage, new_id: IdFactory) -> list[ToolCall]:
    """The message's complete tool calls; an id the server left out is made up."""
    calls: list[ToolCall] = []
    for call in message.tool_calls or ():
        function = call.function or OpenAIFunction()
        calls.append(
            ToolCall(
                id=call.id or new_id("toolu"),
                name=function.name or "",
                arguments=function.arguments or "",
            )
        )
    return calls


def anthropic_message_from_openai(body: bytes, *, new_id: IdFactory = random_id) -> JsonObject:
    """An Anthropic message from a ``chat.completion`` body.

    A 200 body that carries only an ``error`` (some servers do that) becomes an Anthropic error.

    Args:
        body: The upstream's JSON body.
        new_id: Makes ids the upstream left out.

    Raises:
        TranslationError: ``body`` is not a chat completion.
    """
    completion = decode_completion(body)
    if completion.error is not None and not completion.choices:
        return anthropic_error(completion.error, status=None)
    choice = completion.first_choice or OpenAIChoice()
    message = choice.message or OpenAIMessage()
    calls = _tool_calls(message, new_id)
    usage = completion.usage.token_usage() if completion.usage else TokenUsage()
    return {
        "id": completion.id or new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": completion.model or "",
        "content": anthropic_assistant_blocks(message.thinking, message.text, calls),
        "stop_reason": anthropic_stop_reason(choice.finish_reason, called_tools=bool(calls)),
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }


def anthropic_message_to_openai(message: Mapping[str, object], *, created: int) -> JsonObject:
    """A ``chat.completion`` body from an Anthropic message.

    Args:
        message: The decoded Anthropic message.
        created: Epoch seconds for ``created``; the caller owns the clock.
    """
    stop_reason = as_str(message.get("stop_reason")) or "end_turn"
    return {
        "id": as_str(message.get("id")) or "",
        "object": "chat.completion",
        "created": created,
        "model": as_str(message.get("model")) or "",
        "choices": [
            {
                "index": 0,
                "message": openai_assistant_message(content_blocks(message.get("content"))),
                "finish_reason": _FINISH_REASONS.get(stop_reason, "stop"),
                "logprobs": None,
            }
        ],
        "usage": _openai_usage(as_object(message.get("usage")) or {}),
    }


class OpenAIJsonTransformer(ResponseTransformer):
    """Turns a non-streaming OpenAI response, success or error, into Anthropic JSON.

    JSON cannot be translated piecewise, so the body is held until :meth:`close`.

    Args:
        status: The upstream's HTTP status; 400 and above is translated as an error body.
        new_id: Makes ids the upstream left out.
    """

    __slots__ = ("_body", "_new_id", "_status")

    def __init__(self, *, status: int, new_id: IdFactory = random_id) -> None:
        self._status = status
        self._new_id = new_id
        self._body = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        self._body += chunk
        return b""

    def close(self) -> bytes:
        body = bytes(self._body)
        self._body.clear()
        if self._status >= 400:
            return msgspec.json.encode(anthropic_error_from_openai_body(self._status, body))
        return msgspec.json.encode(anthropic_message_from_openai(body, new_id=self._new_id))
