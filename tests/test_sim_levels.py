"""Speech levels (ITU-T P.56 method B), in dBov."""

from __future__ import annotations

import numpy as np
from conftest import SHARED_AUDIO

from mediasrv.emulator.levels import active_level_dbov, level_dbov
from mediasrv.emulator.script import load_8k


def test_full_scale_sine_is_minus_3_dbov() -> None:
    t = np.arange(16000) / 8000
    assert abs(active_level_dbov(np.sin(2 * np.pi * 1000 * t)) + 3.01) < 0.15


def test_pauses_lower_the_rms_level_but_not_the_active_level() -> None:
    speech = load_8k(SHARED_AUDIO / "speech" / "en_asterisk_allison_tt-weasels.wav")
    padded = np.concatenate([speech, np.zeros(4 * speech.size)])
    assert level_dbov(speech) - level_dbov(padded) > 6.0
    assert abs(active_level_dbov(padded) - active_level_dbov(speech)) < 0.3


def test_a_gain_moves_the_active_level_by_exactly_that_gain() -> None:
    speech = load_8k(SHARED_AUDIO / "speech" / "en_alsa_front_center.wav")
    quieter = speech * 10 ** (-20 / 20)
    assert abs(active_level_dbov(speech) - active_level_dbov(quieter) - 20.0) < 0.05
