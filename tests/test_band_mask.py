"""The echo mask by band: a residual under what the canceller leaves in total, above it in
the bins where our echo is quiet -- and our own echo, which must not pass it."""

from __future__ import annotations

import numpy as np

from mediasrv.emulator import catalogue
from mediasrv.emulator.line import EchoPath, PathChange, Reflection
from mediasrv.policy.band_mask import BandMask, tail_powers
from mediasrv.policy.turns import TurnConfig, TurnPolicy
from mediasrv.testing import frames

RATE = 8000
T = np.arange(256) / RATE


def tone(hz: float, dbfs: float) -> np.ndarray:
    """A sine whose mean square is `dbfs` (dB re full scale)."""
    return (np.sqrt(2 * 10 ** (dbfs / 10)) * np.sin(2 * np.pi * hz * T)).astype(np.float32)


def power_dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2)))


# Our echo, as the canceller estimates it: a voice's low harmonics, -20 dBFS. With 20 dB of
# ERLE it leaves -40 dBFS of it, and the broadband mask (+10 dB) is -30 dBFS.
ESTIMATE = tone(200, -23) + tone(400, -23) + tone(600, -26)
LEFT = ESTIMATE * 0.1  # what the canceller leaves of it: -40 dBFS, shaped like it
CALLER = tone(2500, -38)  # a fricative the bot does not make now: over -44 dBFS alone


def mask_after_a_quiet_frame() -> BandMask:
    """A mask whose bins' floor has followed a quiet line (-70 dBFS hiss) for a frame."""
    mask = BandMask()
    mask.look((np.random.default_rng(0).standard_normal(256) * 10 ** (-70 / 20)).astype(
        np.float32))
    return mask


def test_a_caller_under_the_echo_mask_in_total_is_heard_in_the_bins_the_bot_leaves_quiet() -> None:
    residual = LEFT + CALLER
    assert power_dbfs(residual) < -30.0  # under the broadband mask: taken for our echo there
    mask = mask_after_a_quiet_frame()
    mask.look(residual)
    assert mask.caller_in_bands(ESTIMATE, erle_db=20.0, tail=None)


def test_our_echo_ringing_past_the_filter_in_those_bins_is_not_heard_by_band() -> None:
    # The same residual, but what we sent 120-420 ms ago held that sound, and the filter
    # rings on past its end: the room's tail is ours (scripts/bargein_eval.py's room tails),
    # though estimated 10 dB under the residual (-48 dBFS), as the canceller's tail runs low.
    past = np.tile(tone(2500, -20)[:160], (15, 1)).astype(np.float32)
    weights = 10 ** (-np.arange(1, 16) * 2 / 10) * 10 ** (-3.1)
    assert -49.0 < 10 * np.log10(tail_powers(past, weights).sum()) < -47.0
    mask = mask_after_a_quiet_frame()
    mask.look(LEFT + CALLER)
    assert not mask.caller_in_bands(ESTIMATE, erle_db=20.0, tail=tail_powers(past, weights))


def test_an_echo_path_that_moved_is_not_heard_by_band() -> None:
    # 160 -> 100 ms through a path with a reflection, 5.2 s into the bot's long answer, at
    # 80/35 ms transit (bargein_eval.py's moves section): 1.9 s on, the filter still half
    # stale, our moved echo stood over the band mask in bins the stale estimate is quiet
    # in, coherence 0.32 with what we sent -- more than a caller's -- and barged in by band.
    net = frames.Net(80.0, 35.0)
    move_at = frames.TICK + net.down_ms / 1000.0 + 5.2  # Twilio time of the move
    before, after = (EchoPath(ms, 10.0, 12.0, Reflection(30.0, -6.0)) for ms in (160.0, 100.0))
    line = catalogue.line_of(before, change=PathChange(move_at, after))
    run = frames.simulate(lambda: TurnPolicy(TurnConfig()), frames.prompt("long_answer"),
                          np.zeros(int((move_at + 3.0) * 8000)), line, net)
    assert run.barge_ins == []
