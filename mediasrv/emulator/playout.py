"""Twilio's playout of server audio at the caller, as a pure model.

Layer: emulator.

Rules (PROTOCOLS.md section 1.4), as this model applies them:

- Audio is played in the order received, in real time: 8 mu-law bytes per ms.
- Playback starts the moment audio arrives while the buffer is empty; if the buffer
  runs dry (an underrun) the playhead stops and the next audio starts when it arrives.
- A mark is due when all audio received before it has played. A mark received while
  nothing is buffered is due at once.
- `clear` drops every buffered byte and makes every pending mark due at once, although
  its audio never played ("played or flushed").

No threads, no clock: every input takes `now` (seconds, any origin) and the model reports
`next_event_time()` so a shell can sleep until a mark falls due. Everything heard is kept
with its play time, so `render()` can rebuild what the caller heard over any window.

Positions in the server's audio are *stream offsets*: bytes received so far, dropped
bytes included; they tie heard audio to the mark that followed it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass

from mediasrv.audio import BYTES_PER_MS, ULAW_SILENCE

RATE = BYTES_PER_MS * 1000  # bytes per second of 8 kHz mu-law
# Half a sample: absorbs float error in (now - start) * RATE without playing early.
_EPS = 1e-6
# Compact the pending buffer once this much has been played from its front.
_COMPACT_BYTES = 64 * 1024


@dataclass(frozen=True)
class HeardSegment:
    """Audio played without a break: from `start` for len(data) / 8 ms."""

    start: float
    offset: int
    data: bytes

    @property
    def end(self) -> float:
        return self.start + len(self.data) / RATE


@dataclass(frozen=True)
class ServerMark:
    """A mark as received from the server; `offset` is the audio received before it."""

    name: str
    at: float
    offset: int


@dataclass(frozen=True)
class MarkName:
    """What mediasrv's mark names say: "<response_id>:<item_id>:<sent_ms>[:end]"."""

    response_id: str
    item_id: str
    sent_ms: int | None  # the item's audio sent before the mark (None: not a number)
    end: bool  # the item's last mark

    @classmethod
    def parse(cls, name: str) -> MarkName | None:
        """Return the parts of a mark name, or None for a name of another form (a probe)."""
        parts = name.split(":")
        if len(parts) < 2:
            return None
        sent = parts[2] if len(parts) >= 3 else ""
        return cls(parts[0], parts[1], int(sent) if sent.isdigit() else None,
                   len(parts) >= 4 and parts[3] == "end")


@dataclass(frozen=True)
class MarkEcho:
    """A mark falling due: `played` False means flushed by a clear (its audio unheard)."""

    name: str
    at: float
    played: bool


@dataclass(frozen=True)
class ClearRecord:
    at: float
    offset: int
    dropped_bytes: int
    flushed: tuple[str, ...]


class PlayoutModel:
    """The caller's jitter buffer and speaker. Pure: time comes in as `now`."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._buf_pos = 0
        self._received = 0  # stream offset of the end of received audio
        self._consumed = 0  # stream offset of the playhead (played or dropped)
        self._run_t0: float | None = None  # when the current unbroken playback began
        self._run_off0 = 0
        self._pending: deque[tuple[int, str]] = deque()
        self._due: list[str] = []
        self._out = bytearray()
        self._seg_open = False
        self._seg_starts: list[float] = []
        self._seg_offsets: list[int] = []
        self._seg_data: list[bytearray] = []
        self.marks: list[ServerMark] = []
        self.echoes: list[MarkEcho] = []
        self.clears: list[ClearRecord] = []

    # -- inputs ---------------------------------------------------------------------

    def receive_media(self, payload: bytes, now: float) -> None:
        """Queue server audio; start playing at `now` if the buffer was empty."""
        self._play_until(now)
        if not payload:
            return
        if self._run_t0 is None:
            self._run_t0 = now
            self._run_off0 = self._consumed
        self._buf += payload
        self._received += len(payload)

    def receive_mark(self, name: str, now: float) -> None:
        """Queue a mark behind the buffered audio, or make it due now if none is left."""
        self._play_until(now)
        self.marks.append(ServerMark(name, now, self._received))
        if self._received == self._consumed:
            self._due.append(name)
            self.echoes.append(MarkEcho(name, now, True))
        else:
            self._pending.append((self._received, name))

    def receive_clear(self, now: float) -> list[str]:
        """Drop buffered audio; return every mark to echo now, in order (flushed last)."""
        self._play_until(now)
        flushed = tuple(name for _, name in self._pending)
        self._pending.clear()
        for name in flushed:
            self.echoes.append(MarkEcho(name, now, False))
        dropped = self._received - self._consumed
        self._consumed = self._received
        self._stop_run()
        self.clears.append(ClearRecord(now, self._received, dropped, flushed))
        due, self._due = self._due + list(flushed), []
        return due

    def advance(self, now: float) -> tuple[bytes, list[str]]:
        """Play until `now`; return the audio played since the last call and marks due."""
        self._play_until(now)
        played = bytes(self._out)
        self._out.clear()
        due, self._due = self._due, []
        return played, due

    # -- queries --------------------------------------------------------------------

    def next_event_time(self) -> float | None:
        """Return when the next pending mark falls due (None if none is pending)."""
        if not self._pending or self._run_t0 is None:
            return None
        return self._run_t0 + (self._pending[0][0] - self._run_off0) / RATE

    def buffered_bytes(self) -> int:
        """Return audio received but not yet played (as of the last input)."""
        return self._received - self._consumed

    def is_playing(self, now: float) -> bool:
        """Tell whether server audio is coming out of the speaker at `now`."""
        if self._run_t0 is None:
            return False
        end = self._run_t0 + (self._received - self._run_off0) / RATE
        return self._run_t0 <= now < end

    def heard(self) -> tuple[HeardSegment, ...]:
        """Return everything played so far, one segment per unbroken run."""
        segs = zip(self._seg_starts, self._seg_offsets, self._seg_data, strict=True)
        return tuple(HeardSegment(t, off, bytes(data)) for t, off, data in segs)

    def render(self, start: float, nbytes: int) -> bytes:
        """Return what the caller heard over [start, start + nbytes/8000 s): silence elsewhere."""
        out = bytearray([ULAW_SILENCE]) * nbytes
        end = start + nbytes / RATE
        i = max(0, bisect_right(self._seg_starts, start) - 1)
        while i < len(self._seg_starts) and self._seg_starts[i] < end:
            seg_t, data = self._seg_starts[i], self._seg_data[i]
            shift = round((seg_t - start) * RATE)  # out index of the segment's byte 0
            lo = max(0, shift)
            hi = min(nbytes, shift + len(data))
            if hi > lo:
                out[lo:hi] = data[lo - shift : hi - shift]
            i += 1
        return bytes(out)

    # -- internals ------------------------------------------------------------------

    def _play_until(self, now: float) -> None:
        if self._run_t0 is None:
            return
        target = self._run_off0 + int((now - self._run_t0) * RATE + _EPS)
        n = min(target, self._received) - self._consumed
        if n > 0:
            chunk = self._buf[self._buf_pos : self._buf_pos + n]
            self._buf_pos += n
            if self._buf_pos >= _COMPACT_BYTES:
                del self._buf[: self._buf_pos]
                self._buf_pos = 0
            self._record_heard(chunk)
            self._out += chunk
            self._consumed += n
            self._release_marks()
        if self._consumed >= self._received:
            self._stop_run()

    def _record_heard(self, chunk: bytearray) -> None:
        assert self._run_t0 is not None
        if self._seg_open:
            self._seg_data[-1] += chunk
            return
        self._seg_starts.append(self._run_t0 + (self._consumed - self._run_off0) / RATE)
        self._seg_offsets.append(self._consumed)
        self._seg_data.append(bytearray(chunk))
        self._seg_open = True

    def _release_marks(self) -> None:
        assert self._run_t0 is not None
        while self._pending and self._pending[0][0] <= self._consumed:
            offset, name = self._pending.popleft()
            self._due.append(name)
            at = self._run_t0 + (offset - self._run_off0) / RATE
            self.echoes.append(MarkEcho(name, at, True))

    def _stop_run(self) -> None:
        self._run_t0 = None
        self._seg_open = False
        self._buf.clear()  # nothing is left to play: every byte was played or dropped
        self._buf_pos = 0
