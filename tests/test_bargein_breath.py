"""mediasrv/testing/breath.py (bargein_eval's `breath`): where the breath goes, at what level."""

from __future__ import annotations

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.levels import active_level_dbov
from mediasrv.testing.breath import breaths, with_breath
from mediasrv.testing.callers import caller_clips, speech_frames
from mediasrv.testing.frames import FRAME


def caller() -> np.ndarray:
    file, _ = cat.CALLERS[2]  # "front center": 40 ms of lead-in, shorter than a breath
    return caller_clips()[file]


def test_breath_ends_the_gap_before_the_callers_first_speech_frame() -> None:
    pcm = caller()
    breath = breaths()[-1]
    clip, (first, last) = with_breath(pcm, breath, gap_ms=100)
    added = clip[clip.size - pcm.size :] - pcm  # the caller's own samples, taken away
    lead = clip[: clip.size - pcm.size]
    where = np.flatnonzero(np.abs(np.concatenate([lead, added])) > 1e-9)
    assert where[-1] < first * FRAME - 100 * 8
    assert where[-1] >= first * FRAME - 100 * 8 - 40  # its fade-out's last samples
    assert speech_frames(clip[clip.size - pcm.size :]) == (
        first - (clip.size - pcm.size) // FRAME, last - (clip.size - pcm.size) // FRAME)


def test_breath_sits_its_own_distance_under_the_callers_active_level() -> None:
    pcm = caller()
    for breath in breaths():
        clip, _ = with_breath(pcm, breath, gap_ms=0)
        alone = clip.copy()
        alone[clip.size - pcm.size :] -= pcm
        level = 10 * np.log10(np.mean(alone[alone != 0] ** 2))
        under = active_level_dbov(pcm) - level
        assert abs(under - breath.under_db) < 1.0, breath.name
