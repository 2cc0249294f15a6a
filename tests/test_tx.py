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
from mediasrv.call.playout import EchoReference, PlayoutBuffer
from mediasrv.call.tx import TwilioWriter, TxListener, TxLoop
from mediasrv.clock import ManualClock
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


def test_the_lead_goes_out_at_once_then_one_frame_per_frame_played() -> None:
    with pacer(lead_ms=160) as p:
        p.queue(1000)
        p.sent(8)  # 160 ms at once, with the clock standing still
        assert p.sock.media == 8
        for n in range(9, 14):
            p.clock.advance(0.02)
            p.sent(n)
            assert p.sock.media == n


def test_audio_queued_after_the_burst_began_still_builds_the_lead() -> None:
    # A response streams in faster than real time: what comes after the first frames goes
    # out at the next look (a frame later) until Twilio holds the lead, not one frame per
    # tick behind them.
    with pacer(lead_ms=160) as p:
        p.queue(60)
        p.sent(3)
        p.queue(1000)
        p.clock.advance(0.02)
        p.sent(9)  # 40 ms were left at the phone: 6 more make it 160
        assert p.sock.media == 9


@pytest.mark.parametrize(("lead_ms", "gap_ms"), [(160, 0.0), (60, 60.0)])
def test_a_stall_longer_than_the_lead_and_only_then_leaves_a_gap_at_the_phone(
        lead_ms: int, gap_ms: float) -> None:
    # The tx thread sleeps through 120 ms (measured on a loaded machine: 110-135 ms).
    # With 160 ms at Twilio its playout goes on; with 60 ms it runs dry for 60 ms, and
    # the frames after play that much later than a steady stream would have.
    with pacer(lead_ms=lead_ms) as p:
        p.queue(2000)
        first = lead_ms // 20
        p.sent(first)
        for n in range(first + 1, first + 6):
            p.clock.advance(0.02)
            p.sent(n)
        p.clock.advance(0.12)
        p.sent(first + 5 + 6)
        times = p.play_times()
        steps = [round((b - a) * 1000 - 20, 6) for a, b in zip(times, times[1:], strict=False)]
        assert [s for s in steps if s] == ([gap_ms] if gap_ms else []), steps
