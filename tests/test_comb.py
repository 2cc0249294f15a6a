"""The bot's harmonic comb as echo evidence (mediasrv/policy/comb.py): pure, arrays in."""

from __future__ import annotations

import numpy as np

from mediasrv.emulator import catalogue as cat
from mediasrv.emulator.line import BAD_LINE, HANDSET, impulse_response, soft_clip
from mediasrv.emulator.script import load_8k
from mediasrv.policy.comb import BACK, WINDOW, CombEvidence
from mediasrv.policy.turns import TurnConfig, TurnPolicy
from mediasrv.testing import tails
from mediasrv.testing.callers import AUDIO
from mediasrv.testing.frames import Net, bots, simulate, under

OFF_COMB_DB = 6.5  # the echo guard's line (mediasrv/policy/echo.py `_OFF_COMB_DB`)


def voice(f0: float, seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    """Return a voiced sound: harmonics of a slowly gliding f0 up to 3.4 kHz."""
    t = np.arange(int(seconds * 8000)) / 8000
    glide = f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(glide) / 8000
    rng = np.random.default_rng(seed)
    out = np.zeros(t.size)
    for k in range(1, int(3400 // f0) + 1):
        out += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    return level * out / np.sqrt(np.mean(out**2))


def figures(sent: np.ndarray, inbound: np.ndarray) -> list[float | None]:
    """Return the figure of each 20 ms frame once a whole span is in reach (delay 0)."""
    comb = CombEvidence()
    return [comb.excess_db(inbound[end - WINDOW : end], sent[end - WINDOW - BACK : end])
            for end in range(WINDOW + BACK, sent.size + 1, 160)]


def through_the_bad_line(x: np.ndarray) -> np.ndarray:
    _, taps = impulse_response(BAD_LINE)  # 24 ms ring, a reflection 60 ms on, ERL 10 dB
    return np.convolve(x, taps)[: x.size]


def test_our_echo_through_a_ringing_path_with_a_reflection_stays_on_our_comb() -> None:
    sent = voice(120.0, 2.0)
    found = [f for f in figures(sent, through_the_bad_line(sent)) if f is not None]
    assert len(found) > 50  # voiced throughout: the figure is there
    assert max(found) < OFF_COMB_DB


def test_our_echo_through_a_saturated_loudspeaker_stays_on_our_comb() -> None:
    sent = voice(120.0, 2.0, level=0.4)
    found = [f for f in figures(sent, through_the_bad_line(soft_clip(sent, -9.0)))
             if f is not None]
    assert found and max(found) < OFF_COMB_DB  # its harmonics lie on the same comb


def test_a_caller_on_another_pitch_under_our_echo_is_off_our_comb() -> None:
    sent = voice(120.0, 2.0)
    echo = through_the_bad_line(sent)
    # As loud as the echo: 10 dB under what we sent, where the level says nothing.
    caller = voice(185.0, 2.0, level=0.1 * 10 ** (-10 / 20), seed=1)
    caller[:8000] = 0.0  # from 1 s on: the line's floor was learned on our echo alone
    found = figures(sent, echo + caller)
    onset = (8000 - WINDOW - BACK) // 160  # the frame the caller's first samples end
    # Over their first 200 ms (the line's floor then rises under them: 10 dB/s).
    talking = [f for f in found[onset + 1 : onset + 11] if f is not None]
    assert len(talking) == 10 and np.median(talking) > OFF_COMB_DB
    assert max(f for f in found[: onset - 1] if f is not None) < OFF_COMB_DB  # echo alone


def test_what_we_sent_unvoiced_gives_no_figure() -> None:
    sent = np.random.default_rng(3).standard_normal(16000) * 0.05  # a fricative, a hiss
    assert set(figures(sent, through_the_bad_line(sent))) == {None}


# --- in the echo guard (mediasrv/policy/echo.py), frame by frame on the emulator's lines ---


def test_a_rooms_tail_read_at_the_calls_first_dull_delay_does_not_barge_in() -> None:
    # The apology through a 250 ms room tail at ERL 10 dB: the delay search's first
    # estimate is 6 ms (sharpness 6.3-6.9, held though dull), and our echo against the
    # comb of what we sent 6 ms before it read 8-12 dB off it: barged in at 0.96 s.
    run = tails.tail_run(lambda: TurnPolicy(TurnConfig()), tails.tail_prompts()["apology"],
                         250.0, 10.0, Net())
    assert run.barge_ins == []


def test_hold_music_under_the_bot_from_its_first_word_is_not_a_caller_off_our_comb() -> None:
    # Music is not our voice either (9-11 dB off the comb on the handset at -15 dB, from
    # 0.8 s): as on coherence alone, the VAD's classifier must be sure of such a frame.
    bot = bots()["long_answer"]
    music = load_8k(AUDIO / "music/moh_macroform-cold_day_0-30s.wav") * 10 ** (-15 / 20)
    run = simulate(lambda: TurnPolicy(TurnConfig()), bot, under(bot, music),
                   cat.line_of(HANDSET), Net(), stop_at_barge_in=False)
    assert (run.barge_ins, run.turns) == ([], 0)
