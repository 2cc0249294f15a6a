"""scripts/bargein_breath.py: where the breath goes and at what level."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.levels import active_level_dbov
from mediasrv.emulator.script import load_8k
from mediasrv.testing.frames import FRAME

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bargein_breath  # noqa: E402
import bargein_eval  # noqa: E402


def caller() -> np.ndarray:
    file, seconds = cat.CALLERS[2]  # "front center": 40 ms of lead-in, shorter than a breath
    return load_8k(bargein_eval.AUDIO / file)[: int(seconds * 8000)]


def test_breath_ends_the_gap_before_the_callers_first_speech_frame() -> None:
    pcm = caller()
    breath = bargein_breath.breaths()[-1]
    clip, (first, last) = bargein_breath.with_breath(pcm, breath, gap_ms=100)
    added = clip[clip.size - pcm.size :] - pcm  # the caller's own samples, taken away
    lead = clip[: clip.size - pcm.size]
    where = np.flatnonzero(np.abs(np.concatenate([lead, added])) > 1e-9)
    assert where[-1] < first * FRAME - 100 * 8
    assert where[-1] >= first * FRAME - 100 * 8 - 40  # its fade-out's last samples
    assert bargein_eval.speech_frames(clip[clip.size - pcm.size :]) == (
        first - (clip.size - pcm.size) // FRAME, last - (clip.size - pcm.size) // FRAME)


def test_breath_sits_its_own_distance_under_the_callers_active_level() -> None:
    pcm = caller()
    for breath in bargein_breath.breaths():
        clip, _ = bargein_breath.with_breath(pcm, breath, gap_ms=0)
        alone = clip.copy()
        alone[clip.size - pcm.size :] -= pcm
        level = 10 * np.log10(np.mean(alone[alone != 0] ** 2))
        under = active_level_dbov(pcm) - level
        assert abs(under - breath.under_db) < 1.0, breath.name
