"""The end-of-turn model in a running call: the rx loop hands checks to a runner and acts
on the answers it gets back (fake sockets, the real VAD, fake check runners).

A commit before END_SILENCE_MS (set long here) could only come from the model's answer.
"""

from __future__ import annotations

import logging
import math
import threading
import wave
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import Harness, running_call
from timing import bound

from mediasrv.audio import pcm16_to_ulaw
from mediasrv.call.turn_checks import Reply

WEASELS = Path(__file__).parent / "audio" / "speech" / "en_asterisk_allison_tt-weasels.wav"
SILENT = b"\xff" * 160
LOCAL = {"turn_detection": "local", "turn_model": "smart-turn"}
# The check at TURN_CHECK_SILENCE_MS alone: the early check (TURN_EARLY_CHECK_MS, on by
# default) is also asked in the clip's own gaps between words; tests/test_endturn.py has it.
ONE_CHECK = {**LOCAL, "turn_early_check_ms": 0}


def speech_frames() -> list[bytes]:
    """'Weasels have eaten our phone system' (ends with the file), as 20 ms mu-law frames."""
    with wave.open(str(WEASELS), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    ulaw = bytes(pcm16_to_ulaw(pcm))
    return [ulaw[i : i + 160] for i in range(0, len(ulaw) - 159, 160)]


def push(h: Harness, frames: list[bytes]) -> None:
    for frame in frames:
        h.twilio.push({"event": "media", "streamSid": "MZ1",
                       "media": {"payload": b64encode(frame).decode()}})
    h.twilio.sync()


class Answers:
    """A check runner answering every check with `answer`, at once, on the caller's thread."""

    def __init__(self, answer: float | None) -> None:
        self.answer = answer
        self.asked = 0
        self.max_waits: list[float] = []

    def submit(self, audio: Any, reply: Reply, *, skip: threading.Event | None = None,
               max_wait_s: float = math.inf) -> bool:
        self.asked += 1
        self.max_waits.append(max_wait_s)
        reply(self.answer)
        return True


class Refuses:
    """A check runner whose queue is always full."""

    def submit(self, audio: Any, reply: Reply, *, skip: threading.Event | None = None,
               max_wait_s: float = math.inf) -> bool:
        return False


class Later:
    """A check runner answering from its own thread once the test opens `gate`."""

    def __init__(self, answer: float) -> None:
        self.answer = answer
        self.gate = threading.Event()
        self.threads: list[threading.Thread] = []

    def submit(self, audio: Any, reply: Reply, *, skip: threading.Event | None = None,
               max_wait_s: float = math.inf) -> bool:
        def run() -> None:
            if self.gate.wait(bound(5.0)):
                reply(self.answer)

        thread = threading.Thread(target=run, name="mediasrv-test-model")
        self.threads.append(thread)
        thread.start()
        return True


@pytest.fixture
def later() -> Iterator[Later]:
    runner = Later(0.95)
    yield runner
    runner.gate.set()
    for thread in runner.threads:
        thread.join(bound(2.0))


def test_a_turn_the_model_calls_finished_is_committed_and_answered() -> None:
    runner = Answers(0.95)
    with running_call({"turn_checks": runner}, end_silence_ms=3000, **ONE_CHECK) as h:
        push(h, speech_frames() + [SILENT] * 15)  # 300 ms: past the check, far from 3 s
        h.rt.expect("input_audio_buffer.commit")
        h.rt.expect("response.create")
    assert runner.asked == 1


def test_a_check_may_wait_only_until_the_fixed_silence_would_end_its_turn() -> None:
    runner = Answers(0.95)
    with running_call({"turn_checks": runner}, end_silence_ms=700, turn_check_silence_ms=200,
                      **ONE_CHECK) as h:
        push(h, speech_frames() + [SILENT] * 15)
        h.rt.expect("input_audio_buffer.commit")
    assert runner.max_waits == [pytest.approx(0.5)]  # asked at 200 ms, 700 ms would end it


def test_a_refused_check_ends_the_turn_at_the_fixed_silence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mediasrv.call")
    with running_call({"turn_checks": Refuses()}, end_silence_ms=1000, **LOCAL) as h:
        push(h, speech_frames() + [SILENT] * 15)
        h.sync()
        assert "input_audio_buffer.commit" not in h.rt.sent_types()
        push(h, [SILENT] * 40)  # 1,100 ms in all: END_SILENCE_MS, not the 1,500 ms cap
        h.rt.expect("input_audio_buffer.commit")
    assert "[TURN] end-of-turn check refused" in caplog.text


def test_a_failed_check_ends_the_turn_at_the_fixed_silence() -> None:
    with running_call({"turn_checks": Answers(None)}, end_silence_ms=1000, **LOCAL) as h:
        push(h, speech_frames() + [SILENT] * 15)
        h.sync()
        assert "input_audio_buffer.commit" not in h.rt.sent_types()
        push(h, [SILENT] * 40)
        h.rt.expect("input_audio_buffer.commit")


def test_an_answer_arriving_while_no_frames_come_still_ends_the_turn(later: Later) -> None:
    with running_call({"turn_checks": later}, end_silence_ms=3000, **LOCAL) as h:
        push(h, speech_frames() + [SILENT] * 15)
        h.sync()
        assert "input_audio_buffer.commit" not in h.rt.sent_types()
        later.gate.set()  # the line stays quiet: the rx loop must look for the answer itself
        h.rt.expect("input_audio_buffer.commit")
        h.rt.expect("response.create")


def test_a_caller_who_goes_on_before_the_answer_is_created_hears_one_answer() -> None:
    with running_call({"turn_checks": Answers(0.95)}, end_silence_ms=3000, **ONE_CHECK) as h:
        push(h, speech_frames() + [SILENT] * 15)  # the model ends the turn at a pause
        h.rt.expect("response.create")
        h.clock.advance(0.02 * (len(speech_frames()) + 15))  # real time, not a flood
        push(h, speech_frames() + [SILENT] * 15)  # the caller goes on; the backend is slow
        h.rt.expect("input_audio_buffer.commit")
        h.sync()
        assert "response.create" not in h.rt.sent_types()  # deferred behind the first
        h.rt.emit({"type": "response.created", "response": {"id": "resp_1"}})
        assert h.rt.expect("response.cancel")["response_id"] == "resp_1"
        h.deltas("resp_1", "item_1", 200)  # already on its way: never played
        assert h.call.stats().queued_frames == 0
        h.rt.emit({"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}})
        h.rt.expect("response.create")  # one answer, for the whole utterance
