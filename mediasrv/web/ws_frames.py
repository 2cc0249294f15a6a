"""Twilio's WebSocket frames, parsed without wsproto while every frame is a plain one.

Layer: web. Pure: bytes in, messages out; no socket.

Twilio sends one masked, unfragmented text frame per message (a 20 ms media frame is a
~400-byte JSON text), 50 of them a second per call. wsproto parses each through a
generator, a frame object and an event object (18-20 us of Python a frame, before
simple-websocket's event handling; this parser 3.3 us: `scripts/ws_cost.py`), paid on the
rx loop for every inbound frame.

`PlainFrames` parses only that shape: FIN and opcode text, no reserved bit, masked, a
payload length in the 7-bit or 16-bit form (minimally encoded), within the size cap,
valid UTF-8. At the first frame that is anything else -- a ping, a close, a binary or
fragmented message, an unmasked frame, a compressed one, a 64-bit length, invalid UTF-8,
a message over the cap -- it stops and hands back every byte from that frame's start: the
caller feeds them, and everything after, to the full parser (`TwilioWs`), which then
answers, closes or fails exactly as it did before, the same bytes in the same order.
"""

from __future__ import annotations

_FIN_TEXT = 0x81  # FIN, no reserved bit, opcode 1 (text)
_MASKED = 0x80
_LEN16 = 126  # 7-bit length value that announces a 16-bit length
_HEADER = 2
_MASK_BYTES = 4


class _NotPlain(Exception):
    """The frame at this position is one for the full parser."""


def unmask(payload: bytes, key: bytes) -> bytes:
    """XOR `payload` with the 4-byte masking `key` repeated (RFC 6455 section 5.3).

    One big-integer XOR: for a few hundred bytes far cheaper than a loop over bytes or
    numpy's set-up (measured in `scripts/ws_cost.py`).
    """
    n = len(payload)
    keys = (key * (n // _MASK_BYTES + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")).to_bytes(
        n, "little")


class PlainFrames:
    """Splits a client's byte stream into text messages while its frames are plain."""

    def __init__(self, max_bytes: int | None) -> None:
        self._max = max_bytes  # larger payloads go to the full parser (it closes with 1009)
        self._pending = b""  # the start of a frame not yet whole

    def feed(self, data: bytes) -> tuple[list[str], bytes | None]:
        """Take bytes read off the socket; return the whole messages they complete, and
        None -- or, at the first frame that is not plain, the bytes from its start on
        (this parser is then done: everything after belongs to the full parser)."""
        buf = self._pending + data if self._pending else data
        messages: list[str] = []
        pos, end = 0, len(buf)
        while pos < end:
            try:
                frame = self._frame_at(buf, pos)
            except _NotPlain:  # the full parser takes it from here
                self._pending = b""
                return messages, buf[pos:]
            if frame is None:  # not whole yet
                break
            text, pos = frame
            messages.append(text)
        self._pending = buf[pos:]
        return messages, None

    def _frame_at(self, buf: bytes, pos: int) -> tuple[str, int] | None:
        """Return (message, next position) for a plain frame at `pos`, None if the frame
        is not all there yet; raise _NotPlain if it is not plain."""
        end = len(buf)
        if buf[pos] != _FIN_TEXT:
            raise _NotPlain
        if end - pos < _HEADER:
            return None
        if not buf[pos + 1] & _MASKED:
            raise _NotPlain
        length = buf[pos + 1] & 0x7F
        head = pos + _HEADER
        if length == _LEN16:
            if end - head < 2:
                return None
            length = int.from_bytes(buf[head : head + 2], "big")
            head += 2
            if length < _LEN16:  # not minimally encoded: the full parser rejects it
                raise _NotPlain
        elif length > _LEN16:  # a 64-bit length: never a Twilio message
            raise _NotPlain
        if self._max is not None and length > self._max:
            raise _NotPlain
        start = head + _MASK_BYTES
        stop = start + length
        if stop > end:
            return None
        try:
            text = unmask(buf[start:stop], buf[head:start]).decode("utf-8")
        except UnicodeDecodeError as exc:  # the full parser closes with 1007
            raise _NotPlain from exc
        return text, stop
