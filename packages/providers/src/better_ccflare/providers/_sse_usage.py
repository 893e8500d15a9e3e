"""Usage, model and stop reason read off Anthropic Messages responses as they pass through.

This runs on the proxy's hot path for every response, so the streaming parser does as little as
it can: it splits chunks into lines, keeps only the current unfinished line, and JSON-decodes
just the events that carry usage (``message_start``, ``message_delta``), an in-band ``error``, or
the closing ``message_stop`` (the proxy completes a stream that has its stop reason but not that).
Content deltas, which are nearly all of a stream, are skipped by looking at the event name (or,
for events without one, at the raw bytes) and never decoded. Lines may end in LF or CRLF; the
bare CR that the SSE grammar also allows is not used by any upstream we know and is not handled.

Token accounting follows the Messages API: ``message_start`` carries the input side and a
provisional output count; ``message_delta`` carries the final output count and, on some
upstreams, corrected input-side counts. Cache writes are split by lifetime from
``usage.cache_creation.ephemeral_{5m,1h}_input_tokens``; an upstream that only reports the
``cache_creation_input_tokens`` total has all of it counted as 5-minute writes, the cheaper and
by far the more common kind.
"""

from __future__ import annotations

import msgspec

from better_ccflare.core import TokenUsage

from ._readings import UsageParser, UsageResult

__all__ = ["MAX_JSON_BODY_BYTES", "MAX_SSE_LINE_BYTES", "AnthropicUsageParser"]

MAX_SSE_LINE_BYTES = 1 << 20
"""Longest SSE line (or multi-line event payload) kept; longer ones are dropped unread."""
MAX_JSON_BODY_BYTES = 32 << 20
"""Largest non-streaming body parsed; a larger one yields no usage rather than unbounded memory."""

_WANTED_EVENTS = frozenset({b"message_start", b"message_delta", b"message_stop", b"error"})
_WANTED_MARKERS = (b'"message_start"', b'"message_delta"', b'"message_stop"', b'"error"')
_WANTED_NAMES = tuple(sorted(_WANTED_EVENTS))
_PLAIN_MESSAGE_STOPS = frozenset(
    {
        b'event: message_stop\ndata: {"type":"message_stop"}',
        b'event: message_stop\ndata: {"type": "message_stop"}',
    }
)
"""``message_stop`` events byte for byte as Anthropic's API and SDK-built streams send them;
recognised whole (the stream's end, read on every streamed request) instead of walked and
decoded. Any other spelling takes the line walk."""
"""A fixed search order for the fast path (a set's order changes with the hash seed)."""


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None


class _Error(msgspec.Struct):
    type: str | None = None


class _Message(msgspec.Struct):
    """A non-streaming response body, or ``message_start.message``."""

    type: str | None = None
    model: str | None = None
    usage: _Usage | None = None
    stop_reason: str | None = None
    error: _Error | None = None


class _Delta(msgspec.Struct):
    stop_reason: str | None = None


class _Event(msgspec.Struct):
    """The fields of the SSE events we read; everything else is ignored while decoding."""

    type: str | None = None
    message: _Message | None = None
    usage: _Usage | None = None
    delta: _Delta | None = None
    error: _Error | None = None


# strict=False tolerates upstreams that send integral floats ("12.0") or numeric strings.
_EVENT_DECODER = msgspec.json.Decoder(_Event, strict=False)
_MESSAGE_DECODER = msgspec.json.Decoder(_Message, strict=False)


class _Totals:
    """The running reading of one response; mutable so the streaming path allocates little."""

    __slots__ = (
        "cache_1h",
        "cache_5m",
        "cache_read",
        "error_type",
        "input",
        "model",
        "output",
        "stop_reason",
        "stopped",
    )

    def __init__(self) -> None:
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.stopped = False
        self.error_type: str | None = None
        self.input = 0
        self.output = 0
        self.cache_read = 0
        self.cache_5m = 0
        self.cache_1h = 0

    def copy(self) -> _Totals:
        other = _Totals()
        for name in _Totals.__slots__:
            setattr(other, name, getattr(self, name))
        return other

    def apply_usage(self, usage: _Usage) -> None:
        """Overwrite every count the upstream reported; keep the ones it left out."""
        if usage.input_tokens is not None:
            self.input = usage.input_tokens
        if usage.output_tokens is not None:
            self.output = usage.output_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read = usage.cache_read_input_tokens
        split = usage.cache_creation
        if split is not None:
            self.cache_5m = split.ephemeral_5m_input_tokens or 0
            self.cache_1h = split.ephemeral_1h_input_tokens or 0
        elif (
            usage.cache_creation_input_tokens is not None
            and usage.cache_creation_input_tokens != self.cache_5m + self.cache_1h
        ):
            # A bare total that disagrees with what we know replaces it; one that agrees
            # (message_delta repeating message_start's total) keeps the known split.
            self.cache_5m = usage.cache_creation_input_tokens
            self.cache_1h = 0

    def apply_message(self, message: _Message) -> None:
        if message.model:
            self.model = message.model
        if message.usage is not None:
            self.apply_usage(message.usage)
        if message.stop_reason:
            self.stop_reason = message.stop_reason
        if message.error is not None and message.error.type:
            self.error_type = message.error.type

    def apply_event(self, event_name: bytes | None, payload: bytes) -> None:
        try:
            event = _EVENT_DECODER.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        kind = event.type or (event_name.decode("ascii", "replace") if event_name else None)
        if kind == "message_start" and event.message is not None:
            self.apply_message(event.message)
        elif kind == "message_delta":
            if event.usage is not None:
                self.apply_usage(event.usage)
            if event.delta is not None and event.delta.stop_reason:
                self.stop_reason = event.delta.stop_reason
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error" and event.error is not None and event.error.type:
            self.error_type = event.error.type

    def result(self) -> UsageResult:
        return UsageResult(
            model=self.model,
            usage=TokenUsage(
                input_tokens=self.input,
                output_tokens=self.output,
                cache_read_input_tokens=self.cache_read,
                cache_write_5m_input_tokens=self.cache_5m,
                cache_write_1h_input_tokens=self.cache_1h,
            ),
            error_type=self.error_type,
            stop_reason=self.stop_reason,
            message_stopped=self.stopped,
        )


class AnthropicUsageParser(UsageParser):
    """Reads an Anthropic Messages response: an SSE stream when ``streaming``, else JSON.

    Args:
        streaming: Whether the body is ``text/event-stream``.
    """

    __slots__ = (
        "_body",
        "_data",
        "_data_size",
        "_discarding",
        "_event_name",
        "_overflowed",
        "_partial",
        "_streaming",
        "_totals",
        "_wanted",
    )

    def __init__(self, *, streaming: bool) -> None:
        self._streaming = streaming
        self._totals = _Totals()
        self._body = bytearray()
        self._overflowed = False
        self._partial = bytearray()
        self._discarding = False
        self._event_name: bytes | None = None
        # True/False once the event's name has decided; None while the event is unnamed.
        self._wanted: bool | None = None
        self._data: list[bytes] = []
        self._data_size = 0

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if not self._streaming:
            self._feed_json(chunk)
            return
        if b"\n" not in chunk:
            self._extend_partial(chunk)
            return
        if self._at_event_boundary() and b"\r" not in chunk:
            end = chunk.rfind(b"\n\n") + 2
            if end > 1:
                self._whole_events(chunk[:end])
                chunk = chunk[end:]
                if not chunk:
                    return
                if b"\n" not in chunk:
                    self._extend_partial(chunk)
                    return
        lines = chunk.split(b"\n")
        start = 0
        if self._discarding:
            self._discarding = False
            start = 1  # lines[0] ends a line that was too long to keep
        elif self._partial:
            self._partial += lines[0]
            lines[0] = bytes(self._partial)
        self._partial.clear()
        tail = lines.pop()
        self._lines(lines, start)
        self._extend_partial(tail)

    def result(self) -> UsageResult:
        if not self._streaming:
            return self._json_result()
        pending = list(self._data)
        if self._partial and not self._discarding:
            tail = bytes(self._partial).removesuffix(b"\r")
            wanted = self._wanted if self._wanted is not None else _names_wanted_event(tail)
            if tail.startswith(b"data:") and wanted:
                pending.append(_field_value(tail))
        if not pending:
            return self._totals.result()
        # An event the stream has not finished (no blank line yet): count it without
        # committing, so a later chunk that completes it is not counted twice.
        totals = self._totals.copy()
        totals.apply_event(self._event_name, b"\n".join(pending))
        return totals.result()

    def _feed_json(self, chunk: bytes) -> None:
        if self._overflowed:
            return
        if len(self._body) + len(chunk) > MAX_JSON_BODY_BYTES:
            self._overflowed = True
            self._body = bytearray()
            return
        self._body += chunk

    def _json_result(self) -> UsageResult:
        if self._overflowed or not self._body:
            return UsageResult()
        try:
            message = _MESSAGE_DECODER.decode(self._body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return UsageResult()
        totals = _Totals()
        totals.apply_message(message)
        return totals.result()

    def _extend_partial(self, piece: bytes) -> None:
        if self._discarding:
            return
        if len(self._partial) + len(piece) > MAX_SSE_LINE_BYTES:
            self._partial.clear()
            self._discarding = True
            return
        self._partial += piece

    def _at_event_boundary(self) -> bool:
        """Nothing of an unfinished line or event is held: the next byte starts an event."""
        return not (
            self._partial
            or self._discarding
            or self._data
            or self._event_name is not None
            or self._wanted is not None
        )

    def _whole_events(self, events: bytes) -> None:
        """Complete events (``events`` ends with a blank line, uses ``\\n`` only): the fast path.

        Most of a stream is text deltas this parser never reads. Rather than walking every
        line, the events whose bytes mention a wanted event's name at all are found with a
        substring search (that lets through every event the line walk would read, and a few
        it then skips) and only those are walked, in stream order; the rest are passed over
        whole. A 20-event stream costs a fifth of the line walk.
        """
        found: dict[int, int] = {}
        for name in _WANTED_NAMES:
            at = events.find(name)
            while at != -1:
                start = events.rfind(b"\n\n", 0, at)
                end = events.find(b"\n\n", at)
                found[0 if start < 0 else start + 2] = end
                at = events.find(name, end)
        for start in sorted(found):
            block = events[start : found[start]]
            if block in _PLAIN_MESSAGE_STOPS:
                # The closing event exactly as Anthropic sends it: nothing in it to decode.
                self._totals.stopped = True
                continue
            self._lines([*block.split(b"\n"), b""], 0)

    def _lines(self, lines: list[bytes], start: int) -> None:
        """Process complete lines: one inlined loop, because it runs for every line."""
        wanted = self._wanted
        for index in range(start, len(lines)):
            line = lines[index]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                self._dispatch()
                wanted = None
            elif wanted is False and not line.startswith(b"event:"):
                continue  # the body of an event we do not read
            elif len(line) > MAX_SSE_LINE_BYTES:
                continue
            elif line.startswith(b"data:"):
                if wanted is None and not _names_wanted_event(line):
                    continue
                value = _field_value(line)
                self._data_size += len(value) + 1
                if self._data_size > MAX_SSE_LINE_BYTES:
                    wanted = False
                    self._data.clear()
                else:
                    self._data.append(value)
            elif line.startswith(b"event:"):
                self._event_name = _field_value(line).strip()
                wanted = self._event_name in _WANTED_EVENTS
            # Comments (":"), id: and retry: lines carry nothing we read.
        self._wanted = wanted

    def _dispatch(self) -> None:
        if self._data:
            self._totals.apply_event(self._event_name, b"\n".join(self._data))
            self._data.clear()
        self._data_size = 0
        self._event_name = None


def _names_wanted_event(data_line: bytes) -> bool:
    """For an event without an ``event:`` line: could its data be one we read? (Cheap test.)"""
    return any(marker in data_line for marker in _WANTED_MARKERS)


def _field_value(line: bytes) -> bytes:
    """The value of an SSE ``name:value`` line, without the one optional leading space."""
    value = line[line.index(b":") + 1 :]
    return value[1:] if value.startswith(b" ") else value
