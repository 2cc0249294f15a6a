"""When a server message reached the emulator's socket, not when its reader got to it.

Layer: emulator.

The emulator's truth for a `clear` is what had played when it reached Twilio: its
arrival plus the modelled downlink. On loopback the arrival was taken to be the moment
the reader thread got the message, but that thread is one of many in a busy test process
(the in-process server, the backend, other calls) and may get to it late; every such
millisecond would be counted as audio that had played before the clear, an error charged
to the server's truncation. Twilio's media edge does not share our scheduler.

So the call's socket keeps the kernel's receive time (Linux `SO_TIMESTAMPNS`) of the data
each read returns. websocket-client reads a frame's header and payload with separate
reads of just their size, so a message gets its own segment's time; when the kernel has
merged a later segment into it (the reader was behind), the later one's time: late by
what separated them, never early. Where the platform or the socket cannot (TLS, not
Linux), reads keep the reader's own clock as before.

What it showed first: clears that had waited 15-20 ms in the *server's* socket (Nagle;
mediasrv/web/twilio_socket.py now sets TCP_NODELAY), which the read time had passed off
as the emulator's own delay.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import sys
import time

log = logging.getLogger(__name__)

# Linux, include/uapi/asm-generic/socket.h: SO_TIMESTAMPNS (alias SO_TIMESTAMPNS_OLD),
# whose control message SCM_TIMESTAMPNS has the same number; a struct timespec follows.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("qq")
_ANC_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


class StampedSocket(socket.socket):
    """A TCP socket whose reads remember when the kernel received what they return."""

    received_wall: float | None = None  # time.time() scale; None until a stamped read

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancdata, _flags, _addr = self.recvmsg(bufsize, _ANC_SPACE, flags)
        # Data the kernel did not stamp (its timestamping is switched on lazily, so the
        # first segments after the option was set may have none): no time of its own.
        self.received_wall = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS \
                    and len(payload) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(payload)
                self.received_wall = sec + nsec / 1e9
        return data


def stamped(sock: socket.socket) -> StampedSocket | None:
    """Return `sock` (the same connection) as a StampedSocket, or None where it cannot
    be (then `sock` is left as it was)."""
    if not sys.platform.startswith("linux") or isinstance(sock, ssl.SSLSocket):
        return None
    if sock.type != socket.SOCK_STREAM:
        return None
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError as exc:
        log.info("no receive timestamps on the emulator's socket (%s): read times used", exc)
        return None
    timeout = sock.gettimeout()
    new = StampedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    new.settimeout(timeout)
    return new


def age(sock: StampedSocket) -> float:
    """Return how long ago (s) the data of the latest read reached the socket (>= 0)."""
    if sock.received_wall is None:
        return 0.0
    return max(0.0, time.time() - sock.received_wall)
