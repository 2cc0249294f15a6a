"""When a server message reached the emulator's socket, not when its reader got to it.

Layer: emulator.

The emulator's truth for a `clear` is what had played when it reached Twilio: the time
it was read plus the modelled downlink. On loopback "read" was meant to be "sent", but
the reader thread is one of many in a busy process (the in-process server, the backend,
other calls): it read clears 0-18 ms after the server had written them (scenarios.py's
`clear_read_lag_ms`), and every such millisecond was counted as audio that had played
before the clear -- an error the server could not have avoided, charged to its
truncation. Twilio's media edge does not share our scheduler.

So the call's socket keeps the kernel's receive time (Linux `SO_TIMESTAMPNS`) of the
data each read returns: for the last message of a read that is when it arrived; earlier
messages read in the same chunk get that time too (late by what separated them, never
early). Where the platform or the socket cannot (TLS, not Linux), reads keep the reader's
own clock as before.
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
