"""The tx loop's pacing on a manual clock: how much audio it keeps queued at Twilio, and
what a stall of the tx thread (a GC pause, the GIL held elsewhere) does to the phone's
playout -- a gap there moves our echo against the canceller's reference."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import Mock

import pytest
from fakes import wait_for

from mediasrv.audio import FRAME_BYTES
from mediasrv.call.lock import CallLock
from mediasrv.call.playout import ClearRequest, EchoReference, PlayoutBuffer
from mediasrv.call.tx import TwilioWriter, TxListener, TxLoop
from mediasrv.clock import ManualClock
from mediasrv.policy.ledger import BargeInPlan
from mediasrv.protocol.twilio import TwilioMessages


class Socket:
    def __init__(self) -> None:
        self.media = 0

    def send(self, data: str) -> None:
        self.media += '"event":"media"' in data


class Pacer:
    def __init__(self, clock: ManualClock, sock: Socket, buffer: PlayoutBuffer,
                 echo: EchoReference, lock: CallLock) -> None:
        self.clock, self.sock, self.buffer, self.echo, self.lock = clock, sock, buffer, echo, lock

    def queue(self, ms: int) -> None:
        with self.lock:
            self.buffer.put_audio_locked("resp_1", "item_1", b"\x55" * (ms // 20 * FRAME_BYTES))

    def sent(self, n: int) -> None:
        """Wait until `n` frames in all have gone out."""
        wait_for(lambda: self.sock.media >= n, f"{n} frames sent")

    def play_times(self) -> list[float]:
        return [t for t, _ in self.echo.take()]


@contextmanager
def pacer(lead_ms: int, prebuffer_ms: int = 0) -> Iterator[Pacer]:
    clock, sock, lock = ManualClock(), Socket(), CallLock()
    buffer, echo, closing = PlayoutBuffer(lock), EchoReference(), threading.Event()
    loop = TxLoop(buffer, TwilioWriter(sock, TwilioMessages("MZ1"), clock), clock, closing,
                  Mock(spec=TxListener), echo, prebuffer_ms=prebuffer_ms, lead_ms=lead_ms,
                  mark_interval_ms=200)
    thread = threading.Thread(target=loop.run, name="test-tx")
    thread.start()
    try:
        yield Pacer(clock, sock, buffer, echo, lock)
    finally:
        closing.set()
        buffer.wake.set()
        thread.join(5)
        assert not thread.is_alive()
    assert loop.stats.late_frames == 0


def test_the_prebuffer_goes_out_at_once_then_the_lead_builds_4_ms_a_frame() -> None:
    with pacer(lead_ms=160, prebuffer_ms=60) as p:
        p.queue(2000)
        p.sent(3)  # 60 ms at once, with the clock standing still
        assert p.sock.media == 3
        for n in range(4, 28):  # 16 ms apart: the phone gains 4 ms a frame, 60 -> 156
            p.clock.advance(0.016)
            p.sent(n)
            assert p.sock.media == n
        for n in range(28, 34):  # the lead is there: one frame per frame played
            p.clock.advance(0.02)
            p.sent(n)
            assert p.sock.media == n


@pytest.mark.parametrize(("lead_ms", "gap_ms"), [(160, 0.0), (60, 60.0)])
def test_a_stall_longer_than_the_lead_and_only_then_leaves_a_gap_at_the_phone(
        lead_ms: int, gap_ms: float) -> None:
    # The tx thread sleeps through 120 ms (measured on a loaded machine: 110-220 ms).
    # With 160 ms at Twilio its playout goes on; with 60 ms it runs dry for 60 ms, and
    # the frames after play that much later than a steady stream would have.
    with pacer(lead_ms=lead_ms, prebuffer_ms=60) as p:
        p.queue(3000)
        p.sent(3)
        steps = [0.016] * 24 * (lead_ms > 60) + [0.02] * 5 + [0.12] + [0.02] * 10
        for dt in steps:
            n = p.sock.media
            p.clock.advance(dt)
            p.sent(n + 1)
        times = p.play_times()
        late = [round((b - a) * 1000 - 20, 6) for a, b in zip(times, times[1:], strict=False)]
        assert [d for d in late if d] == ([gap_ms] if gap_ms else []), late


def test_a_clear_tells_the_echo_reference_when_what_was_sent_ahead_stopped_playing() -> None:
    # The lead sent ahead is dropped by Twilio on `clear`: the reference must learn that
    # nothing sent to play from then on ever played (the rx loop takes it off).
    with pacer(lead_ms=160, prebuffer_ms=60) as p:
        p.queue(2000)
        p.sent(3)
        for n in range(4, 14):
            p.clock.advance(0.016)
            p.sent(n)
        cleared_at = p.clock.now()
        with p.lock:
            p.buffer.clear_locked(ClearRequest(BargeInPlan("resp_1", False, False), "test",
                                               cleared_at, 100))
        sent: list[tuple[float, bytes | None]] = []

        def cut_seen() -> bool:
            sent.extend(p.echo.take())
            return bool(sent) and sent[-1][1] is None

        wait_for(cut_seen, "the cut after the clear")
        *frames, (at, cut) = sent
        assert cut is None and at == cleared_at
        assert all(frame is not None for _, frame in frames)
        assert sum(t >= at for t, _ in frames) >= 5  # what was ahead: now known unplayed
