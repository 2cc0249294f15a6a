"""The line model: pure, causal, stateful across frames. `now` is the sample count."""

from __future__ import annotations

import numpy as np

from mediasrv.audio import ULAW_DECODE, pcm16_to_ulaw, to_pcm16
from mediasrv.emulator.levels import active_level_dbov, level_dbov
from mediasrv.emulator.line import (
    BAD_LINE,
    HANDSET,
    EchoPath,
    Line,
    LineModel,
    PathChange,
    Reflection,
    dispersive_response,
    impulse_response,
)
from mediasrv.emulator.line import PROMPTS_DIR as PROMPTS

FRAME = 160


def decode(ulaw: bytes) -> np.ndarray:
    return ULAW_DECODE[np.frombuffer(ulaw, np.uint8)] / 32768.0


def run(line: Line, speaker: np.ndarray, mic: np.ndarray | None = None) -> np.ndarray:
    """Feed whole frames of speaker (and mic) audio; return what the server receives."""
    model = LineModel(line)
    mic = np.zeros_like(speaker) if mic is None else mic
    out = [
        model.process(mic[i : i + FRAME], speaker[i : i + FRAME])
        for i in range(0, speaker.size, FRAME)
    ]
    return decode(b"".join(out))


def impulses(n: int, at: dict[int, float]) -> np.ndarray:
    x = np.zeros(n)
    for i, a in at.items():
        x[i] = a
    return x


def bot_voice() -> np.ndarray:
    return decode((PROMPTS / "long_answer.ulaw").read_bytes())


def test_pure_delay_returns_the_played_sample_exactly_the_delay_later() -> None:
    line = Line(EchoPath(delay_ms=40.0, erl_db=0.0), hiss_dbov=None)
    out = run(line, impulses(1600, {100: 0.5}))
    assert np.flatnonzero(out).tolist() == [100 + 320]
    assert abs(out[420] - 0.5) < 0.5 / 32  # mu-law step at this level


def test_dispersive_response_lasts_its_tail_decays_and_passes_no_dc() -> None:
    h = dispersive_response(12.0, seed=3)
    assert h.size == 96
    head, tail = np.sum(h[:10] ** 2), np.sum(h[-10:] ** 2)
    assert 10 * np.log10(head / tail) > 25  # 40 dB envelope decay over the tail
    assert abs(h.sum()) < 1e-9


def test_erl_is_the_loss_the_bots_voice_comes_back_with() -> None:
    bot = bot_voice()
    bot = bot[: bot.size // FRAME * FRAME]
    for path in (HANDSET, BAD_LINE, EchoPath(160.0, 6.0, 8.0, seed=8), EchoPath(300.0, 10.0, 30.0)):
        echo = run(Line(path, hiss_dbov=None), bot)
        measured = active_level_dbov(bot) - active_level_dbov(echo)
        assert abs(measured - path.erl_db) < 0.6, (path, measured)


def test_reflection_is_a_second_later_weaker_copy() -> None:
    path = EchoPath(delay_ms=20.0, erl_db=0.0, reflection=Reflection(delay_ms=60.0, level_db=-6.0))
    delay, taps = impulse_response(path)
    assert delay == 160 and np.flatnonzero(taps).tolist() == [0, 480]
    assert abs(20 * np.log10(taps[480] / taps[0]) + 6.0) < 1e-9
    out = run(Line(path, hiss_dbov=None), impulses(1600, {0: 0.5}))
    assert np.flatnonzero(out).tolist() == [160, 640]


def test_saturated_speaker_echo_never_exceeds_its_ceiling_and_quiet_audio_passes() -> None:
    line = Line(EchoPath(0.0, 0.0), speaker_clip_dbfs=-9.0, hiss_dbov=None)
    t = np.arange(1600) / 8000
    loud = run(line, 0.99 * np.sin(2 * np.pi * 500 * t))
    assert np.abs(loud).max() <= 10 ** (-9 / 20) * 1.04  # + one mu-law step
    quiet_in = 0.01 * np.sin(2 * np.pi * 500 * t)
    quiet = run(line, quiet_in)
    assert abs(level_dbov(quiet) - level_dbov(quiet_in)) < 0.2


def test_echo_path_change_takes_effect_at_its_time() -> None:
    change = PathChange(at_s=0.5, path=EchoPath(delay_ms=60.0, erl_db=0.0))
    line = Line(EchoPath(delay_ms=160.0, erl_db=0.0), change=change, hiss_dbov=None)
    # impulses played at 0.2 s (old path: back at 0.36 s) and 0.6 s (new path: 0.66 s)
    out = run(line, impulses(8000, {1600: 0.5, 4800: 0.5}))
    assert np.flatnonzero(out).tolist() == [2880, 5280]


def test_a_frame_never_holds_echo_of_audio_played_after_it() -> None:
    rng = np.random.default_rng(4)
    speaker = rng.standard_normal(4800) * 0.1
    later = speaker.copy()
    later[2400:] = rng.standard_normal(2400) * 0.3  # a different future
    line = Line(EchoPath(0.0, 10.0, 24.0, reflection=Reflection()), hiss_dbov=-70.0)
    a, b = run(line, speaker), run(line, later)
    assert np.array_equal(a[:2400], b[:2400])
    assert not np.array_equal(a[2400:], b[2400:])


def test_hiss_comes_at_its_level_and_a_bare_line_passes_the_caller_as_is() -> None:
    silence = np.zeros(8000)
    assert abs(level_dbov(run(Line(hiss_dbov=-60.0), silence)) + 60.0) < 1.0
    voice = 0.2 * np.sin(2 * np.pi * 300 * np.arange(8000) / 8000)
    out = run(Line(hiss_dbov=None), silence, mic=voice)
    assert np.array_equal(out, decode(pcm16_to_ulaw(to_pcm16(voice))))
