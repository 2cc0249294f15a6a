"""Audio out: the Twilio writer and the 20 ms paced tx thread, the only writer to Twilio.

Layer: call.

Flow: backend reader --audio, framed--> PlayoutBuffer (150 frames + overflow) --tx loop,
one frame per 20 ms deadline--> TwilioWriter --> Twilio.

A frame of a cut-off response must never reach Twilio after the `clear`. Every frame
carries the playout buffer's *generation*; a barge-in bumps it, empties the buffer and
puts a `ClearRequest` first in line (playout.py). This thread drops any frame of an
older generation it still holds, and sends the `clear` itself: frames and `clear` leave
from one thread, in order, so a frame is either on the wire before the `clear` (and
`clear` discards it at Twilio) or never. No lock guards the socket: nobody else writes.

The writer also keeps the phone's playout as the sender sees it: Twilio plays audio in
order, a frame as soon as it arrives unless the one before is still playing. Frames and
`clear` travel the same path, so on the sender's clock a frame plays from
max(sent, end of the previous frame) for 20 ms, and what had played when the `clear`
*reached* Twilio is what this model had played when it was *sent* -- whatever the
network delay. (Playback that Twilio delays beyond that, e.g. after network jitter,
shows in how late the mark echoes come back: `mediasrv.policy.playback` corrects for it.)
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from mediasrv.audio import FRAME_MS
from mediasrv.call.playout import ClearRequest, EchoReference, Entry, Frame, PlayoutBuffer, Sync
from mediasrv.clock import Clock
from mediasrv.errors import PeerClosed
from mediasrv.policy.playback import ClearPoint, SentFrame
from mediasrv.protocol.twilio import TwilioMessages

TICK = FRAME_MS / 1000.0
# If the tx thread falls this far behind its schedule (a stalled socket, a GC pause) it
# restarts the schedule instead of bursting the backlog out faster than real time.
_RESYNC_S = 0.2
# Above the prebuffer, the lead builds with frames this far apart (4 ms a frame, 0.5 s from
# 60 to 160 ms): as regular at Twilio as real time within 4 ms, not a burst.
_FILL_S = 0.016
# Twilio's buffer is surely empty this long after the playout timeline ran out: a mark sent
# then measures the network round trip alone (see mediasrv.policy.playback).
_PROBE_QUIET_S = 0.3
# A burst with nothing to play for this long (and no end marker) is over.
_BURST_GAP_S = 0.5
# Frames whose playout times are kept (2.56 s): a clear asks about what is playing now.
_PLAYOUT_LOG = 128
_IDLE_WAIT_S = 0.1  # an idle tx loop blocks this long at most, then looks at `closing`


class TextSocket(Protocol):
    def send(self, data: str) -> None: ...


class TxListener(Protocol):
    """What the tx loop reports to the call, on the tx thread (the call takes its lock)."""

    def before_mark(self, name: str, item_id: str, ms: float, is_end: bool,
                    play_end: float) -> None: ...
    def before_probe(self, name: str, sent_at: float) -> None: ...
    def first_frame(self, response_id: str, now: float) -> None: ...
    def item_sent(self, response_id: str) -> None: ...
    def frame_sent(self, audio: bytes, plays_at: float) -> None: ...
    def before_clear(self) -> None: ...
    def after_clear(self, request: ClearRequest, point: ClearPoint) -> None: ...


class TwilioWriter:
    """Writes to the Twilio socket (from the tx thread only); keeps the playout timeline."""

    def __init__(self, ws: TextSocket, messages: TwilioMessages, clock: Clock) -> None:
        self._ws = ws
        self._msgs = messages
        self._clock = clock
        self.frames_sent = 0
        self.last_sent_at: float | None = None  # when the last frame left (read by the watcher)
        self._play_end = 0.0  # when the last frame sent finishes playing (sender's clock)
        self._played: deque[SentFrame] = deque(maxlen=_PLAYOUT_LOG)

    def send_frame(self, audio: bytes, item_id: str = "", item_ms: float = 0.0) -> float:
        """Send one frame; return when it starts playing at the phone (playout timeline)."""
        now = self._clock.now()
        self._send(self._msgs.media(audio))
        self.last_sent_at = now
        start = max(now, self._play_end)
        self._play_end = start + TICK
        self._played.append(SentFrame(item_id, item_ms, self._play_end))
        self.frames_sent += 1
        return start

    def send_mark(self, name: str) -> None:
        self._send(self._msgs.mark(name))

    @property
    def play_end(self) -> float:
        """Return when the last frame sent finishes playing (sender's clock)."""
        return self._play_end

    def clear(self) -> ClearPoint:
        """Send `clear`; return when it left and the frames sent before it."""
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


@dataclass
class TxStats:
    underruns: int = 0
    late_frames: int = 0


class TxLoop:
    """Sends one frame per 20 ms to absolute deadlines, with marks for playback truth."""

    def __init__(self, buffer: PlayoutBuffer, writer: TwilioWriter, clock: Clock,
                 closing: threading.Event, listener: TxListener, echo: EchoReference, *,
                 prebuffer_ms: int, lead_ms: int, mark_interval_ms: int) -> None:
        self._buffer = buffer
        self._writer = writer
        self._clock = clock
        self._closing = closing
        self._listener = listener
        self._echo = echo
        self._prebuffer_s = prebuffer_ms / 1000.0
        # Due times are "so long before the schedule's end": a frame goes out while the
        # phone holds less than `lead_ms` (at once while it holds less than the prebuffer,
        # `_FILL_S` apart above that), so it holds up to that much once the frame is in.
        lead_ms = max(FRAME_MS, lead_ms)
        self._lead_s = lead_ms / 1000.0 - TICK
        self._floor_s = max(FRAME_MS, min(prebuffer_ms, lead_ms)) / 1000.0 - TICK
        self._mark_frames = max(1, mark_interval_ms // FRAME_MS)
        self._probes = 0
        self._probed = False  # a round-trip probe went out since the last burst
        self.stats = TxStats()
        self._item_ms: dict[str, float] = {}
        self._since_mark = 0

    def run(self) -> None:
        """Play bursts until `closing`; raise PeerClosed if the socket fails."""
        # The stream's start is the one moment the buffer is surely empty and the
        # greeting not yet sent: without this probe the greeting's own marks were the
        # only round trip known at its first barge-in, so however late Twilio played it
        # counted as network, and the cut came out late (emulator: +21 ms mean at
        # 80/35 ms transit; with the probe the cuts' spread fell from 13 to 8 ms).
        self._probe()
        while not self._closing.is_set():
            entry = self._buffer.get(timeout=_IDLE_WAIT_S)  # idle: block instead of ticking
            if entry is None:
                self._probe_if_quiet()
            elif isinstance(entry, Frame) and entry.gen == self._buffer.generation:
                self._burst(entry)
                self._probed = False
            elif not isinstance(entry, Frame):
                self._control(entry)

    def _control(self, entry: ClearRequest | Sync) -> None:
        if isinstance(entry, Sync):
            entry.done.set()
            return
        self._buffer.wake.clear()
        self._listener.before_clear()
        point = self._writer.clear()
        # Twilio drops what it held: up to the lead, sent ahead and never played.
        self._echo.cut(point.at)
        self._listener.after_clear(entry, point)

    def _probe_if_quiet(self) -> None:
        """Once per quiet spell, measure the round trip with a mark on an empty buffer."""
        if self._probed or self._clock.now() - self._writer.play_end < _PROBE_QUIET_S:
            return
        self._probe()

    def _probe(self) -> None:
        """Send a mark on an empty buffer: its echo times the round trip alone."""
        self._probed = True
        self._probes += 1
        name = f"rtt-probe-{self._probes}"
        self._listener.before_probe(name, self._clock.now())
        self._writer.send_mark(name)

    def _burst(self, first: Frame) -> None:
        """Play one burst of audio at real time, keeping up to `lead_ms` of it at Twilio."""
        self._prebuffer()
        # Paced at exactly real time, every frame would reach Twilio just as the one before
        # ends: any network jitter would stop its playback and every stop would add up
        # (measured: 85 ms behind after 1.3 s of a greeting on a loaded machine). The
        # prebuffer goes out at once, then frames 16 ms apart until Twilio holds `lead_ms`,
        # then one per frame played: the lead rides out network jitter and our own stalls
        # (a GC pause, the GIL held elsewhere: 110-220 ms seen on a loaded machine, where
        # 60 ms of lead let Twilio's playout run dry and moved our echo against its
        # reference by the jitter of the packet that restarted it). Below the prebuffer
        # (after a stall) frames go at once again. A clear throws the lead away, so it
        # costs barge-in nothing.
        pending: Entry | None = first
        now = self._clock.now()
        # When what we sent would end at the phone, played back to back: the pacing
        # schedule. Behind real time by up to `_RESYNC_S` (a late wake-up), the backlog
        # goes out at once; further behind, it restarts from now.
        sched = max(now, self._writer.play_end)
        last_audio = now
        sent_at = -1.0  # when the last frame went out
        looked = -1.0  # when the buffer was last found empty: look again a frame later
        while not self._closing.is_set():
            if pending is None:
                pending = self._buffer.get_nowait()
            if pending is not None and not isinstance(pending, Frame):
                self._control(pending)
                if isinstance(pending, ClearRequest):  # Twilio is empty: start afresh
                    looked = self._clock.now()
                    sched = max(looked, self._writer.play_end)
                pending = None
                continue
            if pending is not None and pending.gen != self._buffer.generation:
                pending = None  # a clear superseded it: drop without using a tick
                continue
            if pending is not None and pending.audio is None:
                self._mark(pending, end=True)
                self._listener.item_sent(pending.response_id)
                pending = None
                if self._buffer.qsize() == 0:
                    return
                continue
            due = max(sched - self._lead_s, min(sched - self._floor_s, sent_at + _FILL_S))
            if pending is None:
                due = max(due, looked + TICK)
            if not self._clock.sleep_until(due, self._buffer.wake):
                self._buffer.wake.clear()  # a clear is queued (or closing): look again
                continue
            now = self._clock.now()
            if pending is None:
                looked = now
                sched = max(sched, now)  # nothing was queued: no backlog to catch up
                pending = self._buffer.get_nowait()  # queued while this thread slept
                if pending is not None:
                    continue
                if now - last_audio > _BURST_GAP_S:
                    return
                if now >= self._writer.play_end:  # the phone has nothing left to play
                    self.stats.underruns += 1
                continue
            if now - sched > _RESYNC_S:
                self.stats.late_frames += 1
                sched = now
            sched += TICK
            last_audio = sent_at = now
            self._send(pending, now)
            pending = None

    def _prebuffer(self) -> None:
        """Wait until `prebuffer_ms` of audio is queued (or that long at most)."""
        need = int(self._prebuffer_s * 1000) // FRAME_MS - 1  # `first` is already in hand
        give_up = self._clock.now() + self._prebuffer_s
        while self._buffer.qsize() < need and not self._closing.is_set():
            now = self._clock.now()
            if now >= give_up:
                return
            if not self._clock.sleep_until(min(give_up, now + 0.002), self._buffer.wake):
                return  # a clear is queued: the burst loop takes it first

    def _send(self, frame: Frame, now: float) -> None:
        assert frame.audio is not None
        sent = self._item_ms.get(frame.item_id, 0.0) + FRAME_MS
        plays_at = self._writer.send_frame(frame.audio, frame.item_id, sent)
        # The echo reference is timed by when the frame plays, not when it left: the
        # prebuffer sent ahead would otherwise make every echo look that much later.
        self._echo.add(plays_at, frame.audio)
        self._listener.frame_sent(frame.audio, plays_at)  # the recording's AI channel
        if frame.item_id not in self._item_ms:
            self._since_mark = 0
            self._listener.first_frame(frame.response_id, now)
        self._item_ms[frame.item_id] = sent
        self._since_mark += 1
        # A mark after the first frame times the start of playback; then every interval.
        if sent == FRAME_MS or self._since_mark >= self._mark_frames:
            self._mark(frame, end=False)

    def _mark(self, frame: Frame, end: bool) -> None:
        sent = self._item_ms.get(frame.item_id, 0.0)
        name = f"{frame.response_id}:{frame.item_id}:{int(sent)}" + (":end" if end else "")
        self._since_mark = 0
        # Recorded before it is sent: Twilio's echo may come back before this thread runs on.
        self._listener.before_mark(name, frame.item_id, sent, end, self._writer.play_end)
        self._writer.send_mark(name)
        if end:
            self._item_ms.pop(frame.item_id, None)
