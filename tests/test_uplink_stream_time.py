"""Uplink.stream_time: a message read after media is timed by when Twilio sent it.

A mark echo read by a busy rx loop must be stamped with when it left Twilio (right after
the last media frame read, i.e. at that frame's end on the stream clock), not when the loop
got to it; the read time serves only when there is no stream clock yet or a real gap.
"""

from __future__ import annotations

import logging

from fakes import FakeRealtime, call_deps, call_settings

from mediasrv.audio import FRAME_BYTES, ULAW_SILENCE
from mediasrv.call.core import CallCore
from mediasrv.call.observer import CallLog
from mediasrv.call.playout import EchoReference
from mediasrv.call.uplink import Uplink
from mediasrv.clock import FakeClock
from mediasrv.protocol.twilio import Media

FRAME = bytes([ULAW_SILENCE]) * FRAME_BYTES


def uplink() -> Uplink:
    clock = FakeClock(start=1000.0)
    deps = call_deps(call_settings(turn_detection="local"), clock, FakeRealtime([]))
    core = CallCore(deps, CallLog(logging.getLogger("test"), {"call_sid": "-"}))
    return Uplink(core, EchoReference(), lambda event, now: None)


def test_before_any_media_the_read_time_is_the_stream_time() -> None:
    up = uplink()
    assert up.stream_time(1000.5) == 1000.5


def test_a_message_read_late_is_timed_at_the_end_of_the_last_media_frame() -> None:
    up = uplink()
    up.on_media(Media(0, FRAME), 1000.03)  # the soonest arrival sets the origin: 1000.03
    up.on_media(Media(20, FRAME), 1000.05)
    # The rx loop reads the next message (a mark echo) 90 ms late: Twilio sent it after
    # the frame that ends at stream time 40 ms.
    assert abs(up.stream_time(1000.16) - 1000.07) < 1e-9


def test_frames_read_late_do_not_move_the_stream_clock() -> None:
    up = uplink()
    up.on_media(Media(0, FRAME), 1000.03)
    up.on_media(Media(20, FRAME), 1000.15)  # a backlog: read 100 ms late
    up.on_media(Media(40, FRAME), 1000.16)
    # (The origin creeps 200 ppm towards later arrivals, for clock drift: microseconds.)
    assert abs(up.stream_time(1000.17) - 1000.09) < 1e-4


def test_a_backlog_of_over_a_second_is_still_timed_by_the_stream() -> None:
    up = uplink()
    up.on_media(Media(0, FRAME), 1000.03)
    up.on_media(Media(20, FRAME), 1000.05)
    # The rx loop fell 1.1 s behind (seen in CI with six calls in one process): the mark
    # read now still left Twilio right after the frame that ends at stream time 40 ms.
    assert abs(up.stream_time(1001.17) - 1000.07) < 1e-9


def test_after_media_stopped_for_over_5_s_the_read_time_serves() -> None:
    up = uplink()
    up.on_media(Media(0, FRAME), 1000.03)
    # Twilio sends media all call long: 6 s without any is a stopped stream, not a backlog.
    assert up.stream_time(1006.05) == 1006.05


def test_a_read_time_before_the_stream_time_is_kept() -> None:
    up = uplink()
    up.on_media(Media(0, FRAME), 1000.03)
    up.on_media(Media(20, FRAME), 1000.05)
    # Read before the last frame's audio has even ended (a message that overtook the
    # stream clock's estimate): the later stamp would be a guess into the future.
    assert up.stream_time(1000.06) == 1000.06
