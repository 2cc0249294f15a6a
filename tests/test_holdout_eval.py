"""scripts/holdout_eval.py: the held-out callers' phone band and onsets, and one tiny cell."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from mediasrv.emulator.script import load_8k, resample
from mediasrv.policy.turns import TurnConfig, TurnPolicy
from mediasrv.testing.callers import caller_clips, speech_frames
from mediasrv.testing.frames import Net, prompt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import holdout_eval  # noqa: E402

EDGE = 200  # output samples left out at each end: the filter's start/stop


def tone_level_db(hz: float) -> float:
    """Return a 16 kHz tone's level after the held-out callers' 16 -> 8 kHz path (dB)."""
    t = np.arange(16000) / 16000.0
    x = 0.5 * np.sin(2 * np.pi * hz * t)
    y = resample(x, 16000)[EDGE:-EDGE]
    return float(10 * np.log10(np.mean(y * y) / np.mean(x * x)))


def test_phone_band_path_keeps_a_1khz_tone() -> None:
    assert abs(tone_level_db(1000.0)) < 0.5


def test_phone_band_path_puts_a_5khz_tone_more_than_40db_down() -> None:
    assert tone_level_db(5000.0) < -40.0


def test_phone_band_path_halves_the_sample_count() -> None:
    assert resample(np.zeros(3200), 16000).size == 1600


def test_onset_rule_is_bargein_evals_on_the_tuned_callers() -> None:
    for file, pcm in caller_clips().items():
        assert holdout_eval.speech_span(pcm) == speech_frames(pcm), file


def test_onset_rule_skips_a_readers_breathing_before_the_first_word() -> None:
    reader = load_8k(holdout_eval.WIDEBAND[1])  # "He was not an ill disposed young man"
    assert speech_frames(reader)[0] < 3  # -45 dBFS alone: the breath
    assert holdout_eval.speech_span(reader)[0] >= 10  # the word, ~0.26 s in


def test_one_tiny_cell_runs_and_prints_its_row(capsys: pytest.CaptureFixture[str]) -> None:
    callers = [c for c in holdout_eval.held_out_callers(-18.5) if "forever" in c.name]
    holdout_eval.report_callers(
        lambda: TurnPolicy(TurnConfig()), callers, (0.0,), True, Net(),
        {"prompts": {"greeting": prompt("greeting")}}, {"no echo": None})
    rows = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"  caller +0 dB  no echo +prompts +detected +\d/3 .*", rows[-1])
