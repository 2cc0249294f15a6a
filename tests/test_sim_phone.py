"""Twilio's end of a call as a pure event machine: transit, playout, marks, line.

`now` is a local variable; the phone is driven exactly as the thread shell drives it.
"""

from __future__ import annotations

import numpy as np

from mediasrv.audio import ULAW_DECODE
from mediasrv.emulator.line import EchoPath, Line
from mediasrv.emulator.network import NetworkTiming
from mediasrv.emulator.phone import Outgoing, Phone
from mediasrv.emulator.script import CallerScript
from mediasrv.emulator.wire import ServerMessage

TONE = bytes([0x10]) * 160  # 20 ms of loud mu-law
SILENT = bytes([0xFF]) * 160


def phone(seconds: float = 1.0, down: float = 30.0, up: float = 40.0, line: Line | None = None,
          ) -> Phone:
    script = CallerScript.from_samples(np.zeros(int(seconds * 8000)), line=line)
    return Phone(script, NetworkTiming(down, up), media_t0=0.0)


def media(payload: bytes) -> ServerMessage:
    return ServerMessage("media", payload=payload)


def sent_by(p: Phone, now: float) -> list[tuple[float, Outgoing]]:
    return p.run_until(now)


def test_a_clear_acts_when_it_reaches_twilio_not_when_the_server_sent_it() -> None:
    p = phone()
    p.receive(media(TONE * 50), 0.0)  # 1 s of audio, plays from 0.030
    p.receive(ServerMessage("clear"), 0.5)  # reaches Twilio at 0.530
    p.run_until(1.0)
    [clear] = p.playout.clears
    assert abs(clear.at - 0.530) < 1e-9
    assert clear.dropped_bytes == 8000 - 4000  # 500 ms played, 500 ms dropped
    assert [(c.sent_at, c.applied_at) for c in p.clear_timings] == [(0.5, clear.at)]


def test_a_mark_echo_leaves_when_its_audio_has_played_and_arrives_up_ms_later() -> None:
    p = phone()
    p.receive(media(TONE * 5), 0.0)  # 100 ms, at Twilio from 0.030
    p.receive(ServerMessage("mark", name="r:i:100"), 0.0)
    marks = [m for _, m in sent_by(p, 0.1699) if m.kind == "mark"]
    assert marks == []
    arrived = [(t, m) for t, m in sent_by(p, 0.1701) if m.kind == "mark"]
    assert [(round(t, 6), m.name, m.played, round(m.made_at, 6)) for t, m in arrived] == [
        (0.17, "r:i:100", True, 0.13)
    ]


def test_inbound_frames_leave_at_the_end_of_their_window_and_travel_up() -> None:
    p = phone(seconds=0.1)
    frames = [(round(t, 6), m.frame) for t, m in sent_by(p, 1.0) if m.kind == "media"]
    assert frames == [(0.06, 0), (0.08, 1), (0.1, 2), (0.12, 3), (0.14, 4)]
    assert p.finished()


def test_the_echo_is_what_twilio_played_not_what_the_server_sent() -> None:
    line = Line(EchoPath(delay_ms=0.0, erl_db=0.0), hiss_dbov=None)
    p = phone(down=0.0, up=0.0, line=line)
    p.receive(media(TONE * 10), 0.100)  # 200 ms sent ...
    p.receive(ServerMessage("clear"), 0.150)  # ... of which 50 ms play
    inbound = b"".join(m.payload for _, m in sent_by(p, 1.0) if m.kind == "media")
    loud = np.flatnonzero(np.abs(ULAW_DECODE[np.frombuffer(inbound, np.uint8)]) > 100)
    assert loud.min() == 800 and loud.max() == 1199  # samples of 0.100-0.150 s only


def test_events_apply_in_time_order_however_late_the_shell_wakes() -> None:
    punctual, late = phone(), phone()
    for p in (punctual, late):
        p.receive(media(TONE * 25), 0.0)
        p.receive(ServerMessage("mark", name="r:i:500"), 0.0)
        p.receive(ServerMessage("clear"), 0.3)
    steps = []
    now = 0.0
    while now < 1.0:
        now += 0.005
        steps += punctual.run_until(now)
    assert steps == late.run_until(1.0)  # one wake-up at the end: the same messages, times


def test_a_clear_dated_before_the_phone_ran_past_its_arrival_applies_now_not_in_the_past() -> None:
    # The shell dates a message by its arrival at the socket, which can be read after
    # the phone has already played on: what has played cannot be taken back.
    p = phone(down=10.0)
    p.receive(media(TONE * 50), 0.0)  # 1 s of audio, plays from 0.010
    p.run_until(0.6)
    p.receive(ServerMessage("clear"), 0.5)  # would reach Twilio at 0.510: the past
    p.run_until(1.0)
    [clear] = p.playout.clears
    assert abs(clear.at - 0.6) < 1e-9
    assert [(c.sent_at, c.applied_at) for c in p.clear_timings] == [(0.5, clear.at)]
