"""The phone line behind Twilio, as the server hears it back. Pure, causal, stateful.

Layer: emulator.

Per 20 ms inbound frame, `LineModel.process` does what a real call does, in order:

1. speaker: the audio Twilio *played* toward the caller during that frame (the playout
   model's record, never what the server sent), optionally through an overdriven
   loudspeaker (soft clipping, so the echo is nonlinear);
2. echo: that signal through the echo path: a bulk delay, a dispersive impulse response
   and an optional reflection, attenuated by the echo return loss; the path may change
   mid-call (the caller switches to speaker, a call is forwarded);
3. the caller's microphone signal plus the echo plus line hiss;
4. G.711 mu-law encoding, once, at the end (the only quantisation on the way).

The speaker signal is kept as float history across frames, so a frame's echo is a true
FIR over everything played before it and nothing after it (causal).

Where the numbers come from:

- Echo return loss (ERL): the attenuation from the signal sent toward the line to its
  echo coming back (ITU-T G.168, 3.12). G.168 measures it with a speech-like test
  signal; here it is the loss for the bot's own voice: the path's power gain weighted by
  the long-term spectrum of the prompts the backend plays (`mediasrv/prompts`) is
  exactly -ERL, so an echo at ERL 10 dB comes back 10 dB below the bot's active speech
  level whatever the response's ripple (a flat-band definition let a random 8 ms
  response return speech 1.4 dB down at a nominal 6 dB). G.168's tests run network echo
  cancellers against ERLs down to 6 dB (a poorly balanced 2-wire/4-wire hybrid); a
  mobile or cordless handset with its own acoustic echo control returns far less:
  3GPP TS 26.131/26.132 ask for a terminal coupling loss of at least 46 dB. 20 dB is a
  weak handset, 10 dB a bad line, 6 dB the worst hybrid G.168 plans for.
- Dispersion: the hybrid echo-path models of G.168 Annex D are 64-128 taps at 8 kHz
  (8-16 ms), most energy in the first few ms then a decaying ring. `tail_ms` sets the
  length of a seeded random response with an exponential envelope (40 dB down at its
  end) and no DC (hybrids are transformer coupled).
- Reflection: G.168 (2002) added a double-reflection echo-path model: a second, later,
  weaker echo from a second impedance mismatch.
- Path change: G.168 Test 5B measures cancellers across an echo-path change (e.g. call
  forwarding); `PathChange` switches the whole path at a stream time.
- Loudspeaker saturation: y = c tanh(x / c) with c at `speaker_clip_dbfs` (e.g. -9 dBFS).
- Hiss: idle channel noise; GSM allows up to -64 dBm0p on the send side (3GPP TS 03.50
  3.6.1), i.e. about -67 dBov; the default -70 dBov is a quiet line.

Delays: `delay_ms` is the bulk delay from Twilio's playout back to Twilio's inbound
stream (the PSTN/mobile round trip plus the echo source), so the server sees it plus the
server<->Twilio transit (see network.py) plus framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mediasrv.audio import SAMPLE_RATE, ULAW_DECODE, pcm16_to_ulaw, to_pcm16

Float = npt.NDArray[np.float64]

TAIL_DECAY_DB = 40.0  # the dispersive response's envelope at its last tap
PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"  # the bot's voice
_NFFT = 1024  # 7.8 Hz bins: finer than any response's ripple (>= 1 ms long -> 1 kHz)


@dataclass(frozen=True)
class Reflection:
    """A second copy of the echo, `delay_ms` after the first and `level_db` relative to it."""

    delay_ms: float = 60.0
    level_db: float = -6.0


@dataclass(frozen=True)
class EchoPath:
    """Speaker-to-microphone coupling: bulk delay, dispersion, reflection, total ERL."""

    delay_ms: float = 160.0
    erl_db: float = 10.0
    tail_ms: float = 0.0  # 0: a pure delay; else the length of the dispersive response
    reflection: Reflection | None = None
    seed: int = 7  # the dispersive response is random but fixed by this

    def describe(self) -> str:
        parts = [f"ERL {self.erl_db:g} dB", f"{self.delay_ms:g} ms"]
        if self.tail_ms:
            parts.append(f"{self.tail_ms:g} ms tail")
        if self.reflection is not None:
            r = self.reflection
            parts.append(f"reflection +{r.delay_ms:g} ms {r.level_db:g} dB")
        return ", ".join(parts)


@dataclass(frozen=True)
class PathChange:
    """From stream time `at_s` on, the echo follows `path` instead."""

    at_s: float
    path: EchoPath


@dataclass(frozen=True)
class Line:
    """Everything between Twilio and the caller's ear and mouth."""

    echo: EchoPath | None = None
    change: PathChange | None = None
    speaker_clip_dbfs: float | None = None  # soft clipping ceiling of the loudspeaker
    hiss_dbov: float | None = -70.0
    seed: int = 1  # the hiss

    def describe(self) -> str:
        parts = ["no echo" if self.echo is None else self.echo.describe()]
        if self.change is not None:
            parts.append(f"-> {self.change.path.describe()} at {self.change.at_s:g} s")
        if self.speaker_clip_dbfs is not None:
            parts.append(f"speaker clips at {self.speaker_clip_dbfs:g} dBFS")
        return "; ".join(parts)


# Named lines of issue 9 (see the module docstring for why these numbers).
HANDSET = EchoPath(delay_ms=120.0, erl_db=20.0, tail_ms=12.0)
BAD_LINE = EchoPath(delay_ms=160.0, erl_db=10.0, tail_ms=24.0, reflection=Reflection(60.0, -6.0))
SATURATION_DBFS = -9.0


def dispersive_response(tail_ms: float, seed: int) -> Float:
    """Return a hybrid-like response of `tail_ms`: seeded noise, decaying 40 dB, no DC."""
    n = int(round(tail_ms * SAMPLE_RATE / 1000.0))
    if n <= 1:
        return np.ones(1)
    k = np.arange(n, dtype=np.float64)
    env = np.exp(-k * (TAIL_DECAY_DB / 20.0 * np.log(10.0)) / (n - 1))
    h = np.random.default_rng(seed).standard_normal(n) * env
    return h - env * (h.sum() / env.sum())  # zero DC gain


@lru_cache(maxsize=1)
def speech_spectrum() -> Float:
    """Return the long-term power spectrum of the bot's prompts (`_NFFT` bins, sum 1)."""
    window = np.hanning(_NFFT)
    power = np.zeros(_NFFT // 2 + 1)
    for path in sorted(PROMPTS_DIR.glob("*.ulaw")):
        x = ULAW_DECODE[np.frombuffer(path.read_bytes(), np.uint8)] / 32768.0
        for lo in range(0, x.size - _NFFT + 1, _NFFT // 2):
            power += np.abs(np.fft.rfft(x[lo : lo + _NFFT] * window)) ** 2
    return np.asarray(power / power.sum())


def speech_gain_db(taps: Float) -> float:
    """Return the power gain of `taps` for the bot's voice (its long-term spectrum), dB."""
    response = np.abs(np.fft.rfft(taps, _NFFT)) ** 2
    return float(10.0 * np.log10(np.sum(response * speech_spectrum())))


def impulse_response(path: EchoPath) -> tuple[int, Float]:
    """Return (bulk delay in samples, taps after it); the bot's voice loses exactly the ERL."""
    main = dispersive_response(path.tail_ms, path.seed)
    taps = main
    if path.reflection is not None:
        r = path.reflection
        lag = int(round(r.delay_ms * SAMPLE_RATE / 1000.0))
        taps = np.zeros(lag + main.size)
        taps[: main.size] += main
        # a second mismatch rings differently: its own response, same length
        other = dispersive_response(path.tail_ms, path.seed + 1)
        taps[lag:] += other * 10.0 ** (r.level_db / 20.0)
    taps = taps * 10.0 ** ((-path.erl_db - speech_gain_db(taps)) / 20.0)
    return int(round(path.delay_ms * SAMPLE_RATE / 1000.0)), taps


def soft_clip(x: Float, ceiling_dbfs: float) -> Float:
    """Return x through a saturating loudspeaker: c tanh(x / c), c at `ceiling_dbfs`."""
    c = 10.0 ** (ceiling_dbfs / 20.0)
    return np.asarray(c * np.tanh(x / c))


class LineModel:
    """One call's line, frame by frame. Pure and causal: only past speaker audio echoes."""

    def __init__(self, line: Line, frame_samples: int = 160) -> None:
        self.line = line
        self._paths: list[tuple[int, int, Float]] = []  # (from sample, delay, taps)
        if line.echo is not None:
            self._paths.append((0, *impulse_response(line.echo)))
        if line.change is not None:
            at = int(round(line.change.at_s * SAMPLE_RATE))
            self._paths.append((at, *impulse_response(line.change.path)))
        self._reach = max((d + t.size for _, d, t in self._paths), default=0)
        self._history = np.zeros(self._reach + frame_samples)
        self._n = 0  # stream sample index of the next frame's first sample
        self._rng = np.random.default_rng(line.seed)

    def process(self, mic: Float, speaker: Float) -> bytes:
        """Return the mu-law the server receives for one frame: mic + echo + hiss.

        `mic` is the caller's side (voice, background) and `speaker` what Twilio played
        over the same samples, both floats with full scale 1.0 and the same length.
        """
        n = mic.size
        if self._paths:
            played = speaker
            if self.line.speaker_clip_dbfs is not None:
                played = soft_clip(speaker, self.line.speaker_clip_dbfs)
            self._push(played)
            out = mic + self._echo(n)
        else:
            out = np.array(mic, np.float64)
        if self.line.hiss_dbov is not None:
            out = out + self._rng.standard_normal(n) * 10.0 ** (self.line.hiss_dbov / 20.0)
        self._n += n
        return pcm16_to_ulaw(to_pcm16(out))

    def _push(self, x: Float) -> None:
        n = x.size
        if self._reach + n > self._history.size:  # a longer frame than planned: grow
            grown = np.zeros(self._reach + n)
            grown[-self._history.size :] = self._history
            self._history = grown
        self._history[:-n] = self._history[n:]
        self._history[-n:] = x

    def _echo(self, n: int) -> Float:
        """Echo over the last `n` pushed samples, from the path in force at each sample."""
        out = np.zeros(n)
        idx = self._n + np.arange(n)
        for i, (start, delay, taps) in enumerate(self._paths):
            end = self._paths[i + 1][0] if i + 1 < len(self._paths) else None
            live = (idx >= start) & (idx < end if end is not None else True)
            if not live.any():
                continue
            hi = self._history.size - delay  # one past the newest sample this path hears
            seg = self._history[hi - n - taps.size + 1 : hi]
            out[live] = np.convolve(seg, taps, mode="valid")[live]
        return out
