"""A caller who goes on after a turn ended at a pause: the continuation is the caller's
too, and is answered -- after the server's VAD's commit (server mode), and when it is one
short word that cut the AI off (local mode). Fake sockets, the real local VAD."""

from __future__ import annotations

from fakes import Harness, running_call
from test_call_endturn import SILENT, push, speech_frames

WORD_FRAMES = 20  # 400 ms of "Weasels...": barges in, then ends as 220 ms of speech (< 300)


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


def test_a_commit_as_the_caller_begins_is_not_answered_and_their_turn_is() -> None:
    # The held prefix that goes out with the caller's first frames carried our greeting's
    # echo and a pause in it: the server's VAD ended a "turn" on them the moment our VAD
    # recognised the caller (scripts/scenarios.py --issue9, server mode, handset line).
    # Answered, it played over the caller for 4 s.
    with running_call() as h:
        push(h, speech_frames())  # recognised; the clock has not moved on
        committed(h, "u1")
        h.sync()
        assert "response.create" not in h.rt.sent_types()
        h.clock.advance(0.02 * len(speech_frames()))
        talk(h, [SILENT] * 40)  # the caller stops
        committed(h, "u2")
        h.rt.expect("response.create")  # their own turn is answered


def test_a_commit_after_the_callers_utterance_was_answered_is_not_the_callers() -> None:
    with running_call() as h:
        talk(h, speech_frames() + [SILENT] * 40)  # the caller speaks and stops
        committed(h, "u1")
        h.rt.expect("response.create")
        h.respond("resp_1", "item_1", ms=100)
        committed(h, "u2")  # nothing of ours since: noise or echo
        h.sync()
        assert "response.create" not in h.rt.sent_types()


def test_a_short_utterance_that_cut_the_ai_off_is_answered_not_dropped() -> None:
    # The caller's last word after a turn end at a pause: long enough to barge in (100 ms
    # of caller speech), too short for a turn (300 ms). Dropped, it left the caller with
    # the AI cut off and nothing after it.
    with running_call(turn_detection="local", turn_model="off") as h:
        h.respond(ms=2000, done=False)  # the answer plays
        h.twilio.expect("media")
        talk(h, speech_frames()[:WORD_FRAMES] + [SILENT] * 40)
        h.twilio.expect("clear")
        h.rt.expect("response.cancel")
        h.rt.emit({"type": "response.done",
                   "response": {"id": "resp_1", "status": "cancelled"}})
        h.rt.expect("response.create")
