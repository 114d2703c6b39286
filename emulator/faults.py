"""Fault injection: the failures a client of the real core has to survive.

With probability ``rate`` per request (seeded RNG, so a run can be replayed) one of:

- ``http_500`` / ``http_502`` / ``http_503``: an error answer with the core's error body
  (code ``INTERNAL_ERROR``); the request is not processed;
- ``reset``: the connection is aborted (RST) before any answer;
- ``hang``: nothing happens for ``timeout_s`` seconds, then the request is processed and
  answered normally (a client with a shorter timeout gives up first);
- ``truncate``: the request is processed, the status line, headers and part of the body are
  sent, then the connection is dropped; the declared ``Content-Length`` (or the unfinished
  chunked encoding) lets the client see the body is incomplete. An answer without a body
  (204) is reset instead, never sent as if complete.

``methods`` restricts random faults to some HTTP methods: ``("POST", "PUT", "DELETE")`` with
``hang`` is a core that applies writes after the client gave up. Tests script exact faults
with :meth:`FaultInjector.plan`: the next matching request(s) get a given fault, a hold of
their own length, and callbacks when the request is received and when it has been applied.

Connection-level faults need the transport of the server connection, which uvicorn exposes
through the ASGI ``send`` callable (as used by :mod:`emulator.testing` and the CLI).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

FAULT_KINDS = ("http_500", "http_502", "http_503", "reset", "hang", "truncate")
HTTP_FAULTS = {"http_500": 500, "http_502": 502, "http_503": 503}


@dataclass
class PlannedFault:
    """A scripted fault for ``times`` requests matching ``method`` and ``path`` (the path under
    ``/api/v1``, matched as a prefix), after letting the first ``after`` of them through.
    ``kind`` None injects nothing but the hold and the callbacks. ``on_received`` runs once the
    request body is read, ``on_applied`` once the core has done the work, before the answer is
    sent (both in a worker thread); ``done`` is set after each request, and ``requests`` lists
    the requests it matched."""

    kind: str | None
    method: str | None = None
    path: str | None = None
    times: int = 1
    after: int = 0
    hold_s: float = 0.0
    on_received: Callable[[], None] | None = None
    on_applied: Callable[[], None] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) matched
    passed: int = 0

    @property
    def seen(self) -> int:
        return len(self.requests)

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path is None or path.startswith("/api/v1" + self.path)))


class FaultInjector:
    def __init__(
        self,
        rate: float = 0.0,
        seed: int | None = None,
        kinds: Sequence[str] | None = None,
        timeout_s: float = 10.0,
        methods: Sequence[str] | None = None,
    ):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {rate}")
        kinds = tuple(kinds) if kinds else FAULT_KINDS
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
        self.rate = rate
        self.kinds = kinds
        self.timeout_s = timeout_s
        self.methods = frozenset(m.upper() for m in methods) if methods else None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._planned: list[PlannedFault] = []
        self.counts: Counter[str] = Counter()

    def plan(self, kind: str | None = "hang", **options: Any) -> PlannedFault:
        """Script a fault (see :class:`PlannedFault`); planned faults come before random ones."""
        if kind is not None and kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        planned = PlannedFault(kind, **options)
        if kind == "hang" and not planned.hold_s:
            planned.hold_s = self.timeout_s
        with self._lock:
            self._planned.append(planned)
        return planned

    def take_planned(self, method: str, path: str) -> PlannedFault | None:
        """The planned fault for this request (counted as used), or None."""
        with self._lock:
            for planned in self._planned:
                if planned.seen < planned.times and planned.matches(method, path):
                    if planned.passed < planned.after:
                        planned.passed += 1
                        continue
                    planned.requests.append((method, path))
                    if planned.kind:
                        self.counts[planned.kind] += 1
                    return planned
        return None

    def draw(self, method: str | None = None) -> str | None:
        """The random fault for the next request, or None."""
        if self.rate <= 0.0:
            return None
        if self.methods is not None and method is not None and method.upper() not in self.methods:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.counts[kind] += 1
        return kind


def connection_of(send: Callable) -> tuple[Any, Any]:
    """uvicorn's request cycle and transport behind an ASGI ``send``, or ``(None, None)``."""
    owner = getattr(send, "__self__", None)
    return owner, getattr(owner, "transport", None)


async def _wait_disconnected(owner: Any, limit_s: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not getattr(owner, "disconnected", True) and loop.time() < deadline:
        await asyncio.sleep(0.002)


async def reset_connection(owner: Any, transport: Any) -> None:
    """Abort the connection with an RST (SO_LINGER 0), discarding anything unsent."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, AttributeError, TypeError):
            pass
    transport.abort()
    await _wait_disconnected(owner)


class _Cut(Exception):
    """Raised inside ``send`` to stop the application once the connection is dropped."""


class Truncator:
    """Wraps ``send``: forwards headers and about half of the body, then drops the connection."""

    BUFFER_LIMIT = 64 * 1024

    def __init__(self, send: Callable[[dict], Awaitable[None]], owner: Any, transport: Any):
        self._send = send
        self._owner = owner
        self._transport = transport
        self._start: dict | None = None
        self._buffer = bytearray()
        self.done = False

    async def __call__(self, message: dict) -> None:
        if self.done:
            raise _Cut()
        kind = message["type"]
        if kind == "http.response.start":
            self._start = message
            return
        if kind != "http.response.body":
            await self._send(message)
            return
        self._buffer += message.get("body", b"")
        more = message.get("more_body", False)
        if more and len(self._buffer) < self.BUFFER_LIMIT:
            return
        self.done = True
        if not self._buffer:
            await reset_connection(self._owner, self._transport)
            raise _Cut()
        assert self._start is not None
        await self._send(self._start)
        await self._send(
            {"type": "http.response.body", "body": bytes(self._buffer[: len(self._buffer) // 2]), "more_body": True}
        )
        self._transport.close()  # flushes what was written, then FIN
        await _wait_disconnected(self._owner)
        raise _Cut()


def is_cut(exc: BaseException) -> bool:
    """True when ``exc`` is (or only wraps) the truncation signal."""
    if isinstance(exc, _Cut):
        return True
    inner = getattr(exc, "exceptions", None)
    if inner:
        return all(is_cut(e) for e in inner)
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, _Cut) and isinstance(exc, RuntimeError)
