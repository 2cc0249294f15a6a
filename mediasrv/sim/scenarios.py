"""Reusable end-to-end call scenarios, the real server to run them on, and what they show.

A `Scenario` is a caller script (WAV clips placed in stream time over an optional
background, an optional echo path), the settings overrides it needs and its length. The
end-to-end tests (tests/test_e2e_*.py) and scripts/scenarios.py run the same catalogue.

    with LogCapture() as logs, LocalServer(scenario.settings("local")) as server:
        [outcome] = run_calls([(server.base_url, scenario)], logs)
        outcome.purposes      # ["greeting", "answer"]: responses created, by purpose
        outcome.summary       # the emulator's CallResult.summary()

Stream time of the caller script starts when the emulated call sends `start`; the
greeting plays from about 0.1 s to GREETING_END_S. Outcomes carry the bridge's log lines
for their call (records stamped with the call sid, plus the unstamped lines its rx
thread wrote, such as the turn policy's END OF UTTERANCE) with their call times.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from werkzeug.serving import BaseWSGIServer, make_server

from mediasrv.app import create_app
from mediasrv.audio import FRAME_BYTES, SAMPLE_RATE, pcm16_to_ulaw, to_pcm16
from mediasrv.settings import Settings, load_settings
from mediasrv.sim.call import CallOptions, EmulatedCall
from mediasrv.sim.metrics import CallResult
from mediasrv.sim.script import (
    FRAME_S,
    ONSET_DBFS,
    CallerScript,
    EchoPath,
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
LINE_NOISE = "silence/white_noise_peak-70dBFS_5s.wav"
MODES = ("local", "server")
END_WAIT_S = 5.0  # after the emulated call ends, how long the server side may take to end


# --- caller scripts ------------------------------------------------------------------


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

    def samples(self, audio_dir: Path) -> Float:
        x = _load(str(audio_dir / self.file))
        lo = int(round(self.start * SAMPLE_RATE))
        hi = x.size if self.length is None else lo + int(round(self.length * SAMPLE_RATE))
        return np.asarray(x[lo:hi] * 10.0 ** (self.gain_db / 20.0))


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
    echo: EchoPath | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    modes: tuple[str, ...] = MODES  # the turn modes where the expected behaviour applies

    @property
    def timeout_s(self) -> float:
        """Return how long a call of this scenario may take before it is hung up."""
        return self.duration + 10.0

    def settings(self, mode: str, env: Mapping[str, str] | None = None) -> Settings:
        """Return the server settings for this scenario in turn mode `mode`."""
        return load_settings({} if env is None else env, turn_detection=mode, **self.overrides)

    def script(self, audio_dir: Path = AUDIO_DIR) -> CallerScript:
        """Render the caller's line to mu-law (clips over the background)."""
        n_frames = max(1, int(np.ceil(self.duration / FRAME_S - 1e-9)))
        total = n_frames * FRAME_BYTES
        mix = np.zeros(total, np.float64)
        segments: list[SpeechSegment] = []
        loud: list[Float] = []
        prev_end: float | None = None
        for clip in self.clips:
            x = clip.samples(audio_dir)
            levels = frame_levels_dbfs(x)
            frames = np.flatnonzero(levels > ONSET_DBFS)
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
        return CallerScript(pcm16_to_ulaw(to_pcm16(mix)), segments, self.echo)

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


# --- the catalogue -----------------------------------------------------------------

HELLO = "speech/en_asterisk_allison_hello-world.wav"  # 1.4 s
WEASELS = "speech/en_asterisk_allison_tt-weasels.wav"  # 3.0 s
ONLY_PERSON = "speech/en_asterisk_allison_conf-onlyperson.wav"  # 3.2 s
CALLER = "speech/en_espeak_caller.wav"  # 3.2 s
ECHO_DELAY_MS = 160.0
ECHO_ERLS = (6.0, 10.0, 20.0)


def silent_caller() -> Scenario:
    return Scenario(
        "silent_caller",
        "line noise only after the greeting: ask once, say goodbye, hang up",
        background=Background(LINE_NOISE),
        duration=20.0,
        overrides={"silence_timeout_s": 2.0},
    )


def answer_after_greeting() -> Scenario:
    return Scenario(
        "answer_after_greeting",
        "one sentence 1.3 s after the greeting ended: one answer, no clear",
        clips=(Clip(CALLER, 7.0),),
        duration=13.0,
    )


def talk_over_answer() -> Scenario:
    # The answer (~12 s of audio, streamed at 5x) is done at the backend ~2.5 s after it
    # starts; the caller talks over it ~4 s in: a barge-in after response.done. The echo
    # path makes the caller's speech fall inside the echo guard's window.
    return Scenario(
        "talk_over_answer",
        "short sentence, then talk over the answer ~4 s in (10 dB ERL echo): "
        "clear, truncate at heard ms, one new answer",
        clips=(Clip(HELLO, 6.5), Clip(WEASELS, 12.5)),
        echo=EchoPath(ECHO_DELAY_MS, 10.0),
        duration=17.5,
    )


def barge_in_greeting() -> Scenario:
    return Scenario(
        "barge_in_greeting",
        "talk 0.9 s into the greeting: clear, truncate, one answer",
        clips=(Clip(WEASELS, 1.0),),
        duration=7.5,
    )


def quiet_room(duration: float = 30.0) -> Scenario:
    files = (
        "silence/asterisk_silence_5.wav",
        "silence/pink_noise_peak-55dBFS_5s.wav",
        "silence/white_noise_peak-70dBFS_5s.wav",
        "silence/digital_silence_5s.wav",
    )
    n = int(np.ceil(duration / 5.0))
    return Scenario(
        "quiet_room",
        f"{duration:.0f} s of near silence and low line noise: no response after the greeting",
        clips=tuple(Clip(files[i % len(files)], 5.0 * i) for i in range(n)),
        duration=duration,
        overrides={"silence_timeout_s": 120.0},
    )


def echo_only(erl_db: float) -> Scenario:
    # A 1 s silence timeout makes the AI talk three times (greeting, "are you still
    # there?", goodbye), so three echoes and their tails reach the echo guard.
    return Scenario(
        f"echo_only_{erl_db:g}dB",
        f"only the AI's own audio fed back ({erl_db:g} dB ERL, {ECHO_DELAY_MS:g} ms): "
        "no barge-in, no answer",
        background=Background(LINE_NOISE),
        echo=EchoPath(ECHO_DELAY_MS, erl_db),
        duration=16.0,
        overrides={"silence_timeout_s": 1.0},
    )


def music_on_hold() -> Scenario:
    return Scenario(
        "music_on_hold",
        "two music-on-hold pieces from the start (over the greeting): no response",
        clips=(
            Clip("music/moh_manolo_camp-morning_coffee_0-30s.wav", 0.5, length=6.5),
            Clip("music/moh_macroform-cold_day_0-30s.wav", 7.0, start=5.0, length=6.5),
        ),
        duration=14.0,
        overrides={"silence_timeout_s": 120.0},
    )


def tones() -> Scenario:
    return Scenario(
        "tones",
        "ring-back, DTMF, busy tone and a beep: no response",
        clips=(
            Clip("tones/us_ringback_6s.wav", 0.5),
            Clip("tones/dtmf_123hash.wav", 6.8),
            Clip("tones/freedesktop_busy.wav", 8.0),
            Clip("tones/dtmf_123hash.wav", 11.2),
            Clip("tones/asterisk_beep.wav", 12.5),
        ),
        duration=14.0,
        overrides={"silence_timeout_s": 120.0},
    )


def noise_bursts() -> Scenario:
    bursts = (
        ("noise/white_noise_peak-30dBFS_10s.wav", 20.0),
        ("noise/pink_noise_peak-30dBFS_10s.wav", 20.0),
        ("noise/brown_noise_peak-25dBFS_10s.wav", 15.0),
    )
    clips = [
        Clip(bursts[i % 3][0], 1.0 + 1.5 * i, start=0.5 * i, length=0.6, gain_db=bursts[i % 3][1])
        for i in range(7)
    ]
    clips.append(Clip("noise/freedesktop_alarm-clock.wav", 11.0, length=3.0))
    return Scenario(
        "noise_bursts",
        "loud white/pink/brown noise bursts (0.6 s, from the greeting on) and an alarm "
        "clock: no response",
        clips=tuple(clips),
        duration=14.5,
        overrides={"silence_timeout_s": 120.0},
    )


def speech_in_noise() -> Scenario:
    # Local mode only: in server mode the local backend's energy VAD decides, and steady
    # noise 15 dB over its starting floor holds it in "speaking" for good (the floor
    # adapts only outside speech), so it never commits a turn (reported, not ours).
    return Scenario(
        "speech_in_noise",
        "one sentence in pink noise at 10 dB SNR (noise from the start): one answer",
        clips=(Clip(CALLER, 7.0),),
        background=Background("noise/pink_noise_peak-30dBFS_10s.wav", snr_db=10.0),
        duration=13.0,
        overrides={"silence_timeout_s": 120.0},
        modes=("local",),
    )


def paused_sentence(gap_s: float = 0.3) -> Scenario:
    return Scenario(
        "paused_sentence",
        f"one sentence in three parts with {gap_s * 1000:.0f} ms pauses (< END_SILENCE_MS): "
        "one turn, one answer",
        clips=(Clip(HELLO, 6.5), Clip(WEASELS, gap=gap_s), Clip(ONLY_PERSON, gap=gap_s)),
        duration=16.0,
        overrides={"silence_timeout_s": 120.0},
    )


def repeated_barge_in(n: int = 4) -> Scenario:
    # Each barge-in utterance (3 s) ends its answer's turn; the next answer starts about
    # 0.6 s after it and the next utterance lands ~3.9 s into it, after response.done.
    said = [Clip(HELLO, 6.5)]
    said += [Clip((WEASELS, ONLY_PERSON)[i % 2], 12.5 + 7.5 * i) for i in range(n)]
    return Scenario(
        "repeated_barge_in",
        f"{n} barge-ins on successive answers (no echo): barge-in latency samples",
        clips=tuple(said),
        duration=12.5 + 7.5 * n,
        overrides={"silence_timeout_s": 120.0},
    )


def catalogue() -> dict[str, Scenario]:
    """Return every named scenario."""
    items = [
        silent_caller(),
        answer_after_greeting(),
        talk_over_answer(),
        barge_in_greeting(),
        quiet_room(),
        *(echo_only(erl) for erl in ECHO_ERLS),
        music_on_hold(),
        tones(),
        noise_bursts(),
        speech_in_noise(),
        paused_sentence(),
        repeated_barge_in(),
    ]
    return {s.name: s for s in items}


# --- the server --------------------------------------------------------------------


class LocalServer:
    """The real WSGI app (create_app) on a loopback port, served by werkzeug threads."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.app = create_app(settings)
        self._server: BaseWSGIServer = make_server(host, 0, self.app, threaded=True)
        # Daemon: an interrupted run must not hang on it; stop() shuts it down and joins.
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mediasrv-e2e-http", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests and join the serving thread (calls end on their own)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- log capture -------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    mono: float  # time.monotonic() when logged: the emulator's clock
    thread: str
    call_sid: str | None
    logger: str
    message: str


class LogCapture(logging.Handler):
    """Keep the `mediasrv` loggers' INFO lines; wait for a call's end line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._cond = threading.Condition()  # guards _lines; notified on every line
        self._lines: list[LogLine] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = LogLine(
            time.monotonic(),
            record.threadName or "",
            getattr(record, "call_sid", None),
            record.name,
            record.getMessage(),
        )
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def __enter__(self) -> LogCapture:
        logging.getLogger("mediasrv").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("mediasrv").removeHandler(self)

    def for_call(self, call_sid: str) -> list[LogLine]:
        """Return the call's lines: stamped with its sid, or unstamped from its threads."""
        with self._cond:
            lines = list(self._lines)
        threads = {x.thread for x in lines if x.call_sid == call_sid}
        return [
            x for x in lines
            if x.call_sid == call_sid or (x.call_sid is None and x.thread in threads)
        ]

    def wait_call_ended(self, call_sid: str, timeout: float) -> bool:
        """Wait until the server logged the end of the call; False on timeout."""
        def ended() -> bool:
            return any(
                x.call_sid == call_sid and x.message.startswith(f"[{call_sid}] call ended:")
                for x in self._lines
            )

        with self._cond:
            return self._cond.wait_for(ended, timeout)


# --- running calls and reading outcomes ---------------------------------------------


_CREATED = re.compile(r"response (\S+) created \((\S+)\)")
_DONE = re.compile(r"response (\S+) done: (\S+)")
_BARGE = re.compile(r"\[BARGE-IN\] trigger=(\S+) .*response=(\S+) .*cancel=(\S+)")
_ENDED = re.compile(r"call ended: reason=(.*) duration=")
_CALLER_SAID = re.compile(r"\[TRANSCRIPT\] caller: \(([\d.]+) s of caller audio\)")


@dataclass(frozen=True)
class Timed:
    t: float  # call time (s): the emulator's clock, 0 at the start of the call
    what: str
    detail: str = ""


@dataclass(frozen=True)
class Outcome:
    """One finished scenario call: the emulator's record and the server's log lines."""

    scenario: Scenario
    mode: str
    result: CallResult
    t0: float  # monotonic time of call time 0
    lines: tuple[LogLine, ...]
    server_ended: bool  # the server logged the call's end
    truncations: tuple[tuple[str, int, int], ...]  # backend's, for this call's items

    @property
    def label(self) -> str:
        return f"{self.scenario.name}[{self.mode}]"

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.summary()

    def _timed(self, pattern: re.Pattern[str]) -> list[tuple[float, re.Match[str]]]:
        out = []
        for line in self.lines:
            m = pattern.search(line.message)
            if m:
                out.append((line.mono - self.t0, m))
        return out

    def created(self) -> list[Timed]:
        """Return the responses the bridge saw created: (call time, id, purpose)."""
        return [Timed(t, m[2], m[1]) for t, m in self._timed(_CREATED)]

    @property
    def purposes(self) -> list[str]:
        return [c.what for c in self.created()]

    def done(self) -> list[Timed]:
        return [Timed(t, m[2], m[1]) for t, m in self._timed(_DONE)]

    def barge_ins(self) -> list[Timed]:
        """Return barge-ins: (call time, trigger, "response=<id> cancel=<bool>")."""
        return [Timed(t, m[1], f"response={m[2]} cancel={m[3]}") for t, m in self._timed(_BARGE)]

    def count(self, text: str) -> int:
        """Return how many of the call's lines contain `text`."""
        return sum(text in line.message for line in self.lines)

    @property
    def end_reason(self) -> str | None:
        found = self._timed(_ENDED)
        return found[-1][1][1] if found else None

    def caller_said_s(self) -> list[float]:
        """Return the lengths the backend reported for the caller's committed turns."""
        return [float(m[1]) for _, m in self._timed(_CALLER_SAID)]

    def speech_times(self) -> list[tuple[float, float]]:
        """Return (onset, end) of each placed clip with sound, in call time."""
        r = self.result
        return [
            (r.media_t0 + s.onset, r.media_t0 + s.end)
            for s in r.speech
            if s.onset is not None and s.end is not None
        ]

    def describe(self) -> str:
        """Return a compact account of the call for assertion messages."""
        s = self.summary
        keep = ("Barge", "BARGE", "created", "done:", "TRIGGER", "UTTERANCE", "SKIPPED",
                "SILENCE", "call ended", "PLAYED", "TRANSCRIPT] caller")
        lines = [
            f"  {line.mono - self.t0:7.3f} {line.message}"
            for line in self.lines
            if any(k in line.message for k in keep)
        ]
        speech = ", ".join(f"{a:.2f}-{b:.2f}" for a, b in self.speech_times())
        return "\n".join([
            f"{self.label}: responses={s['responses']} clears={s['clears']} "
            f"barge_in_latency_ms={s['barge_in_latency_ms']} hangup={s['hangup']} "
            f"caller sound at {speech or '-'} emulator={s['emulator']}",
            *lines,
        ])


def run_calls(
    specs: Sequence[tuple[str, Scenario, str]],
    logs: LogCapture | None = None,
    audio_dir: Path = AUDIO_DIR,
    backend: Any = None,
) -> list[Outcome]:
    """Place one emulated call per (base_url, scenario, mode) at once; wait for all.

    `backend` (a LocalBackend) lets outcomes carry the backend's truncations.
    """
    calls = [
        EmulatedCall(url, scenario.script(audio_dir), CallOptions(close_grace=1.0))
        for url, scenario, _ in specs
    ]
    for call in calls:
        call.start()
    for call, (_, scenario, _) in zip(calls, specs, strict=True):
        if not call.wait(scenario.timeout_s):
            call.hangup()
            call.wait(5.0)
    outcomes = []
    for call, (_, scenario, mode) in zip(calls, specs, strict=True):
        ended = logs.wait_call_ended(call.call_sid, END_WAIT_S) if logs is not None else False
        result = call.result()
        lines = tuple(logs.for_call(call.call_sid)) if logs is not None else ()
        items = set(result.summary()["heard_ms_per_item"])
        cuts: Iterable[tuple[str, int, int]] = ()
        if backend is not None:
            cuts = (tuple(c) for c in backend.stats()["truncations"] if c[0] in items)
        outcomes.append(Outcome(scenario, mode, result, call.t0, lines, ended, tuple(cuts)))
    return outcomes


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the q-th percentile (linear), None for no values."""
    if not values:
        return None
    return round(float(np.percentile(np.asarray(values, np.float64), q)), 1)
