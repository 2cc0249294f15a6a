"""Caller audio to the backend: the inbound budget, gaps, the turn policy, batched appends.

Layer: call. Runs on the rx loop only: its state has one owner and needs no lock.

Every inbound 20 ms frame goes through the turn policy (VAD and echo guard: mediasrv.policy.turns),
which says what to forward and which turn events the frame makes; the call acts on the
events. What is forwarded is sent in appends of `append_batch_ms` (one send per 100 ms
instead of one per frame), flushed before a commit. Audio faster than real time is cut
at the inbound budget first, so a flood costs at most real time in VAD and appends.

An end-of-turn check the policy asks for goes to the process's model worker
(mediasrv.call.turn_checks); its answer comes back on the worker's thread into
`_answers`, and the rx loop hands it to the policy (`take_answers`) between Twilio
messages -- the policy keeps one owner. A refused or failed check is told to the policy
as such: the turn then ends at the fixed silence.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from functools import partial

from mediasrv.audio import FRAME_BYTES, ULAW_SILENCE
from mediasrv.call.core import CallCore
from mediasrv.call.playout import EchoReference
from mediasrv.call.turn_checks import CheckRunner
from mediasrv.policy.endturn import CheckRequest
from mediasrv.policy.guards import InboundBudget
from mediasrv.policy.turns import TurnEvent, TurnPolicy, TurnStep
from mediasrv.protocol.twilio import Media

MAX_GAP_PAD_MS = 2000  # longest inbound gap padded with silence for the backend
# The capture clock may run 200 ppm fast against ours before a frame pulls it back: far
# more than two real clocks drift, far less than the jitter it must not follow.
_ORIGIN_CREEP = 2e-4
# A message read later than this after the last media frame's end is timed on arrival:
# Twilio sends inbound media all call long, so a longer silence means the stream stopped,
# not a backlog. 5 s, not 1: in fresh-clone CI an rx loop fell 1.07 s behind with six calls
# in one process, its mark echoes were then timed on arrival, and a clear was truncated
# 1,078 ms short (test_three_interruptions_truncate_within_one_frame_of_what_had_played).
_MAX_BACKLOG_S = 5.0
# While a check is out, the rx loop looks for its answer at least this often: Twilio's
# frames (every 20 ms) usually wake it sooner; this covers a line that went quiet.
ANSWER_POLL_S = 0.02


class Uplink:
    def __init__(self, core: CallCore, echo: EchoReference,
                 on_turn: Callable[[TurnEvent, float], None],
                 checks: CheckRunner | None = None) -> None:
        self._core = core
        self._echo = echo
        self._on_turn = on_turn  # acts on each event at once: before the next frame is fed
        self.turn_policy = TurnPolicy(core.config.turn, logger=core.log)
        self._checks = checks  # None: no model (a check asked for is a failed one)
        end_turn = core.config.turn.end_turn
        # A check not started by the time the fixed silence would end its turn is not run:
        # that silence ends the turn (the policy's fallback) sooner than its answer could.
        self._max_wait_s = 0.0 if end_turn is None else max(
            0.0, (end_turn.fallback_silence_ms - end_turn.check_silence_ms) / 1000.0)
        # The model's answers (seq, P or None), put by its worker, taken by the rx loop.
        self._answers: queue.Queue[tuple[int, float | None]] = queue.Queue(maxsize=150)
        self.checks_out = 0  # asked, not yet answered (rx loop only)
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
        sent = self._echo.take()
        if sent:
            network = core.network_echo_delay()
            for sent_at, frame in sent:
                if frame is None:
                    self.turn_policy.on_cut(sent_at + network)
                else:
                    self.turn_policy.on_sent(frame, sent_at + network)
        closing = core.closing.is_set()
        for start in range(0, len(msg.payload), FRAME_BYTES):
            step = self.turn_policy.feed(msg.payload[start : start + FRAME_BYTES], now,
                                   ai_playing=ai_playing, closing=closing)
            if step.forward:
                self._forward(step.forward)
            self._act(step, now)
        return True

    def take_answers(self, now: float) -> None:
        """Hand the end-of-turn model's answers that came back to the turn policy."""
        while self.checks_out:
            try:
                seq, probability = self._answers.get_nowait()
            except queue.Empty:
                return
            self.checks_out -= 1
            closing = self._core.closing.is_set()
            if probability is None:
                step = self.turn_policy.on_check_failed(seq, now, closing=closing)
            else:
                step = self.turn_policy.on_check_result(seq, probability, now, closing=closing)
            self._act(step, now)

    def receive_timeout(self, longest: float) -> float:
        """Return how long the rx loop may block on Twilio: briefly while a check is out."""
        return min(longest, ANSWER_POLL_S) if self.checks_out else longest

    def _act(self, step: TurnStep, now: float) -> None:
        for event in step.events:
            self._on_turn(event, now)
        if step.check is not None:
            self._ask(step.check, now)

    def _ask(self, check: CheckRequest, now: float) -> None:
        core = self._core
        if self._checks is not None and self._checks.submit(
            check.audio, partial(self._answered, check.seq), skip=core.closing,
            max_wait_s=self._max_wait_s,
        ):
            self.checks_out += 1
            return
        core.log.warning("[TURN] end-of-turn check refused (the model is busy or off): "
                         "this turn ends at the fixed silence")
        self._act(self.turn_policy.on_check_failed(check.seq, now,
                                                   closing=core.closing.is_set()), now)

    def _answered(self, seq: int, probability: float | None) -> None:
        """Take a check's answer (on the model's worker thread): never blocks it."""
        try:
            self._answers.put_nowait((seq, probability))
        except queue.Full:  # 150 checks out at once: not one call's pauses
            self._core.log.warning("[TURN] end-of-turn answer dropped: queue full")

    def stream_time(self, now: float) -> float:
        """Return when Twilio sent what the rx loop reads now, on our clock.

        Twilio sends its messages in order, media every 20 ms: a message read after a
        media frame left about when that frame's audio ended (origin + its end). A mark
        echo stamped this way does not carry the rx loop's own backlog (measured: late
        reads under load put the playout lag, and so the truncation, 90 ms off). `now`
        when no media came yet, or the last came over `_MAX_BACKLOG_S` ago (a stopped stream).
        """
        if self._origin is None or self._next_ts is None:
            return now
        sent = self._origin + self._next_ts / 1000.0
        return sent if 0.0 <= now - sent <= _MAX_BACKLOG_S else now

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
        self._act(step, now)
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
