"""End-to-end call scenarios: what the caller says, on which line, over which network.

Layer: emulator.

A `Scenario` is a caller script (WAV clips placed in stream time over an optional
background), the `Line` it goes out on (echo, saturation, hiss: line.py), the network
between the server and Twilio (network.py), the server settings it needs (field names
of `Settings`, applied by mediasrv.testing.harness) and the
greeting the backend plays. The named scenarios are in catalogue.py; harness.py runs
them against the real server (tests/test_e2e_*.py, scripts/scenarios.py).

Stream time of the caller script starts when the emulated call sends `start`; the
greeting plays from about 0.1 s to GREETING_END_S.

Caller level: `caller_gain_db` scales the caller's voice (clips under speech/) relative
to the recording's natural level; the background is not scaled. A clip's onset (its
first speech frame, > -45 dBFS) is found at the natural level, so a quieter caller
starts talking at the same instant, not later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mediasrv.audio import FRAME_BYTES, SAMPLE_RATE
from mediasrv.emulator.levels import active_level_dbov
from mediasrv.emulator.line import EchoPath, Line
from mediasrv.emulator.network import NetworkTiming
from mediasrv.emulator.script import (
    FRAME_S,
    ONSET_DBFS,
    CallerScript,
    Float,
    SpeechSegment,
    frame_levels_dbfs,
    load_8k,
)

AUDIO_DIR = Path(
    # The recordings of ../shared/audio, copied with their MANIFEST (licences) into tests/.
    os.environ.get("MEDIASRV_AUDIO_DIR", Path(__file__).resolve().parents[2] / "tests" / "audio")
)
GREETING_END_S = 5.7  # greeting.ulaw is 5.49 s; it starts ~0.1 s in, plus the prebuffer
MODES = ("local", "server")
SPEECH_DIR = "speech/"  # clips from here are the caller's voice: caller_gain_db applies


@dataclass(frozen=True)
class Clip:
    """A piece of a WAV the caller plays: `length` s from `start`, placed at `at`.

    With `gap`, the clip is placed so its first loud frame comes `gap` s after the last
    loud frame of the clip before it (a pause inside one sentence); `at` is then ignored.
    """

    file: str  # relative to the audio folder
    at: float = 0.0
    start: float = 0.0
    length: float | None = None
    gain_db: float = 0.0
    gap: float | None = None

    def samples(self, audio_dir: Path, extra_db: float = 0.0) -> Float:
        x = _load(str(audio_dir / self.file))
        lo = int(round(self.start * SAMPLE_RATE))
        hi = x.size if self.length is None else lo + int(round(self.length * SAMPLE_RATE))
        return np.asarray(x[lo:hi] * 10.0 ** ((self.gain_db + extra_db) / 20.0))

    @property
    def is_voice(self) -> bool:
        return self.file.startswith(SPEECH_DIR)


@dataclass(frozen=True)
class Background:
    """A WAV looped under the whole call: at `gain_db`, or `snr_db` below the speech."""

    file: str
    gain_db: float = 0.0
    snr_db: float | None = None


@dataclass(frozen=True)
class Scenario:
    """One caller behaviour: what the caller's line carries and the settings it needs."""

    name: str
    about: str
    clips: tuple[Clip, ...] = ()
    duration: float = 12.0
    background: Background | None = None
    line: Line | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    modes: tuple[str, ...] = MODES  # the turn modes where the expected behaviour applies
    caller_gain_db: float = 0.0
    network: NetworkTiming = field(default_factory=NetworkTiming)
    greeting_prompts: tuple[str, ...] = ("greeting",)  # what the backend's greeting says
    kind: str = "other"  # which figure of the targets table it feeds (targets.py)
    group: str = ""  # its row within that figure (e.g. the line's name)
    keys: tuple[tuple[float, str], ...] = ()  # the caller's key presses (stream time, key)

    @property
    def echo(self) -> EchoPath | None:
        return None if self.line is None else self.line.echo

    @property
    def timeout_s(self) -> float:
        """Return how long a call of this scenario may take before it is hung up."""
        return self.duration + 10.0

    def caller_level_dbov(self, audio_dir: Path = AUDIO_DIR) -> float | None:
        """Return the P.56 active level of the caller's voice as placed (None: no voice)."""
        voice = [c for c in self.clips if c.is_voice]
        if not voice:
            return None
        key = tuple((c.file, c.start, c.length, c.gain_db) for c in voice)
        return round(_natural_level(str(audio_dir), key) + self.caller_gain_db, 1)

    def script(self, audio_dir: Path = AUDIO_DIR) -> CallerScript:
        """Render the caller's side (clips over the background) on the scenario's line."""
        n_frames = max(1, int(np.ceil(self.duration / FRAME_S - 1e-9)))
        total = n_frames * FRAME_BYTES
        mix = np.zeros(total, np.float64)
        segments: list[SpeechSegment] = []
        loud: list[Float] = []
        prev_end: float | None = None
        for clip in self.clips:
            gain = self.caller_gain_db if clip.is_voice else 0.0
            x = clip.samples(audio_dir, gain)
            frames = np.flatnonzero(frame_levels_dbfs(x) - gain > ONSET_DBFS)
            at = clip.at
            if clip.gap is not None and prev_end is not None and frames.size:
                at = max(0.0, prev_end + clip.gap - frames[0] * FRAME_S)
            lo = int(round(at * SAMPLE_RATE))
            hi = min(total, lo + x.size)
            if hi > lo:
                mix[lo:hi] += x[: hi - lo]
            name = Path(clip.file).name
            if frames.size:
                onset, end = at + frames[0] * FRAME_S, at + (frames[-1] + 1) * FRAME_S
                segments.append(SpeechSegment(name, at, round(onset, 6), round(end, 6)))
                loud.append(x[frames[0] * FRAME_BYTES : (frames[-1] + 1) * FRAME_BYTES])
                prev_end = end
            else:
                segments.append(SpeechSegment(name, at, None, None))
        if self.background is not None:
            mix += self._background(audio_dir, total, loud)
        return CallerScript.from_samples(mix, segments, self.line, self.keys)

    def _background(self, audio_dir: Path, total: int, loud: list[Float]) -> Float:
        bg = self.background
        assert bg is not None
        noise = _load(str(audio_dir / bg.file))
        gain = 10.0 ** (bg.gain_db / 20.0)
        if bg.snr_db is not None:
            speech = np.concatenate(loud) if loud else np.zeros(1)
            speech_rms = float(np.sqrt(np.mean(speech * speech)))
            noise_rms = float(np.sqrt(np.mean(noise * noise))) or 1.0
            gain = speech_rms / noise_rms / 10.0 ** (bg.snr_db / 20.0)
        return np.asarray(np.resize(noise, total) * gain)


@lru_cache(maxsize=32)
def _load(path: str) -> Float:
    return load_8k(path)


ClipKey = tuple[tuple[str, float, float | None, float], ...]


@lru_cache(maxsize=64)
def _natural_level(audio_dir: str, clips: ClipKey) -> float:
    parts = [Clip(f, 0.0, s, n, g).samples(Path(audio_dir)) for f, s, n, g in clips]
    return active_level_dbov(np.concatenate(parts))
