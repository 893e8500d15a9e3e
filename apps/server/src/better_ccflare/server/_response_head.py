"""A response's head and the first piece of its body, written to the client in one send.

uvicorn's response cycle writes the status line and headers as soon as the application starts
the response, and the body when it arrives, so every response costs two sends to the socket.
On loopback a send is most of what a small write costs (the kernel delivers the segment to the
receiver inside the call): the proxy's CPU per JSON request at concurrency 1 was 3 to 5 % lower
with one send (``docs/performance.md``, "The tail"). The cycle is handed a stand-in for the
transport that holds the head back until the body's first write, or until the event loop's
next turn if none comes in this one (a stream whose first event is late still gets its headers
at once).
"""

from __future__ import annotations

import asyncio

__all__ = ["HeadWithBody"]


class HeadWithBody:
    """The part of a transport a uvicorn response cycle uses (``write``, ``close``,
    ``is_closing``), with the first write held back until the second or the loop's next turn."""

    __slots__ = ("_head", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
        elif self._started:
            self._transport.write(data)
        else:
            self._started = True
            self._head = data
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the head now if it is still held."""
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()
