"""Call recording: the stereo aligner and the transcript (pure), the recorder shell (disk)."""

from __future__ import annotations

import io
import json
import logging
import wave
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from mediasrv.audio import ULAW_SILENCE, pcm16_to_ulaw
from mediasrv.callctl.recorder import CallRecorder, file_stem
from mediasrv.callctl.stereo import StereoAligner
from mediasrv.callctl.transcript import MAX_ENTRIES, Transcript

SID = "CA" + "0123456789abcdef" * 2


def tone(level: int, n: int = 160) -> bytes:
    """A frame whose every sample decodes to about `level` (so channels can be told apart)."""
    return pcm16_to_ulaw(np.full(n, level, dtype=np.int16))


def stereo(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)


# -- stereo aligner ------------------------------------------------------------------------


def test_each_frame_lands_at_its_call_time_with_silence_between() -> None:
    aligner = StereoAligner(hold_s=0.0)
    aligner.add("caller", tone(1000), t=0.0)
    aligner.add("ai", tone(-2000), t=0.5)
    out = stereo(aligner.take(final=True))
    assert out.shape == (4000 + 160, 2)
    assert abs(out[0, 0] - 1000) < 40 and out[0, 1] == 0
    assert (out[160:4000] == 0).all()
    assert abs(out[4000, 1] + 2000) < 80 and out[4000, 0] == 0


def test_a_frame_slightly_early_or_late_follows_the_previous_one_directly() -> None:
    aligner = StereoAligner(hold_s=0.0)
    aligner.add("caller", tone(1000), t=0.0)
    aligner.add("caller", tone(1000), t=0.019)  # 8 samples of overlap: jitter
    aligner.add("caller", tone(1000), t=0.0405)  # 4 samples late: snapped
    out = stereo(aligner.take(final=True))
    assert out.shape[0] == 480 and (np.abs(out[:, 0] - 1000) < 40).all()


def test_output_is_held_back_until_the_other_channel_can_no_longer_be_behind() -> None:
    aligner = StereoAligner(hold_s=1.0)
    aligner.add("caller", tone(1000, 8000 * 2), t=0.0)  # two seconds
    assert stereo(aligner.take()).shape[0] == 8000  # up to 1 s behind the newest
    aligner.add("ai", tone(500), t=1.5)  # in the held second: still placed
    out = stereo(aligner.take(final=True))  # from 1.0 s on
    assert abs(out[4000, 1] - 500) < 40 and aligner.late_frames == 0


def test_a_frame_for_time_already_written_is_dropped_and_counted() -> None:
    aligner = StereoAligner(hold_s=0.0)
    aligner.add("caller", tone(1000, 8000), t=0.0)
    aligner.take()
    aligner.add("ai", tone(500), t=0.2)
    assert aligner.late_frames == 1
    assert aligner.take(final=True) == b""


def test_ai_audio_sent_ahead_of_a_clear_is_silenced_from_the_clear_on() -> None:
    aligner = StereoAligner(hold_s=0.0)
    for i in range(8):  # 160 ms sent ahead, timed by when it would play
        aligner.add("ai", tone(-2000), t=1.0 + i * 0.02)
    aligner.cut("ai", 1.05)  # the clear: Twilio dropped the rest
    aligner.add("ai", tone(700), t=1.2)  # the next answer, at its own time
    aligner.add("caller", tone(1000), t=1.3)
    out = stereo(aligner.take(final=True))
    ai = out[8000:, 1]
    assert (np.abs(ai[:400] + 2000) < 80).all()  # 50 ms played
    assert (ai[400:1600] == 0).all()  # never heard
    assert (np.abs(ai[1600:1760] - 700) < 40).all()


def test_a_cut_after_everything_placed_changes_nothing() -> None:
    aligner = StereoAligner(hold_s=0.0)
    aligner.add("ai", tone(-2000), t=0.0)
    aligner.cut("ai", 0.5)
    aligner.add("ai", tone(-2000), t=0.02)
    out = stereo(aligner.take(final=True))
    assert out.shape[0] == 320 and (np.abs(out[:, 1] + 2000) < 80).all()


# -- transcript ----------------------------------------------------------------------------


def test_the_transcript_has_turns_cut_off_marks_tool_calls_barge_ins_and_end() -> None:
    tr = Transcript(SID, started_at_unix=1_700_000_000.0)
    tr.ai("item_1", "Hello!", 0.15)
    tr.caller("I want to check my order", 3.2)
    tr.ai("item_2", "Sure, what is the", 5.0)
    tr.ai("item_2", "Sure, what is the order number you", 5.0)  # the final text
    tr.barge_in(6.1, "item_2", heard_ms=1100)
    tr.ai_cut("item_2", 1100)
    tr.tool_call(8.0, "look_up_order", '{"order": 42}', '{"status": "shipped"}', "ok")
    tr.keypad(7.0, "42#")
    tr.end(20.5, "end_call (done): goodbye heard")
    doc = json.loads(tr.to_json())
    assert doc["call_sid"] == SID and doc["started_at"] == "2023-11-14T22:13:20+00:00"
    assert (doc["duration_s"], doc["end_reason"]) == (20.5, "end_call (done): goodbye heard")
    assert [t["who"] for t in doc["turns"]] == ["ai", "caller", "ai"]
    assert doc["turns"][2] == {"t": 5.0, "who": "ai", "item_id": "item_2", "cut_off": True,
                               "heard_ms": 1100,
                               "text": "Sure, what is the order number you"}
    assert [e["kind"] for e in doc["events"]] == ["barge_in", "tool", "keypad"]


def test_the_transcript_stops_growing_at_its_bound_and_counts_what_it_dropped() -> None:
    tr = Transcript(SID, 0.0)
    for i in range(MAX_ENTRIES + 3):
        tr.caller("x", float(i))
    doc = tr.to_dict()
    assert len(doc["turns"]) == MAX_ENTRIES and doc["dropped_entries"] == 3


# -- recorder (thread + disk) --------------------------------------------------------------


def test_a_recording_writes_a_stereo_wav_and_the_transcript_by_call_sid(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path, SID).start()
    for i in range(50):  # one second of each
        rec.caller_frame(tone(1000), i * 0.02)
        rec.ai_frame(tone(-1000), i * 0.02)
    tr = Transcript(SID, 0.0)
    tr.end(1.0, "caller hung up")
    rec.finish(tr)
    with wave.open(str(tmp_path / f"{SID}.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        out = stereo(wav.readframes(wav.getnframes()))
    assert out.shape == (8000, 2)
    assert (out[:, 0] > 900).all() and (out[:, 1] < -900).all()
    doc = json.loads((tmp_path / f"{SID}.json").read_text())
    assert doc["end_reason"] == "caller hung up"


def test_a_recording_silences_the_ai_from_a_clear_on(tmp_path: Path) -> None:
    rec = CallRecorder(tmp_path, SID).start()
    for i in range(20):
        rec.ai_frame(tone(-1000), i * 0.02)
    rec.ai_cut(0.2)
    rec.caller_frame(tone(1000), 0.5)
    rec.finish(None)
    with wave.open(str(tmp_path / f"{SID}.wav"), "rb") as wav:
        out = stereo(wav.readframes(wav.getnframes()))
    assert (out[:1600, 1] < -900).all() and (out[1600:, 1] == 0).all()


def test_a_call_sid_that_is_not_plain_becomes_a_hashed_file_name() -> None:
    assert file_stem(SID) == SID
    stem = file_stem("../../etc/passwd")
    assert stem.startswith("call-") and "/" not in stem and "." not in stem


def test_a_directory_that_cannot_be_written_is_logged_and_never_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = CallRecorder(tmp_path / "missing", SID)
    with caplog.at_level(logging.ERROR):
        rec.start()
        rec.caller_frame(tone(1000), 0.0)
        rec.finish(Transcript(SID, 0.0))
    assert rec.failed is not None and "cannot open" in rec.failed
    assert "recording stopped" in caplog.text and "the call goes on" in caplog.text
    assert "cannot write the transcript" in caplog.text


class FullDisk(io.BytesIO):
    """A file that takes the WAV header, then fails like a full disk."""

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() >= 44:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_a_full_disk_stops_the_recording_with_one_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def opener(path: Path, mode: str) -> IO[bytes]:
        return FullDisk() if path.suffix == ".wav" else open(path, mode)

    rec = CallRecorder(tmp_path, SID, opener=opener).start()
    with caplog.at_level(logging.ERROR):
        for i in range(100):
            rec.caller_frame(bytes([ULAW_SILENCE]) * 160, i * 0.02)
        rec.finish(Transcript(SID, 0.0))
    assert rec.failed is not None and "No space left" in rec.failed
    assert caplog.text.count("recording stopped") == 1
    assert (tmp_path / f"{SID}.json").exists()  # the transcript still went to its file
