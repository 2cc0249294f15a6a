"""Phone echo signals for `scripts/aec_compare.py`, built like `scripts/bargein_eval.py`'s.

The bot's voice (the backend's prompts, ~23 s back to back) goes out frame by frame; its
echo comes back after a bulk delay through an `EchoPath`, attenuated by the echo return
loss (ERL), with -70 dBFS line hiss and the caller, mu-law encoded at the end. Callers
pass a 300-3400 Hz phone band first (their phone and the network do that; it also keeps
a canceller's high-pass filter from counting as damage to the caller).

Paths (`paths()`): a pure delay; the harness's short hybrid (`HYBRID`); a 30 ms
dispersive tail; that tail plus a reflection 40 ms later at -6 dB; the hybrid behind a
loudspeaker soft-clipped at -9 dBFS; and `CHANGE`, a path that moves half way through
the turn (160 -> 60 ms, 20 -> 10 dB).
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mediasrv.audio import ULAW_DECODE, pcm16_to_ulaw

Floats = npt.NDArray[np.float64]
# The study's signals, as bargein_eval.py built them when it was made (that harness now
# uses the emulator's line model, mediasrv/emulator/line.py): kept here so it stays as measured.
AUDIO = Path(__file__).resolve().parents[1] / "tests" / "audio"
PROMPTS = Path(__file__).resolve().parent.parent / "mediasrv" / "prompts"
HISS_DBFS = -70.0  # line hiss on every inbound frame: real lines are never digital zero
CALLERS = (
    "en_asterisk_allison_tt-weasels.wav",
    "en_asterisk_allison_hello-world.wav",
    "en_asterisk_allison_conf-onlyperson.wav",
    "en_alsa_front_center.wav",
    "en_espeak_caller.wav",
    "es_espeak_caller.wav",
)
# A dispersive echo path, gain 1 at its loudest frequency: a telephone hybrid rings for a
# few ms, it is not a pure delay (a canceller tuned only on pure delays would overfit).
_H = np.array([0.1, 0.7, 1.0, 0.35, -0.3, -0.35, -0.1, 0.12, 0.15, 0.05, -0.05, -0.04])
HYBRID = np.convolve(_H, np.exp(-np.arange(24) / 6.0))
HYBRID /= np.abs(np.fft.rfft(HYBRID, 256)).max()  # ERL: the loss at the loudest frequency


def read_wav(path: Path) -> Floats:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)


def hiss(n: int) -> Floats:
    return np.random.default_rng(11).standard_normal(n) * 32768.0 * 10 ** (HISS_DBFS / 20)

FRAME = 160
RATE = 8000
CHANGE_S = 11.5
DELAYS = (40, 120, 160, 300)
ERLS = (6.0, 10.0, 20.0)
REL_LEVELS = (0.0, -10.0, -20.0)  # caller gain relative to the recording's own level

def _tail30() -> Floats:
    """The hybrid's ring followed by a decaying reflection-rich tail to 30 ms."""
    n = np.arange(240)
    tail = np.random.default_rng(7).standard_normal(240) * 0.25 * np.exp(-n / 70.0)
    tail[: HYBRID.shape[0]] += HYBRID
    return tail / np.abs(np.fft.rfft(tail, 1024)).max()


def _with_reflection(h: Floats, after_ms: int, gain_db: float) -> Floats:
    out = np.zeros(h.shape[0] + after_ms * 8)
    out[: h.shape[0]] += h
    out[after_ms * 8 :] += h * 10 ** (gain_db / 20)
    return out / np.abs(np.fft.rfft(out, 2048)).max()


TAIL30 = _tail30()
TAIL30_REFL = _with_reflection(TAIL30, 40, -6.0)


@dataclass(frozen=True)
class EchoPath:
    kind: str
    delay_ms: int
    erl_db: float
    fir: Floats
    clip_dbfs: float | None = None
    change: tuple[float, int, float] | None = None  # at s: new delay ms, new ERL dB

    def echo(self, played: Floats, n: int) -> Floats:
        """Return the echo of `played` (int16 scale) as the inbound line carries it."""
        if self.clip_dbfs is not None:
            knee = 32768.0 * 10 ** (self.clip_dbfs / 20)
            played = knee * np.tanh(played / knee)
        out = _delayed(np.convolve(played, self.fir), self.delay_ms, self.erl_db, n)
        if self.change is not None:
            at, delay, erl = self.change
            after = _delayed(np.convolve(played, self.fir), delay, erl, n)
            out[int(at * RATE) :] = after[int(at * RATE) :]
        return out


def _delayed(x: Floats, delay_ms: int, erl_db: float, n: int) -> Floats:
    out = np.zeros(n)
    d = delay_ms * 8
    m = min(n - d, x.shape[0])
    out[d : d + m] = x[:m] * 10 ** (-erl_db / 20)
    return out


def paths() -> Iterator[EchoPath]:
    kinds: list[tuple[str, Floats, float | None]] = [
        ("pure", np.ones(1), None),
        ("hybrid", HYBRID, None),
        ("tail30", TAIL30, None),
        ("tail30+refl", TAIL30_REFL, None),
        ("clip -9 dBFS", HYBRID, -9.0),
    ]
    for kind, fir, clip in kinds:
        for delay in DELAYS:
            for erl in ERLS:
                yield EchoPath(kind, delay, erl, fir, clip)


CHANGE = EchoPath("change", 160, 20.0, HYBRID, change=(CHANGE_S, 60, 10.0))
HANDSET = EchoPath("handset", 120, 20.0, HYBRID)
BAD_LINE = EchoPath("bad line", 160, 10.0, TAIL30_REFL)
SPEAKER = EchoPath("speaker", 160, 6.0, HYBRID, clip_dbfs=-9.0)


def bot_turn() -> bytes:
    """Return the bot's ~23 s turn as whole mu-law frames: three prompts back to back."""
    prompt = read_wav(AUDIO / "speech/en_espeak_bot_prompt.wav").astype(np.int16)
    parts = [(PROMPTS / f"{n}.ulaw").read_bytes() for n in ("greeting", "long_answer")]
    data = b"".join([*parts, pcm16_to_ulaw(prompt)])
    return data[: len(data) // FRAME * FRAME]


def phone_band(x: Floats) -> Floats:
    """Band-limit a recording to 300-3400 Hz, as the caller's phone and network do."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.shape[0], 1 / RATE)
    spec *= np.clip((f - 250) / 100, 0, 1) * np.clip((3450 - f) / 100, 0, 1)
    return np.fft.irfft(spec, x.shape[0])


@dataclass
class Line:
    """One simulated call leg: what we sent per slot, and what came back."""

    sent: list[bytes]
    far: Floats  # decoded sent samples per slot, zeros once the bot stopped
    echo: Floats
    near: Floats  # caller (+ nothing else) as it left the caller's phone
    inbound: Floats  # decoded mu-law as it reached us

    @property
    def frames(self) -> int:
        return self.inbound.shape[0] // FRAME


def build(bot: bytes, path: EchoPath | None, near: Floats) -> Line:
    n = near.shape[0]
    sent = [bot[i : i + FRAME] for i in range(0, len(bot), FRAME)]
    far = np.zeros(n)
    played = ULAW_DECODE[np.frombuffer(bot, dtype=np.uint8)].astype(np.float64)[:n]
    far[: played.shape[0]] = played
    echo = np.zeros(n) if path is None else path.echo(played, n)
    line = np.clip(np.rint(near + echo + hiss(n)), -32768, 32767).astype(np.int16)
    inbound = ULAW_DECODE[np.frombuffer(pcm16_to_ulaw(line), dtype=np.uint8)]
    return Line(sent, far, echo, near, inbound.astype(np.float64))


def frame_power(x: Floats) -> Floats:
    return np.mean(x[: x.shape[0] // FRAME * FRAME].reshape(-1, FRAME) ** 2, axis=1)


def callers() -> dict[str, Floats]:
    return {name: phone_band(read_wav(AUDIO / "speech" / name)) for name in CALLERS}


@dataclass
class Placed:
    near: Floats
    spans: list[tuple[int, int]]  # caller samples [a, b) per caller placed


def place(parts: list[tuple[Floats, float]], gain_db: float, n: int) -> Placed:
    near = np.zeros(n)
    spans = []
    for pcm, at_s in parts:
        a = int(at_s * RATE)
        near[a : a + pcm.shape[0]] += pcm * 10 ** (gain_db / 20)
        spans.append((a, a + pcm.shape[0]))
    return Placed(near, spans)


def caller_frames(placed: Placed) -> Floats:
    """Return a mask of the frames where a caller is active (within 30 dB of its loudest)."""
    p = frame_power(placed.near)
    mask = np.zeros(p.shape[0], dtype=bool)
    for a, b in placed.spans:
        fa, fb = a // FRAME, b // FRAME
        mask[fa:fb] = p[fa:fb] > p[fa:fb].max() * 1e-3
    return mask


def onset_frame(near: Floats) -> int:
    """Return the caller's first frame above -45 dBFS peak (the harness's latency clock)."""
    peaks = np.abs(near[: near.shape[0] // FRAME * FRAME]).reshape(-1, FRAME).max(axis=1)
    return int(np.nonzero(peaks > 32768.0 * 10 ** (-45 / 20))[0][0])
