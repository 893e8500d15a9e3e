"""The client side of end-to-end tests: the official ``anthropic`` SDK, the request history as
the service recorded it, and raw HTTP for requests no well-behaved client would send."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import anthropic
import msgspec

from better_ccflare.core import ApiKey, ApiKeyRole, RequestRecord
from better_ccflare.proxy import generate_api_key, hash_api_key
from better_ccflare.server import Service

from .messages import MODEL

__all__ = ["RawReply", "add_api_key", "ask", "raw_request", "recorded", "sdk", "text_of"]


def sdk(url: str, api_key: str = "client-key") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=api_key, max_retries=0)


async def ask(url: str, text: str = "Hi") -> anthropic.types.Message:
    """One non-streaming message through a fresh SDK client, closed afterwards."""
    async with sdk(url) as client:
        return await client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": text}]
        )


async def ask_streaming(
    url: str, text: str = "Hi", max_tokens: int = 64
) -> anthropic.types.Message:
    """One streamed message through a fresh SDK client, read to its end."""
    async with (
        sdk(url) as client,
        client.messages.stream(
            model=MODEL, max_tokens=max_tokens, messages=[{"role": "user", "content": text}]
        ) as stream,
    ):
        return await stream.get_final_message()


def text_of(message: anthropic.types.Message) -> str:
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


async def recorded(service: Service, count: int = 1) -> list[RequestRecord]:
    """The request history once ``count`` rows are in it.

    A request is recorded just after its response ends, so the client can be a moment ahead
    of the record; wait (bounded) instead of racing it.
    """
    rows: list[RequestRecord] = []
    for _ in range(200):
        await service.store.flush()
        rows = await service.store.requests.list_recent(max(count, 5))
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} recorded request(s), found {len(rows)}")


async def add_api_key(service: Service, role: ApiKeyRole, name: str | None = None) -> str:
    """A new active proxy key with ``role`` (named for it unless ``name`` is given), in force
    from the next request; returns its text."""
    key = generate_api_key()
    name = name or role.value
    await service.store.api_keys.add(
        ApiKey(
            id=f"key-{name}",
            name=name,
            hashed_key=hash_api_key(key),
            prefix_last_8=key[-8:],
            created_at_ms=0,
            role=role,
        )
    )
    service.auth.invalidate()
    return key


class RawReply(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(
    url: str,
    target: bytes,
    body: bytes = b"",
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json"),),
) -> RawReply:
    """``POST target`` written byte for byte (HTTP clients normalise paths; this does not),
    answered with a content-length body."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [b"POST " + target + b" HTTP/1.1", b"host: " + parts.netloc.encode()]
    head += [name + b": " + value for name, value in headers]
    head += [b"content-length: " + str(len(body)).encode(), b"connection: close"]
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
    try:
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    raw_headers, _, payload = rest.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in raw_headers.split(b"\r\n") if line)
    decoded = {k.decode().lower(): v.decode() for k, v in fields.items()}
    if decoded.get("transfer-encoding") == "chunked":
        payload = _unchunk(payload)
    return RawReply(int(status_line.split()[1]), decoded, payload)


def _unchunk(data: bytes) -> bytes:
    out: list[bytes] = []
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2 :]
