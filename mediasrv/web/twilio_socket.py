"""The Twilio WebSocket of one call, read by the call's own rx loop: no reader thread.

Layer: web.

simple-websocket starts a reader thread per connection: it blocks in `recv`, feeds wsproto,
and hands every message to the handler thread through a list and a `threading.Event`.
For a call that is two thread wake-ups and two GIL hand-overs per 20 ms inbound frame,
and one more thread per call (measured with py-spy `--gil` at 25 calls: the reader's
return from `recv` was 22 % of the worker's GIL samples, the Event hand-over most of the
34 % in `Condition.wait/notify`).

Here the library is given a `thread_class` whose `start()` starts nothing, so its
handshake, its wsproto connection and its event handling (close replies, pings, the
message size cap that closes with 1009) stay as they are, and the rx loop itself does
what the thread did, one read at a time: wait until the socket is readable (bounded by
the caller's timeout), `recv`, `ws.receive_data`, the library's `_handle_events`. Sends
stay where they were (the library's `send`, from the tx thread); the reader thread sent
its control replies concurrently with them too.

Twilio's plain text frames are parsed by `PlainFrames` (mediasrv.web.ws_frames) instead of
wsproto (15-17 us less Python per inbound frame, and the library's event handling); at the
first frame that is anything else (a ping, a close, a fragment, bad UTF-8, a message over
the cap), that frame and all that follows go through wsproto and the library as before.
A connection that negotiated an extension (permessage-deflate) never takes the short path.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable
from typing import Any

import simple_websocket
from wsproto.utilities import LocalProtocolError

from mediasrv.errors import PeerClosed
from mediasrv.web.ws_frames import PlainFrames

log = logging.getLogger(__name__)
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class NoReaderThread:
    """simple-websocket's `thread_class`: keeps the reader's target, never runs it."""

    def __init__(self, target: Callable[[], None] | None = None, **_: Any) -> None:
        self.name = "mediasrv-twilio-reader (not started: the rx loop reads)"
        self._target = target

    def start(self) -> None:
        pass

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        pass


def _extensions(ws: simple_websocket.Server) -> bool:
    """Tell whether the connection runs a WebSocket extension (or may: unknown if
    wsproto's internals moved), which the plain-frame parser does not speak."""
    try:
        return bool(ws.ws.connection._proto.extensions)
    except AttributeError:
        return True


def server_options(max_message_size: int) -> dict[str, Any]:
    """Return flask-sock's SOCK_SERVER_OPTIONS: the size cap, and no reader thread."""
    return {"max_message_size": max_message_size, "thread_class": NoReaderThread}


class TwilioWs:
    """Adapts simple-websocket's Server to the call's TwilioSocket seam; the rx loop reads.

    `receive` is called from one thread only (the rx loop); `send` from the tx thread.
    """

    def __init__(self, ws: simple_websocket.Server) -> None:
        self._ws = ws
        self._poll = select.poll()
        self._poll.register(ws.sock, select.POLLIN)
        tcp = ws.sock.family in (socket.AF_INET, socket.AF_INET6)
        self._quickack = _QUICKACK if tcp else None
        self._plain = None if _extensions(ws) else PlainFrames(ws.max_message_size)
        if tcp:
            # Every message out now, not when Twilio acknowledges the last one (Nagle): a
            # `clear` written 0-20 ms after a media frame otherwise waits for that ACK --
            # up to a round trip, audio the caller hears after the barge-in and that the
            # truncation does not count. gunicorn's listening socket passes TCP_NODELAY on
            # to the connections it accepts; other servers (werkzeug, the tests' and
            # benchmarks' in-process one) do not: measured there, clears left 15-20 ms
            # after the server had written them in 1 of 3 barge-ins.
            ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: str) -> None:
        try:
            self._ws.send(data)
        except (simple_websocket.ConnectionClosed, OSError) as exc:
            raise PeerClosed("twilio socket closed") from exc

    def receive(self, timeout: float) -> str | bytes | None:
        """Return the next message, None after `timeout` s without one; PeerClosed at the end."""
        ws = self._ws
        deadline = time.monotonic() + timeout
        while not ws.input_buffer:
            if not ws.connected:
                raise PeerClosed("twilio socket closed")
            wait_ms = max(0.0, deadline - time.monotonic()) * 1000.0
            if not self._poll.poll(wait_ms):
                return None
            self._read()
        return ws.input_buffer.pop(0)

    def _read(self) -> None:
        """One read of the socket into the library, as its reader thread would do it."""
        ws = self._ws
        try:
            data = ws.sock.recv(ws.receive_bytes)
            if not data:
                raise OSError("closed by the peer")
            if self._quickack is not None:
                # Acknowledge now: a peer that batches small writes (Nagle) waits for our
                # ACK before its next message, and the kernel may hold it back 40 ms. The
                # library's thread, blocked in recv, got prompt ACKs; a reader that polls
                # first does not (measured through tests/proxy.py: a `start` 25-50 ms late).
                ws.sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            if self._plain is not None:
                messages, rest = self._plain.feed(data)
                ws.input_buffer.extend(messages)
                if rest is None:
                    return
                log.debug("twilio socket: a frame for the full parser; it takes all from here")
                self._plain = None
                data = rest
            ws.ws.receive_data(data)
            ws.connected = ws._handle_events()
        except (OSError, LocalProtocolError) as exc:
            self._end(f"{exc.__class__.__name__}: {exc}")
        except Exception as exc:  # the library's own parsing: the call must not die of it
            log.warning("twilio socket: unreadable input, closing: %s: %s",
                        exc.__class__.__name__, exc)
            self._end(exc.__class__.__name__)

    def _end(self, why: str) -> None:
        ws = self._ws
        log.debug("twilio socket ended: %s", why)
        ws.connected = False
        ws.event.set()
        try:
            ws.sock.close()
        except OSError:
            pass

    def backlog(self) -> int:
        """Messages read off the socket, not yet received by the call."""
        return len(self._ws.input_buffer)
