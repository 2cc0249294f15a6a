"""SHELL: write one call's stereo WAV and JSON transcript, on the recorder's own thread.

The rx thread (caller frames) and the tx thread (AI frames) hand frames over with a
non-blocking put, so a slow or full disk can never stall the call's audio; the thread
"mediasrv-rec-<sid>" places them (stereo.py) and appends to the WAV. Every disk error is
logged once with its reason and the recording stops (or is never started); nothing is
raised into the call. Files: RECORDINGS_DIR/<call sid>.wav and .json (a sid that is not
plain letters and digits, possible when requests are not signed, becomes a hashed name:
a file name never comes unchecked from a peer). The WAV header is rewritten after every
write (Python's `wave` does this), so a crash leaves a playable file.

Layer: call control (a thread shell: writes files off the call's threads).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import threading
import wave
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Self

from mediasrv.audio import SAMPLE_RATE

from .stereo import Channel, StereoAligner
from .transcript import Transcript

log = logging.getLogger(__name__)

# Frames of both channels: 50 per second each, so 500 ride out a 5 s disk stall; beyond
# that frames are dropped (counted), never blocking the call's threads.
QUEUE_FRAMES = 500
WRITE_BYTES = SAMPLE_RATE  # write about every 0.25 s of stereo PCM16 (4 bytes a sample)
SAFE_SID = re.compile(r"^[A-Za-z0-9]{1,64}$")

Opener = Callable[[Path, str], IO[bytes]]


def file_stem(call_sid: str) -> str:
    """Return the file name stem for a call: its sid, or a hash of anything unusual."""
    if SAFE_SID.match(call_sid):
        return call_sid
    return "call-" + hashlib.sha256(call_sid.encode("utf-8", "replace")).hexdigest()[:16]


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _open(path: Path, mode: str) -> IO[bytes]:
    return open(path, mode)  # noqa: SIM115 (the recorder closes it in _close)


class CallRecorder:
    """Records one call; see the module docstring. Feed from any thread, then finish()."""

    def __init__(self, directory: str | Path, call_sid: str,
                 opener: Opener = _open) -> None:
        self.stem = file_stem(call_sid)
        self._dir = Path(directory)
        self._sid = call_sid
        self._opener = opener  # tests inject a failing disk here
        self._q: queue.Queue[tuple[Channel, bytes | None, float] | None] = \
            queue.Queue(maxsize=QUEUE_FRAMES)
        self._aligner = StereoAligner()
        self._file: IO[bytes] | None = None
        self._wav: Any = None  # wave.Wave_write while writing
        self._thread: threading.Thread | None = None
        self._pending = bytearray()
        self.dropped_frames = 0
        self.failed: str | None = None  # why recording stopped, if it did

    @property
    def wav_path(self) -> Path:
        return self._dir / f"{self.stem}.wav"

    @property
    def json_path(self) -> Path:
        return self._dir / f"{self.stem}.json"

    def start(self) -> Self:
        """Open the WAV and start the writer thread (a disk error is logged, not raised)."""
        try:
            self._file = self._opener(self.wav_path, "wb")
            self._wav = wave.open(self._file, "wb")
            self._wav.setnchannels(2)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE)
        except OSError as exc:
            self._fail(f"cannot open {self.wav_path}: {_why(exc)}")
            self._close()
            return self
        # Daemon: a process exit must never wait for a slow disk; finish() joins it.
        self._thread = threading.Thread(target=self._run, name=f"mediasrv-rec-{self._sid}",
                                        daemon=True)
        self._thread.start()
        return self

    def caller_frame(self, ulaw: bytes, t: float) -> None:
        """Queue a frame as received from the caller at call time `t` (never blocks)."""
        self._put(("caller", ulaw, t))

    def ai_frame(self, ulaw: bytes, t: float) -> None:
        """Queue a frame of AI audio as sent at call time `t` (never blocks)."""
        self._put(("ai", ulaw, t))

    def ai_cut(self, t: float) -> None:
        """Silence AI audio from call time `t` on: a `clear` dropped it unplayed."""
        self._put(("ai", None, t))

    def finish(self, transcript: Transcript | None, timeout: float = 3.0) -> None:
        """Write what is left, close the WAV, write the transcript; never raises."""
        thread = self._thread
        if thread is not None:
            try:
                self._q.put(None, timeout=timeout)  # None ends the writer's queue
            except queue.Full:
                log.warning("[REC] %s: writer stuck, recording cut short", self.stem)
            thread.join(timeout)
            self._thread = None
        if self.dropped_frames:
            log.warning("[REC] %s: %d frames dropped (the disk was too slow)", self.stem,
                        self.dropped_frames)
        if transcript is not None:
            self._write_transcript(transcript)

    def _put(self, item: tuple[Channel, bytes | None, float]) -> None:
        if self.failed is not None:
            return
        try:
            self._q.put_nowait(item)
        except queue.Full:
            self.dropped_frames += 1

    def _run(self) -> None:
        try:
            while True:
                item = self._q.get()
                if item is None:
                    break
                channel, ulaw, t = item
                if ulaw is None:
                    self._aligner.cut(channel, t)
                else:
                    self._aligner.add(channel, ulaw, t)
                self._write(self._aligner.take())
            self._write(self._aligner.take(final=True), flush=True)
        except Exception:  # safety net: a recorder bug must not leave a thread behind
            log.exception("[REC] %s: unexpected error", self.stem)
        finally:
            self._close()

    def _write(self, pcm: bytes, flush: bool = False) -> None:
        self._pending += pcm
        if self.failed is not None or not self._pending or \
                (len(self._pending) < WRITE_BYTES and not flush):
            return
        try:
            self._wav.writeframes(bytes(self._pending))
        except OSError as exc:
            self._fail(f"cannot write {self.wav_path}: {_why(exc)}")
        self._pending.clear()

    def _close(self) -> None:
        wav, self._wav = self._wav, None
        try:
            if wav is not None:
                wav.close()  # always: wave's __del__ would otherwise retry on a dead file
        except (OSError, ValueError) as exc:
            self._fail(f"cannot finish {self.wav_path}: {_why(exc)}")
        finally:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
        late = self._aligner.late_frames
        if late:
            log.info("[REC] %s: %d late frames dropped", self.stem, late)

    def _write_transcript(self, transcript: Transcript) -> None:
        tmp = self.json_path.with_suffix(".json.tmp")
        try:
            with self._opener(tmp, "wb") as f:
                f.write(transcript.to_json().encode())
            os.replace(tmp, self.json_path)  # readers never see half a transcript
        except OSError as exc:
            log.error("[REC] %s: cannot write the transcript %s: %s", self.stem,
                      self.json_path, _why(exc))

    def _fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why
            log.error("[REC] %s: recording stopped: %s (the call goes on)", self.stem, why)
