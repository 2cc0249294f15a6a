"""Audio on its way to the caller: the playout buffer (to the tx thread), the echo reference (back).

Layer: call.

`PlayoutBuffer` is the one place outbound audio waits. The backend's reader puts audio
in and must never block, whatever the answer's length: audio is cut into 20 ms frames
as it comes and goes into a bounded `queue.Queue(maxsize=150)` -- 3 s, enough to ride
out jitter, small enough to flush at once -- and beyond that into an overflow that the
tx thread moves into the queue, in order, as it takes frames out. Every frame carries
the buffer's *generation*; a barge-in bumps it, drops everything queued and puts a
`ClearRequest` first in line, so the tx thread sends `clear` next and drops any frame
of an older generation it still holds. The overflow, the partial frames and the
generation are guarded by the call lock (methods named `*_locked`).

`EchoReference` carries what the tx thread sent, timed by when it plays, to the rx loop,
where the echo guard learns from it.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass

from mediasrv.audio import FRAME_BYTES, ULAW_SILENCE
from mediasrv.call.lock import CallLock
from mediasrv.policy.ledger import BargeInPlan

QUEUE_FRAMES = 150  # 3 s of 20 ms frames: enough to ride out jitter, small enough to flush
# Far beyond any answer (10 min; Twilio itself refuses more buffered audio than that).
OVERFLOW_FRAMES = 30_000
# What we sent, kept for the echo guard until the rx loop takes it (5 s of frames).
ECHO_REFERENCE_FRAMES = 256


@dataclass(frozen=True, slots=True)
class Frame:
    gen: int
    response_id: str
    item_id: str
    audio: bytes | None  # None marks the end of the item's audio


@dataclass(frozen=True, slots=True)
class ClearRequest:
    """Barge-in's hand-over to the tx thread: send `clear` now, then finish the plan."""

    plan: BargeInPlan
    trigger: str
    triggered_at: float
    speech_ms: int


@dataclass(frozen=True, slots=True)
class Sync:
    """Set `done` once everything queued before it has been handled (a test barrier)."""

    done: threading.Event


Entry = Frame | ClearRequest | Sync


class PlayoutBuffer:
    """Frames waiting for the tx thread: a bounded queue plus an overflow, never blocking."""

    def __init__(self, lock: CallLock, capacity: int = QUEUE_FRAMES) -> None:
        self._lock = lock  # the call lock
        self._queue: queue.Queue[Entry] = queue.Queue(capacity)
        self._overflow: deque[Entry] = deque()
        self._partial: dict[str, bytes] = {}  # an item's audio short of a whole frame
        self.generation = 0
        self.wake = threading.Event()  # cuts the tx thread's sleep short: a clear, or closing

    # --- writers: any thread, holding the call lock ------------------------------------

    def put_audio_locked(self, response_id: str, item_id: str, audio: bytes) -> bool:
        """Queue audio of an item in whole frames; False if the overflow is full (dropped)."""
        assert self._lock.held()
        data = self._partial.pop(item_id, b"") + audio
        whole = len(data) - len(data) % FRAME_BYTES
        if len(self._overflow) + whole // FRAME_BYTES > OVERFLOW_FRAMES:
            return False
        gen = self.generation
        for start in range(0, whole, FRAME_BYTES):
            self._put_locked(Frame(gen, response_id, item_id, data[start : start + FRAME_BYTES]))
        if whole < len(data):
            self._partial[item_id] = data[whole:]
        return True

    def end_item_locked(self, response_id: str, item_id: str) -> None:
        """Queue the item's last partial frame (padded with silence) and its end marker."""
        assert self._lock.held()
        rest = self._partial.pop(item_id, b"")
        if rest:
            padded = rest + bytes([ULAW_SILENCE]) * (FRAME_BYTES - len(rest))
            self._put_locked(Frame(self.generation, response_id, item_id, padded))
        self._put_locked(Frame(self.generation, response_id, item_id, None))

    def clear_locked(self, request: ClearRequest) -> None:
        """Drop everything queued, start a new generation, put `request` first in line."""
        assert self._lock.held()
        self.generation += 1
        self._partial.clear()
        while self._overflow:
            _release(self._overflow.popleft())
        while True:
            try:
                _release(self._queue.get_nowait())
            except queue.Empty:
                break
        self._queue.put_nowait(request)  # just emptied, and only writers holding the lock put
        self.wake.set()

    def sync(self) -> threading.Event:
        """Return an Event the tx thread sets once it has handled everything queued now."""
        done = threading.Event()
        with self._lock:
            self._put_locked(Sync(done))
        return done

    def queued_locked(self) -> int:
        """Return the entries waiting (frames, and the odd end marker or control entry)."""
        assert self._lock.held()
        return self._queue.qsize() + len(self._overflow)

    def overflow_len(self) -> int:
        return len(self._overflow)

    def _put_locked(self, entry: Entry) -> None:
        if not self._overflow:
            try:
                self._queue.put_nowait(entry)
                return
            except queue.Full:
                pass
        self._overflow.append(entry)

    # --- the reader: the tx thread ------------------------------------------------------

    def get(self, timeout: float) -> Entry | None:
        """Return the next entry, waiting up to `timeout` s (None: nothing came)."""
        try:
            entry = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        self._refill()
        return entry

    def get_nowait(self) -> Entry | None:
        try:
            entry = self._queue.get_nowait()
        except queue.Empty:
            return None
        self._refill()
        return entry

    def qsize(self) -> int:
        """Return the entries in the bounded queue (what the tx thread can take at once)."""
        return self._queue.qsize()

    def _refill(self) -> None:
        if not self._overflow:  # a hint read without the lock; checked again under it
            return
        with self._lock:
            while self._overflow:
                try:
                    self._queue.put_nowait(self._overflow[0])
                except queue.Full:
                    return
                self._overflow.popleft()


def _release(entry: Entry) -> None:
    """A dropped entry: a barrier in it is passed, not lost."""
    if isinstance(entry, Sync):
        entry.done.set()


class EchoReference:
    """What the tx thread sent, with when it plays, for the rx loop's echo guard.

    One producer (tx), one consumer (rx): `deque.append` and `popleft` are atomic in
    CPython, so no lock. Bounded: an rx loop that falls behind loses the oldest frames.
    """

    def __init__(self) -> None:
        self._sent: deque[tuple[float, bytes | None]] = deque(maxlen=ECHO_REFERENCE_FRAMES)

    def add(self, plays_at: float, frame: bytes) -> None:
        self._sent.append((plays_at, frame))

    def cut(self, at: float) -> None:
        """A `clear` left at `at`: what was sent to play from then on never plays."""
        self._sent.append((at, None))

    def take(self) -> list[tuple[float, bytes | None]]:
        """Return the frames sent since the last call, oldest first; a frame of None is
        a cut (`cut`) at its time."""
        out = []
        while self._sent:
            out.append(self._sent.popleft())
        return out
