"""RECORD_CALLS in a call: the stereo WAV and the JSON transcript, fed by the call's threads.

Layer: call.

The rx loop hands over each caller frame at the time it was captured (our clock, as the
echo guard sees it), the tx thread each AI frame at the time it plays at the phone, the
backend's reader the transcripts, the tx thread the cut-offs of a barge-in, the control
shell the tools and keys; all in seconds of the call clock (0 = the call object was
made). Frames go to the recorder's own thread without blocking (callctl/recorder.py);
transcript entries are kept under this object's lock, a leaf held for an append only.
With RECORD_CALLS off, `Recording.off()` accepts everything and keeps nothing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mediasrv.call.observer import CallLog
from mediasrv.callctl.recorder import CallRecorder
from mediasrv.callctl.transcript import Transcript


class Recording:
    """One call's recording and transcript; see the module docstring."""

    def __init__(self, directory: str, log: CallLog) -> None:
        self._dir = directory
        self._log = log
        self._lock = threading.Lock()  # guards _transcript (several threads add to it)
        self._transcript: Transcript | None = None
        self._recorder: CallRecorder | None = None

    @classmethod
    def off(cls, log: CallLog) -> Recording:
        return cls("", log)

    def start(self, call_sid: str) -> None:
        """Open the files of this call (a disk error is logged; the call goes on)."""
        if not self._dir:
            return
        with self._lock:
            self._transcript = Transcript(call_sid, time.time())  # a date, not an interval
        self._recorder = CallRecorder(Path(self._dir), call_sid).start()
        if self._recorder.failed is None:
            self._log.info("[REC] recording to %s", self._recorder.wav_path)

    def caller_frame(self, ulaw: bytes, t: float) -> None:
        if self._recorder is not None:
            self._recorder.caller_frame(ulaw, t)

    def ai_frame(self, ulaw: bytes, t: float) -> None:
        if self._recorder is not None:
            self._recorder.ai_frame(ulaw, t)

    def caller_said(self, text: str, t: float) -> None:
        with self._lock:
            if self._transcript is not None:
                self._transcript.caller(text, t)

    def ai_said(self, item_id: str, text: str, t: float) -> None:
        with self._lock:
            if self._transcript is not None:
                self._transcript.ai(item_id, text, t)

    def barge_in(self, t: float, cuts: list[tuple[str, int]]) -> None:
        """A barge-in's `clear` at `t` cut these items off after (item id, heard ms)."""
        if self._recorder is not None:  # what the pacer had sent ahead never played
            self._recorder.ai_cut(t)
        with self._lock:
            if self._transcript is None:
                return
            for item_id, heard_ms in cuts or [("", -1)]:
                self._transcript.barge_in(t, item_id, heard_ms if heard_ms >= 0 else None)
                if item_id:
                    self._transcript.ai_cut(item_id, heard_ms)

    def tool(self, t: float, name: str, arguments: str, result: str, outcome: str) -> None:
        with self._lock:
            if self._transcript is not None:
                self._transcript.tool_call(t, name, arguments, result, outcome)

    def keypad(self, t: float, digits: str) -> None:
        with self._lock:
            if self._transcript is not None:
                self._transcript.keypad(t, digits)

    def finish(self, reason: str, t: float) -> None:
        """Close the WAV and write the transcript (never raises)."""
        with self._lock:
            transcript = self._transcript
            if transcript is not None:
                transcript.end(t, reason)
        if self._recorder is not None:
            self._recorder.finish(transcript)
            self._log.info("[REC] call written to %s and %s", self._recorder.wav_path,
                           self._recorder.json_path)
