"""A caller's breath before their first word, over the bot's echo: the clips and conditions.

Layer: testing. The held-out check (scripts/holdout_eval.py) found barge-ins up to 300 ms
before a reader's first word, on their breath plus the faint leftover of our echo. Its
material must stay held out, so the condition is built here on the tuned harness's own
callers, lines and prompts (`mediasrv.testing.callers`: `caller_runs`, the tally and the
onset rule): a breath is laid before each caller's first speech frame, ending `gap` ms
before it (`with_breath`); scripts/bargein_eval.py's `breath` section runs and prints it.

Breaths (tests/audio/breath, MANIFEST.md): three real ones cut from pocketsphinx's
`cards` test recordings (one speaker, a laptop microphone: the audible inhalations
before a word, 80-180 ms, spectrally flat, centred at 1.2-2.5 kHz, aperiodic), each at
its level under its own recording's P.56 active level (17-21 dB); and, as a second
choice, a synthetic one: 400 ms of noise band-passed to 0.5-3 kHz under a breath's
envelope (rise 150 ms, fall 250 ms), 19 dB under the caller's active level.

An early barge-in here is a false one: the breath alone is not the caller's turn.

Always on the quick grid of offsets (bargein_eval's `--quick`): 400 runs a cell, the
phases vary through the breaths and gaps.

    PYTHONPATH=. .venv/bin/python scripts/bargein_eval.py --only breath
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mediasrv.emulator.levels import active_level_dbov
from mediasrv.emulator.script import load_8k
from mediasrv.testing.callers import AUDIO, speech_frames
from mediasrv.testing.frames import FRAME, Floats

BREATH_DIR = AUDIO / "breath"
# (file, dB under its speaker's active level): measured on the whole `cards` recording.
REAL_BREATHS = (("en_pocketsphinx_cards_003_breath.wav", 16.9),
                ("en_pocketsphinx_cards_004_breath.wav", 20.4),
                ("en_pocketsphinx_cards_005_breath.wav", 21.1))
SYNTH_UNDER_DB = 19.0  # the middle of the real ones'
BREATH_GAPS_MS = (0, 100)  # the breath's end -> the caller's first speech frame
BREATH_GAINS_DB = (0.0, -10.0, -20.0)
BREATH_LINES = ("handset", "bad line")


@dataclass(frozen=True)
class Breath:
    name: str
    samples: Floats  # at unit level: scaled to `under_db` below the caller's active level
    under_db: float


def synthetic_breath(seconds: float = 0.4, seed: int = 5) -> Floats:
    """Return a breath-like noise at unit RMS: 0.5-3 kHz, rising 150 ms, falling the rest."""
    n = int(seconds * 8000)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / 8000)
    spectrum[(freqs < 500) | (freqs > 3000)] = 0.0
    noise = np.fft.irfft(spectrum, n)
    rise = int(0.15 * 8000)
    env = np.concatenate([np.sin(np.linspace(0, np.pi / 2, rise)) ** 2,
                          np.cos(np.linspace(0, np.pi / 2, n - rise)) ** 2])
    out = noise * env
    return out / np.sqrt(np.mean(out * out))


def breaths() -> list[Breath]:
    out = []
    for name, under in REAL_BREATHS:
        x = load_8k(BREATH_DIR / name)
        out.append(Breath(name.split("_")[-2], x / np.sqrt(np.mean(x * x)), under))
    out.append(Breath("synthetic", synthetic_breath(), SYNTH_UNDER_DB))
    return out


def with_breath(caller: Floats, breath: Breath, gap_ms: int) -> tuple[Floats, tuple[int, int]]:
    """Return `caller` with `breath` ending `gap_ms` before its first speech frame, and
    the caller's speech span (frames) in the result."""
    first, last = speech_frames(caller)
    level = active_level_dbov(caller) - breath.under_db
    end = first * FRAME - gap_ms * 8
    pad = -(-max(breath.samples.size - end, 0) // FRAME) * FRAME  # whole frames
    out = np.concatenate([np.zeros(pad), caller])
    start = pad + end - breath.samples.size
    out[start : start + breath.samples.size] += breath.samples * 10 ** (level / 20)
    shift = pad // FRAME
    return out, (first + shift, last + shift)
