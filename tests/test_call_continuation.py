"""A caller who goes on after the server's VAD ended a turn at a pause (server mode): the
continuation is the caller's too, and is answered (fake sockets, the real local VAD)."""

from __future__ import annotations

from fakes import Harness, running_call
from test_call_endturn import SILENT, push, speech_frames


def talk(h: Harness, frames: list[bytes]) -> None:
    """Push `frames` as the caller's next 20 ms frames, in real time (not a flood)."""
    push(h, frames)
    h.clock.advance(0.02 * len(frames))


def committed(h: Harness, item: str) -> None:
    h.rt.emit({"type": "input_audio_buffer.committed", "item_id": item})
    h.rt.sync()


def test_a_commit_inside_the_callers_utterance_leaves_the_rest_to_the_next_commit() -> None:
    with running_call() as h:
        talk(h, speech_frames())  # our VAD's utterance is still going...
        committed(h, "u1")  # ...when the server's VAD ends a turn at a pause in it
        h.rt.expect("response.create")
        h.respond("resp_1", "item_1", ms=100)  # cut off by the continuation, done
        talk(h, speech_frames() + [SILENT] * 40)  # the caller goes on, then stops
        committed(h, "u2")
        h.rt.expect("response.create")  # the continuation is answered


def test_a_commit_after_the_callers_utterance_was_answered_is_not_the_callers() -> None:
    with running_call() as h:
        talk(h, speech_frames() + [SILENT] * 40)  # the caller speaks and stops
        committed(h, "u1")
        h.rt.expect("response.create")
        h.respond("resp_1", "item_1", ms=100)
        committed(h, "u2")  # nothing of ours since: noise or echo
        h.sync()
        assert "response.create" not in h.rt.sent_types()
