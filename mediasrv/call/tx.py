"""Audio out: the Twilio writer, the framer thread and the 20 ms paced tx thread.

Flow: realtime reader --deltas--> audio_out_q (150) --framer--> tx_q (150 frames, 3 s)
--tx loop, one frame per 20 ms deadline--> TwilioWriter --> Twilio.

A frame of a cancelled response must never reach Twilio, whichever thread holds it at
the moment of barge-in. Every frame carries the writer's *generation* read when it was
framed; barge-in bumps the generation and sends `clear` under the writer's lock, and
`send_frame` drops any frame of an older generation under the same lock. So a frame
is either on the wire before the `clear` (and `clear` discards it at Twilio) or never.

The writer also keeps the phone's playout as the sender sees it: Twilio plays audio in
order, a frame as soon as it arrives unless the one before is still playing. Frames and
`clear` travel the same path, so on the sender's clock a frame plays from
max(sent, end of the previous frame) for 20 ms, and what had played when the `clear`
*reached* Twilio is what this model had played when it was *sent* -- whatever the
network delay. (Playback that Twilio delays beyond that, e.g. after network jitter,
shows in how late the mark echoes come back: `mediasrv.policy.playback` corrects for it.)
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mediasrv.audio import FRAME_BYTES, FRAME_MS, ULAW_SILENCE
from mediasrv.clock import Clock
from mediasrv.errors import PeerClosed
from mediasrv.policy.playback import ClearPoint, SentFrame
from mediasrv.protocol.twilio import TwilioMessages

log = logging.getLogger(__name__)

TICK = FRAME_MS / 1000.0
# If the tx thread falls this far behind its deadlines (a stalled socket, a GC pause)
# it re-anchors instead of bursting the backlog out faster than real time.
_RESYNC_S = 0.2
# Audio sent ahead of real time at the start of a burst (the prebuffer), at most: it must
# stay under _RESYNC_S, or the pacer would take it for falling behind.
_MAX_LEAD_MS = 160
# Twilio's buffer is surely empty this long after the playout timeline ran out: a mark sent
# then measures the network round trip alone (see mediasrv.policy.playback).
_PROBE_QUIET_S = 0.3
# A burst with nothing to play for this long (and no end marker) is over.
_BURST_GAP_S = 0.5


class TextSocket(Protocol):
    def send(self, data: str) -> None: ...


# Frames whose playout times are kept (2.56 s): a clear asks about what is playing now.
_PLAYOUT_LOG = 128


@dataclass(frozen=True, slots=True)
class Frame:
    gen: int
    response_id: str
    item_id: str
    audio: bytes | None  # None marks the end of the item's audio


class TwilioWriter:
    """Serialises writes to the Twilio socket; owns the playout generation and timeline."""

    def __init__(self, ws: TextSocket, messages: TwilioMessages, clock: Clock) -> None:
        self._ws = ws
        self._msgs = messages
        self._clock = clock
        # One writer at a time; gen check + send atomic vs clear; guards the playout log.
        self._lock = threading.Lock()
        self.gen = 0
        self.frames_sent = 0
        self.last_sent_at: float | None = None  # when the last frame left
        self._play_end = 0.0  # when the last frame sent finishes playing (sender's clock)
        self._played: deque[SentFrame] = deque(maxlen=_PLAYOUT_LOG)

    def send_frame(
        self, gen: int, audio: bytes, item_id: str = "", item_ms: float = 0.0
    ) -> float | None:
        """Send one frame unless a clear has superseded its generation.

        Return when it starts playing at the phone (playout timeline), None if dropped.
        """
        text = self._msgs.media(audio)
        with self._lock:
            if gen != self.gen:
                return None
            now = self._clock.now()
            self._send(text)
            self.last_sent_at = now
            start = max(now, self._play_end)
            self._play_end = start + TICK
            self._played.append(SentFrame(item_id, item_ms, self._play_end))
            self.frames_sent += 1
        return start

    def send_mark(self, gen: int, name: str, register: Callable[[float], None]) -> bool:
        """Send a mark of generation `gen`; `register(play_end)` records it first (locked).

        `play_end`: when the audio before the mark finishes playing on the sender's clock.
        """
        text = self._msgs.mark(name)
        with self._lock:
            if gen != self.gen:
                return False
            register(self._play_end)
            self._send(text)
        return True

    def send_probe(self, name: str, register: Callable[[float], None]) -> None:
        """Send a mark while nothing plays: Twilio echoes it at once, after one round trip.

        `register(sent_at)` records it first, under the lock.
        """
        text = self._msgs.mark(name)
        with self._lock:
            register(self._clock.now())
            self._send(text)

    @property
    def play_end(self) -> float:
        """Return when the last frame sent finishes playing (sender's clock)."""
        return self._play_end

    def clear(self, on_clear: Callable[[], None]) -> ClearPoint:
        """Bump the generation and send `clear`; `on_clear` runs first, under the lock."""
        with self._lock:
            self.gen += 1
            on_clear()
            at = self._clock.now()
            self._send(self._msgs.clear)
            point = ClearPoint(at, tuple(self._played))
            self._played.clear()
            self._play_end = at  # Twilio's buffer is empty: the next frame plays on arrival
            return point

    def _send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except PeerClosed:
            raise
        except Exception as exc:  # the socket library's own error types vary
            raise PeerClosed(f"twilio send failed: {exc.__class__.__name__}") from exc


class Framer:
    """Cuts backend deltas into 160-byte frames: audio_out_q -> tx_q."""

    def __init__(
        self,
        audio_out_q: queue.Queue[tuple[str, str, bytes | None]],
        tx_q: queue.Queue[Frame],
        writer: TwilioWriter,
        is_cancelled: Callable[[str], bool],
        refill: Callable[[], None],
        closing: threading.Event,
    ) -> None:
        self._in = audio_out_q
        self._out = tx_q
        self._writer = writer
        self._is_cancelled = is_cancelled
        self._refill = refill
        self._closing = closing
        self._partial: dict[str, bytes] = {}

    def run(self) -> None:
        while not self._closing.is_set():
            try:
                response_id, item_id, audio = self._in.get(timeout=0.1)
            except queue.Empty:
                continue
            self._refill()  # move waiting backlog into the freed queue slot, in order
            gen = self._writer.gen  # read before the cancel check (see module docstring)
            if self._is_cancelled(response_id):
                self._partial.pop(item_id, None)
                continue
            if audio is None:
                self._finish_item(gen, response_id, item_id)
            else:
                self._frame(gen, response_id, item_id, audio)

    def _frame(self, gen: int, response_id: str, item_id: str, audio: bytes) -> None:
        data = self._partial.pop(item_id, b"") + audio
        whole = len(data) - len(data) % FRAME_BYTES
        for start in range(0, whole, FRAME_BYTES):
            if not self._put(Frame(gen, response_id, item_id, data[start : start + FRAME_BYTES])):
                return
        if whole < len(data):
            self._partial[item_id] = data[whole:]

    def _finish_item(self, gen: int, response_id: str, item_id: str) -> None:
        rest = self._partial.pop(item_id, b"")
        if rest:
            padded = rest + bytes([ULAW_SILENCE]) * (FRAME_BYTES - len(rest))
            self._put(Frame(gen, response_id, item_id, padded))
        self._put(Frame(gen, response_id, item_id, None))

    def _put(self, frame: Frame) -> bool:
        # Blocking here is fine: only the framer waits; the realtime reader never does.
        while not self._closing.is_set():
            if frame.gen != self._writer.gen:
                return False  # superseded by a clear while we waited
            try:
                self._out.put(frame, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


@dataclass
class TxStats:
    underruns: int = 0
    late_frames: int = 0


class TxLoop:
    """Sends one frame per 20 ms to absolute deadlines, with marks for playback truth."""

    def __init__(
        self,
        tx_q: queue.Queue[Frame],
        writer: TwilioWriter,
        clock: Clock,
        closing: threading.Event,
        *,
        prebuffer_ms: int,
        mark_interval_ms: int,
        register_mark: Callable[[str, str, float, bool, float], None],
        register_probe: Callable[[str, float], None],
        on_first_frame: Callable[[str, float], None],
        sent_ref: deque[tuple[float, bytes]],
    ) -> None:
        self._q = tx_q
        self._writer = writer
        self._clock = clock
        self._closing = closing
        self._prebuffer_s = prebuffer_ms / 1000.0
        self._lead_frames = max(1, min(prebuffer_ms, _MAX_LEAD_MS) // FRAME_MS)
        self._mark_frames = max(1, mark_interval_ms // FRAME_MS)
        self._register_mark = register_mark
        self._register_probe = register_probe
        self._probes = 0
        self._probed = False  # a round-trip probe went out since the last burst
        self._on_first_frame = on_first_frame
        self._sent_ref = sent_ref
        self.stats = TxStats()
        self._item_ms: dict[str, float] = {}
        self._since_mark = 0

    def run(self) -> None:
        while not self._closing.is_set():
            try:
                first = self._q.get(timeout=0.1)  # idle: block instead of ticking
            except queue.Empty:
                self._probe_if_quiet()
                continue
            if first.gen != self._writer.gen:
                continue
            self._burst(first)
            self._probed = False

    def _probe_if_quiet(self) -> None:
        """Once per quiet spell, measure the round trip with a mark on an empty buffer."""
        if self._probed or self._clock.now() - self._writer.play_end < _PROBE_QUIET_S:
            return
        self._probed = True
        self._probes += 1
        name = f"rtt-probe-{self._probes}"
        self._writer.send_probe(name, lambda sent_at: self._register_probe(name, sent_at))

    def _burst(self, first: Frame) -> None:
        """Play one burst of audio at real time, the prebuffer sent ahead at once."""
        self._prebuffer()
        # Paced at exactly real time, every frame would reach Twilio just as the one before
        # ends: any network jitter would stop its playback and every stop would add up
        # (measured: 85 ms behind after 1.3 s of a greeting on a loaded machine). The
        # prebuffer goes out at once instead and stays queued at Twilio as its jitter
        # buffer; a clear throws it away, so it costs barge-in nothing.
        ahead = min(self._q.qsize() + 1, self._lead_frames)
        deadline = self._clock.now() - (ahead - 1) * TICK
        pending: Frame | None = first
        last_audio = deadline
        while not self._closing.is_set():
            if pending is None:
                try:
                    pending = self._q.get_nowait()
                except queue.Empty:
                    pending = None
            if pending is not None and pending.gen != self._writer.gen:
                pending = None  # a clear superseded it: drop without using a tick
                continue
            if pending is not None and pending.audio is None:
                self._mark(pending, end=True)
                pending = None
                if self._q.empty():
                    return
                continue
            if not self._clock.sleep_until(deadline, self._closing):
                return
            now = self._clock.now()
            if now - deadline > _RESYNC_S:
                self.stats.late_frames += 1
                deadline = now
            deadline += TICK
            if pending is None:
                if now - last_audio > _BURST_GAP_S:
                    return
                self.stats.underruns += 1
                continue
            last_audio = now
            self._send(pending, now)
            pending = None

    def _prebuffer(self) -> None:
        """Wait until `prebuffer_ms` of audio is queued (or that long at most)."""
        need = int(self._prebuffer_s * 1000) // FRAME_MS - 1  # `first` is already in hand
        give_up = self._clock.now() + self._prebuffer_s
        while self._q.qsize() < need and not self._closing.is_set():
            now = self._clock.now()
            if now >= give_up:
                return
            self._clock.sleep_until(min(give_up, now + 0.002), self._closing)

    def _send(self, frame: Frame, now: float) -> None:
        assert frame.audio is not None
        sent = self._item_ms.get(frame.item_id, 0.0) + FRAME_MS
        plays_at = self._writer.send_frame(frame.gen, frame.audio, frame.item_id, sent)
        if plays_at is None:
            return
        # The echo reference is timed by when the frame plays, not when it left: the
        # prebuffer sent ahead would otherwise make every echo look that much later.
        self._sent_ref.append((plays_at, frame.audio))
        if frame.item_id not in self._item_ms:
            self._since_mark = 0
            self._on_first_frame(frame.response_id, now)
        self._item_ms[frame.item_id] = sent
        self._since_mark += 1
        # A mark after the first frame times the start of playback; then every interval.
        if sent == FRAME_MS or self._since_mark >= self._mark_frames:
            self._mark(frame, end=False)

    def _mark(self, frame: Frame, end: bool) -> None:
        sent = self._item_ms.get(frame.item_id, 0.0)
        name = f"{frame.response_id}:{frame.item_id}:{int(sent)}" + (":end" if end else "")
        self._since_mark = 0
        self._writer.send_mark(
            frame.gen,
            name,
            lambda play_end: self._register_mark(name, frame.item_id, sent, end, play_end),
        )
        if end:
            self._item_ms.pop(frame.item_id, None)
