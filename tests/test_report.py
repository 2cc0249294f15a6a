"""The emulated call's summary: one line per turn, each AI response named by what it is.

Calls are built by hand (pure: no server), response by response, as the emulator would
have recorded them: heard audio, the server's marks, their echoes and the clears.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mediasrv.emulator.metrics import CallResult
from mediasrv.emulator.playout import ClearRecord, HeardSegment, MarkEcho, ServerMark
from mediasrv.emulator.report import ai_turns, format_summary
from mediasrv.emulator.script import SpeechSegment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from fake_call import QUIET_S, HangUpWhenAnswered, build_parser  # noqa: E402

Said = tuple[str, float, float]  # file, onset, end (call time: media_t0 is 0)


def call(responses: list[tuple[str, float, float, bool]], said: tuple[Said, ...] = (),
         hangup: tuple[str, float] = ("caller", 60.0)) -> CallResult:
    """Build a call: responses are (response id, start, heard s, cut off by a clear)."""
    heard: list[HeardSegment] = []
    marks: list[ServerMark] = []
    echoes: list[MarkEcho] = []
    clears: list[ClearRecord] = []
    offset = 0
    for rid, start, seconds, cut in responses:
        n = int(seconds * 8000)
        heard.append(HeardSegment(start, offset, b"\x10" * n))
        name = f"{rid}:item_{rid}:{int(seconds * 1000)}" + ("" if cut else ":end")
        marks.append(ServerMark(name, start, offset + n))
        offset += n
        end = start + seconds
        if cut:
            clears.append(ClearRecord(end, offset, 800, (name,)))
            echoes.append(MarkEcho(name, end, False))
        else:
            echoes.append(MarkEcho(name, end, True))
    speech = tuple(SpeechSegment(f, a, a, b) for f, a, b in said)
    return CallResult(
        call_sid="CA1", stream_sid="MZ1", stream_url="", ws_url="", custom_parameters={},
        connected=True, error=None, media_t0=0.0, ended_at=hangup[1], frames_sent=0,
        sent_ulaw=b"", timeline=(), media_arrivals=((0.1, 160),), heard=tuple(heard),
        server_marks=tuple(marks), echoes=tuple(echoes), clears=tuple(clears), speech=speech,
        hangup_by=hangup[0], hangup_at=hangup[1],
    )


def labels(r: CallResult) -> list[str]:
    return [t.label for t in ai_turns(r)]


def test_backend_responses_are_named_by_where_they_fall() -> None:
    r = call([("resp_a", 0.1, 5.0, False), ("resp_b", 9.0, 3.0, False),
              ("resp_c", 27.0, 1.2, False), ("resp_d", 43.0, 2.2, False)],
             said=(("hello.wav", 6.0, 8.0),), hangup=("server", 46.0))
    assert labels(r) == ["greeting", "answer", "still there?", "goodbye"]


def test_the_bridges_own_prompts_are_named_by_their_id_not_greeting() -> None:
    r = call([("local_one_moment_1", 2.0, 1.4, False), ("local_apology_2", 6.0, 5.1, False)],
             hangup=("server", 11.2))
    assert labels(r) == ["one moment", "apology"]
    assert [t.ending for t in ai_turns(r)] == ["complete", "complete"]


def test_summary_says_who_spoke_when_what_was_heard_the_barge_in_and_the_hang_up() -> None:
    r = call([("resp_a", 0.1, 5.0, False), ("resp_b", 9.0, 2.0, True),
              ("resp_c", 12.5, 3.0, False)],
             said=(("q.wav", 6.0, 8.0), ("stop.wav", 10.8, 11.9)), hangup=("caller", 17.0))
    lines = format_summary(r).splitlines()
    assert lines[0] == "call CA1: 17.0 s, first audio after 100 ms"
    assert lines[1:] == [
        "   0.10 s  AI      greeting, heard 5.0 s",
        "   6.00 s  caller  q.wav, 2.0 s of speech",
        "   9.00 s  AI      answer, heard 2.0 s, cut off by the caller",
        "  10.80 s  caller  stop.wav, 1.1 s of speech, barged in: AI stopped 200 ms later",
        "  12.50 s  AI      answer, heard 3.0 s",
        "  17.00 s  caller  hung up",
        "barge-ins: 1 (200 ms to silence, 0 ms heard after the clear); underruns: 0",
    ]


def test_the_caller_hangs_up_once_the_answer_has_been_heard() -> None:
    until = HangUpWhenAnswered(said_until=9.0)
    now = 8.0
    assert not until.step(now, media_received=100)  # the greeting, before the question
    now = 10.0
    assert not until.step(now, media_received=101)  # the answer starts
    now = 20.0
    assert not until.step(now, media_received=600)  # ... and plays on
    now += QUIET_S - 0.1
    assert not until.step(now, media_received=600)
    now += 0.2
    assert until.step(now, media_received=600)  # quiet for QUIET_S: heard


def test_help_shows_every_default() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "(default: http://127.0.0.1:5050)" in text
    assert "(default: until the last answer has been heard)" in text
    for action in build_parser()._actions:
        if action.help and action.dest != "help":
            assert "default:" in action.help, action.dest


def test_a_cut_answers_last_frames_after_its_last_mark_are_its_own_not_the_next_answers() -> None:
    # As mediasrv marks: after an item's first frame, then every 200 ms. resp_b is cut
    # 330 ms in (its mark at 220 ms was the last sent before the clear, the one at 420 ms
    # never went out); resp_c follows, its first mark after its first frame. What resp_b
    # played after its 220 ms mark is resp_b's: by the next mark alone it was resp_c's.
    heard = (HeardSegment(1.0, 0, b"\x10" * 2640),  # resp_b: 330 ms, then the clear
             HeardSegment(2.0, 3200, b"\x10" * 8000))  # resp_c: 1 s
    marks = (ServerMark("resp_b:item_b:20", 1.0, 160), ServerMark("resp_b:item_b:220", 1.2, 1760),
             ServerMark("resp_c:item_c:20", 2.0, 3360),
             ServerMark("resp_c:item_c:1000:end", 2.1, 11200))
    r = CallResult(
        call_sid="CA1", stream_sid="MZ1", stream_url="", ws_url="", custom_parameters={},
        connected=True, error=None, media_t0=0.0, ended_at=4.0, frames_sent=0, sent_ulaw=b"",
        timeline=(), media_arrivals=((0.1, 160),), heard=heard, server_marks=marks,
        echoes=(MarkEcho("resp_c:item_c:1000:end", 3.0, True),),
        clears=(ClearRecord(1.33, 3200, 560, ()),), speech=(), hangup_by="caller",
        hangup_at=4.0)
    assert [(t.response_id, t.heard_ms) for t in ai_turns(r)] == [("resp_b", 330.0),
                                                                  ("resp_c", 1000.0)]
