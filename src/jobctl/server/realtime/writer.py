"""Writing to one WebSocket: a bounded outbox, a writer task, and a way to drop peers that stop reading.

Frames with nothing queued before them, while the transport is writable, are framed here and
written at the loop's turn, every socket's in one transport write (`SocketWriter.send`,
`Flusher`), or on a socket with permessage-deflate handed to uvicorn at once (`write_now`);
otherwise they wait in the outbox, in order, for the writer task.
A client that does not read fast enough is disconnected once its outbox is full (close code 1013)
rather than slowing the hub: its queued frames are dropped at once, and if it does not take the
close frame within `close_grace` the TCP connection is aborted, so a peer that never reads holds
no memory here. realtime-py and realtime-js then reconnect and rejoin, and the feed re-reads
current state over HTTP as it does after every (re)subscribe.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from jobctl.server.realtime.protocol import Frame

if TYPE_CHECKING:
    from jobctl.server.realtime.hub import RealtimeSettings

try:
    from websockets.protocol import State

    _OPEN: Any = State.OPEN
except ImportError:  # pragma: no cover - then only the ASGI send is used
    _OPEN = object()

log = logging.getLogger("jobctl.server.realtime")
TOO_SLOW = 1013  # "try again later"


def ws_frame(frame: Frame) -> bytes:
    """A whole, unmasked server frame with no extension (RFC 6455 section 5.2): text or binary."""
    opcode, data = (0x82, frame) if isinstance(frame, bytes) else (0x81, frame.encode())
    size = len(data)
    if size < 126:
        head = bytes((opcode, size))
    elif size < 65536:
        head = struct.pack("!BBH", opcode, 126, size)
    else:
        head = struct.pack("!BBQ", opcode, 127, size)
    return head + data


def _message(frame: Frame) -> dict[str, Any]:
    if isinstance(frame, bytes):
        return {"type": "websocket.send", "bytes": frame}
    return {"type": "websocket.send", "text": frame}


class Outbox:
    """Frames waiting to be written, bounded in count and bytes (one frame always fits)."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.frames: deque[Frame] = deque()
        self.size = 0
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.ready = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.overflowed = False

    def put(self, frame: Frame) -> bool:
        if self.close_code is not None:
            return False
        if self.frames and (
            len(self.frames) >= self.max_frames or self.size + len(frame) > self.max_bytes
        ):
            self.clear()
            self.overflowed = True
            self.close(TOO_SLOW, "subscriber too slow: outbox full")
            return False
        self.frames.append(frame)
        self.size += len(frame)
        self.ready.set()
        return True

    def clear(self) -> None:
        self.frames.clear()
        self.size = 0

    def close(self, code: int, reason: str) -> None:
        """Ask the writer to close the socket once what is queued has been sent."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.ready.set()


FLUSH_AT = 64 * 1024  # pending bytes that are written at once rather than at the loop's turn


class Flusher:
    """Writes every socket's pending frames once per turn of the event loop.

    A burst (a commit of many changes, a batch of progress) puts several frames on a socket in
    one pass; they go out in one transport write, one system call per socket rather than per
    frame. One callback for all sockets: nothing is scheduled per socket or per frame."""

    def __init__(self) -> None:
        self._writers: list[SocketWriter] = []

    def add(self, writer: SocketWriter) -> None:
        if not self._writers:
            asyncio.get_running_loop().call_soon(self.flush)
        self._writers.append(writer)

    def flush(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.flush()


class SocketWriter:
    def __init__(
        self, websocket: WebSocket, settings: RealtimeSettings, flusher: Flusher | None = None
    ) -> None:
        self.outbox = Outbox(settings.max_queue_frames, settings.max_queue_bytes)
        self.close_grace = settings.close_grace
        self.transport: Any = websocket.scope.get("jobctl.transport")  # has .abort() if set
        # uvicorn's own send (KeepTransport), which skips the app's wrappers; and, for its
        # websockets-sansio protocol, the object whose state says whether a send would wait.
        self._send: Any = websocket.scope.get("jobctl.send") or websocket.send
        owner = getattr(self._send, "__self__", None)
        sansio = type(owner).__name__ == "WebSocketsSansIOProtocol"
        usable = sansio and hasattr(owner, "writable") and hasattr(owner, "conn")
        self._protocol: Any = owner if usable and self.transport is not None else None
        # Frames are framed here (and written to the transport directly) only on a socket with
        # no extension: the handshake is over, so that is known now.
        self._frames_here = self._protocol is not None and not self._protocol.conn.extensions
        self._flusher = flusher or Flusher()
        self._pending: list[bytes] = []  # whole frames for the transport, at the loop's turn
        self._pending_size = 0
        self._writing = False  # the writer task has a frame in flight
        self._killer: asyncio.TimerHandle | None = None

    def send(self, frame: Frame, wire: bytes | None = None) -> bool:
        """Queue a frame for this socket, in order; `wire`: the frame as ws_frame() makes it,
        when the caller shares it between sockets. False once the socket is closing."""
        if self._frames_here and self._direct():
            if wire is None:
                wire = ws_frame(frame)
            pending = self._pending
            if not pending:
                self._flusher.add(self)
            pending.append(wire)
            self._pending_size += len(wire)
            if self._pending_size >= FLUSH_AT:
                self.flush()  # may pause the transport: what follows then waits in the outbox
            return True
        if self.write_now(frame):
            return True
        ok = self.outbox.put(frame)
        if not ok and self.outbox.overflowed:
            self.abort_later()
        return ok

    def _direct(self) -> bool:
        """Nothing queued or in flight before this frame, and the transport takes it now."""
        protocol = self._protocol
        return not (
            self._writing
            or self.outbox.frames
            or self.outbox.close_code is not None
            or protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()
            or self.transport.is_closing()
            or protocol.conn.state is not _OPEN
        )

    def flush(self) -> None:
        """Write the pending frames in one go (nothing if the socket went meanwhile)."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._pending_size = 0
        protocol = self._protocol
        if protocol.disconnected or protocol.close_sent or self.transport.is_closing():
            return  # the peer is gone (the reader sees it) or a close went first
        self.transport.write(data)

    def write_now(self, frame: Frame) -> bool:
        """On a socket with an extension (permessage-deflate): hand the frame to uvicorn at once,
        with no task switch, when nothing is queued or in flight before it and its send would not
        wait: websockets-sansio's send() only awaits the transport being writable, so with that
        set it runs to the end in one step. Otherwise the writer task sends it, in order after
        what is queued."""
        protocol = self._protocol
        if protocol is None or not self._direct():
            return False
        self.flush()
        step = self._send(_message(frame))
        try:
            step.send(None)
        except StopIteration:
            return True
        except Exception as exc:  # the peer is gone; the reader sees the disconnect
            log.debug("realtime: send failed: %r", exc)
            return True
        step.close()  # it would have waited after all (nothing was written): queue it
        return False

    def close(self, code: int, reason: str) -> None:
        """Close politely after what is queued; abort if the peer does not take it in time."""
        self.outbox.close(code, reason)
        self.abort_later()

    def abort(self, code: int, reason: str) -> None:
        """Close now, dropping what is queued."""
        self._drop_pending()
        self.outbox.clear()
        self.close(code, reason)

    def abort_later(self) -> None:
        """If the close frame cannot be written in time (a peer that does not read), drop the
        TCP connection: the kernel and transport buffers go with it."""
        if self._killer is None and self.transport is not None:
            loop = asyncio.get_running_loop()
            self._killer = loop.call_later(self.close_grace, self._kill)

    def _kill(self) -> None:
        log.info("realtime: a socket did not take its close frame; connection aborted")
        self.transport.abort()

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._pending_size = 0

    def stop(self) -> None:
        self._drop_pending()
        self.outbox.clear()
        if self._killer is not None:
            self._killer.cancel()

    async def run(self) -> None:
        try:
            await self._write_frames()
        except Exception as exc:  # the peer is gone: the reader sees the disconnect too
            log.debug("realtime: send failed: %r", exc)

    async def _write_frames(self) -> None:
        box = self.outbox
        while True:
            await box.ready.wait()
            box.ready.clear()
            self.flush()  # what went before the queued frames goes first
            while box.frames:
                frame = box.frames.popleft()
                box.size -= len(frame)
                self._writing = True
                try:
                    await self._send(_message(frame))
                finally:
                    self._writing = False
            if box.close_code is not None:
                self.flush()
                if box.overflowed:
                    self.abort_later()
                await self._send(
                    {"type": "websocket.close", "code": box.close_code, "reason": box.close_reason}
                )
                return
