"""Caller audio to the backend: the inbound budget, gaps, the turn policy, batched appends.

Layer: call. Runs on the rx loop only: its state has one owner and needs no lock.

Every inbound 20 ms frame goes through the turn policy (VAD and echo guard: mediasrv.policy.turns),
which says what to forward and which turn events the frame makes; the call acts on the
events. What is forwarded is sent in appends of `append_batch_ms` (one send per 100 ms
instead of one per frame), flushed before a commit. Audio faster than real time is cut
at the inbound budget first, so a flood costs at most real time in VAD and appends.
"""

from __future__ import annotations

from collections.abc import Callable

from mediasrv.audio import FRAME_BYTES, ULAW_SILENCE
from mediasrv.call.core import CallCore
from mediasrv.call.playout import EchoReference
from mediasrv.policy.guards import InboundBudget
from mediasrv.policy.turns import TurnEvent, TurnPolicy
from mediasrv.protocol.twilio import Media

MAX_GAP_PAD_MS = 2000  # longest inbound gap padded with silence for the backend
# The capture clock may run 200 ppm fast against ours before a frame pulls it back: far
# more than two real clocks drift, far less than the jitter it must not follow.
_ORIGIN_CREEP = 2e-4


class Uplink:
    def __init__(self, core: CallCore, echo: EchoReference,
                 on_turn: Callable[[TurnEvent, float], None]) -> None:
        self._core = core
        self._echo = echo
        self._on_turn = on_turn  # acts on each event at once: before the next frame is fed
        self.turn_policy = TurnPolicy(core.config.turn, logger=core.log)
        self._budget = InboundBudget(core.started_at)
        self.flood_dropped = 0  # caller frames beyond the inbound budget
        self._batch: list[bytes] = []
        self.batch_bytes = 0
        self._appended = 0  # bytes appended since the last commit
        self._next_ts: int | None = None  # the stream timestamp the next frame should have
        # Our clock's time of stream timestamp 0, from the frames that arrived soonest: a
        # frame is judged at when it left Twilio (plus the least transit), not when this
        # thread got to it -- a late read must not move our echo in time against what we
        # sent (measured: a loaded machine read frames 100-200 ms late).
        self._origin: float | None = None

    def on_media(self, msg: Media, now: float) -> bool:
        """Take one media message; False if it was over the inbound budget (dropped)."""
        if not self._budget.take(len(msg.payload) / 8, now):
            self.flood_dropped += 1
            return False
        if msg.timestamp_ms >= 0:
            now = self._captured_at(msg.timestamp_ms, now)
            if self._next_ts is not None and msg.timestamp_ms > self._next_ts:
                self._on_gap(msg.timestamp_ms - self._next_ts, now)
            self._next_ts = msg.timestamp_ms + len(msg.payload) // 8
        core = self._core
        core.recording.caller_frame(msg.payload, now - core.started_at)  # as captured
        ai_playing = core.ai_playing()
        for sent_at, frame in self._echo.take():
            self.turn_policy.on_sent(frame, sent_at)
        closing = core.closing.is_set()
        for start in range(0, len(msg.payload), FRAME_BYTES):
            step = self.turn_policy.feed(msg.payload[start : start + FRAME_BYTES], now,
                                   ai_playing=ai_playing, closing=closing)
            if step.forward:
                self._forward(step.forward)
            for event in step.events:
                self._on_turn(event, now)
        return True

    def _captured_at(self, timestamp_ms: int, now: float) -> float:
        """Return when the frame with this stream timestamp left Twilio, on our clock."""
        stamp = timestamp_ms / 1000.0
        origin = now - stamp
        if self._origin is None or origin < self._origin:
            self._origin = origin
        elif self._next_ts is not None:  # drift: creep towards later arrivals, slowly
            self._origin = min(origin, self._origin + _ORIGIN_CREEP * (
                timestamp_ms - self._next_ts + 20) / 1000.0)
        return self._origin + stamp

    def end_of_turn(self) -> bool:
        """Send what is batched and commit the caller's turn; False if nothing to commit."""
        self._flush()
        if self._appended <= 0:
            self._core.log.info("[UTT] SKIPPED: no caller audio reached the backend")
            return False
        if not self._core.backend.commit():
            return False
        self._appended = 0
        return True

    def _on_gap(self, gap_ms: int, now: float) -> None:
        """Twilio may omit silent frames: the VAD hears silence, the server VAD too."""
        core = self._core
        core.log.debug("inbound gap of %d ms treated as silence", gap_ms)
        step = self.turn_policy.feed_gap(gap_ms, now, closing=core.closing.is_set())
        for event in step.events:
            self._on_turn(event, now)
        pad_ms = min(gap_ms, MAX_GAP_PAD_MS)
        # Padding is caller audio too: forged timestamps must not amplify a flood.
        if core.config.server_turns and self._budget.take(pad_ms, now):
            self._forward(bytes([ULAW_SILENCE]) * pad_ms * 8)

    def _forward(self, audio: bytes) -> None:
        self._batch.append(audio)
        self.batch_bytes += len(audio)
        if self.batch_bytes >= self._core.config.append_batch_ms * 8:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        audio = b"".join(self._batch)
        self._batch.clear()
        self.batch_bytes = 0
        if self._core.backend.append_audio(audio):
            self._appended += len(audio)
