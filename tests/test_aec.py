"""The echo canceller alone: the bot's prompt sent, its echo coming back, no caller."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from mediasrv.audio import ULAW_DECODE, pcm16_to_ulaw
from mediasrv.policy.aec import EchoCanceller
from mediasrv.policy.aec_dsp import tail_beyond
from mediasrv.policy.echo_path import PathMoveWatch

BOT = Path(__file__).resolve().parent / "audio" / "speech" / "en_espeak_bot_prompt.wav"
CALLER = BOT.with_name("en_asterisk_allison_tt-weasels.wav")
TICK = 0.020
DELAY = 160 * 8  # 160 ms


def bot_frames() -> list[np.ndarray]:
    with wave.open(str(BOT), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    ulaw = np.frombuffer(pcm16_to_ulaw(pcm), np.uint8)
    return [ULAW_DECODE[ulaw[i : i + 160]] for i in range(0, len(ulaw) - 159, 160)]


def caller_samples(level_db: float) -> np.ndarray:
    with wave.open(str(CALLER), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    return pcm * 10 ** (level_db / 20)


def echo_run(
    path: np.ndarray,
    echo_loss_db: float,
    frames: int,
    *,
    aec: EchoCanceller | None = None,
    start: int = 0,
    delay: int = DELAY,
    caller: np.ndarray | None = None,
    learn: bool = True,
    stamped_late: tuple[int, float] = (0, 0.0),
    silent: range = range(0),
    powers: list[tuple[float, float]] | None = None,
) -> EchoCanceller:
    """Feed frames [start, frames) of the bot out and its echo (mu-law, like Twilio) back.

    Frames in `silent` are sent as silence (a pause of the bot). `powers`, if given, gets
    each frame's echo estimate and residual power.

    `caller` (samples from frame `start` on) is added to the inbound; with `learn` False
    the canceller is told every frame held the caller (it learns nothing). `stamped_late`
    (n, s): the first n inbound frames carry times s late, as when the first frames of a
    stream arrived late and set its time origin, which later frames then corrected.
    """
    aec = aec if aec is not None else EchoCanceller()
    sent = bot_frames()
    echo = np.zeros(len(sent) * 160 + 8000)
    g = 10 ** (-echo_loss_db / 20)
    hiss = np.random.default_rng(3).standard_normal(echo.shape[0]) * 10  # -70 dBFS
    sent = [np.zeros(160) if i in silent else frame for i, frame in enumerate(sent)]
    for i in range(max(0, start - delay // 160 - 8), frames):
        played = np.convolve(sent[i].astype(np.float64), path) * g
        echo[i * 160 + delay : i * 160 + delay + played.shape[0]] += played
        if i < start:
            continue
        now = (i + 1) * TICK
        aec.on_sent((sent[i] / 32768.0).astype(np.float32), now)
        inbound = echo[i * 160 : (i + 1) * 160] + hiss[i * 160 : (i + 1) * 160]
        if caller is not None:
            part = caller[(i - start) * 160 : (i - start + 1) * 160]
            inbound[: part.shape[0]] += part
        pcm = np.clip(np.rint(inbound), -32768, 32767).astype(np.int16)
        y = ULAW_DECODE[np.frombuffer(pcm16_to_ulaw(pcm), np.uint8)]
        late = stamped_late[1] if i - start < stamped_late[0] else 0.0
        aec.process((y / 32768.0).astype(np.float32), now + late)
        aec.commit(caller=not learn)
        if powers is not None:
            powers.append((aec.echo_power, aec.residual_power))
    return aec


# A hybrid that rings for 30 ms, with a reflection 12 ms later (6 dB down).
_TAIL = np.random.default_rng(5).standard_normal(240) * np.exp(-np.arange(240) / 60.0)
BAD_LINE = np.concatenate([_TAIL, np.zeros(96)]) + np.concatenate([np.zeros(96), _TAIL * 0.5])
BAD_LINE /= np.abs(np.fft.rfft(BAD_LINE, 1024)).max()


def test_finds_a_pure_delay_and_converges_within_three_seconds() -> None:
    aec = echo_run(np.ones(1), echo_loss_db=20.0, frames=150)
    assert aec.delay is not None and abs(aec.delay - DELAY) <= 2
    assert aec.erle_db >= 15.0


def test_inbound_times_corrected_earlier_move_the_inbound_timeline_with_them() -> None:
    # The uplink's time origin comes from the frames that arrived soonest: when the first
    # frames came late, every later frame is stamped earlier than they were. Counting on
    # from the late start would leave the inbound 180 ms behind what we sent for the
    # whole call: this 350 ms echo would look like 530 ms, past the 500 ms searched.
    aec = echo_run(np.ones(1), echo_loss_db=20.0, frames=200, delay=2800,
                   aec=EchoCanceller(max_delay_ms=500), stamped_late=(10, 0.180))
    assert aec.delay is not None and abs(aec.delay - 2800) <= 2
    assert aec.erle_db >= 15.0


def test_converges_on_a_dispersive_hybrid_echo() -> None:
    path = np.convolve([0.1, 0.7, 1.0, 0.35, -0.3, -0.35], np.exp(-np.arange(24) / 6.0))
    path /= np.abs(np.fft.rfft(path, 256)).max()  # no frequency louder than the ERL says
    aec = echo_run(path, echo_loss_db=6.0, frames=150)
    assert aec.delay is not None and DELAY - 8 <= aec.delay <= DELAY + 40
    assert aec.erle_db >= 15.0


def test_a_delay_locked_onto_hiss_is_let_go_when_no_echo_ever_sharpens_it() -> None:
    aec = echo_run(np.zeros(1), echo_loss_db=10.0, frames=20)
    assert aec.delay is not None  # the premise: one correlation of hiss looked sharp
    aec = echo_run(np.zeros(1), echo_loss_db=10.0, frames=150, aec=aec, start=20)
    assert aec.delay is None  # no filter left running on the hiss


def test_an_echo_that_appears_after_the_delay_was_let_go_is_found_again() -> None:
    aec = echo_run(np.zeros(1), echo_loss_db=10.0, frames=150)
    assert aec.delay is None
    aec = echo_run(np.ones(1), echo_loss_db=20.0, frames=300, aec=aec, start=150)
    assert aec.delay is not None and abs(aec.delay - DELAY) <= 2
    assert aec.erle_db >= 15.0


def test_a_line_with_echo_keeps_its_delay_through_the_bot_turn() -> None:
    for path, loss in ((np.ones(1), 20.0), (BAD_LINE, 10.0)):
        aec = echo_run(path, echo_loss_db=loss, frames=50)
        for end in range(100, len(bot_frames()), 50):
            aec = echo_run(path, echo_loss_db=loss, frames=end, aec=aec, start=end - 50)
            assert aec.delay is not None, f"delay let go by frame {end}"


def test_residual_is_the_inbound_until_a_delay_is_known() -> None:
    aec = EchoCanceller()
    y = np.full(160, 0.1, dtype=np.float32)
    assert np.array_equal(aec.process(y, 0.02), y)
    assert aec.delay is None and aec.erle_db == 0.0


def test_our_echo_through_a_ringing_path_with_a_reflection_is_coherent() -> None:
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    residual, inbound = aec.coherence()
    assert inbound > 0.7  # our echo, whatever the path's shape


def test_a_caller_on_a_line_with_no_echo_is_not_coherent_with_what_we_sent() -> None:
    aec = echo_run(np.zeros(1), echo_loss_db=10.0, frames=150, caller=caller_samples(-10.0),
                   start=100)
    assert max(aec.coherence()) < 0.5


def test_in_double_talk_the_residual_is_the_caller_and_the_estimate_still_fits() -> None:
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    # a caller 20 dB under the bot's level, 10 dB under its echo: the canceller is frozen
    echo_run(BAD_LINE, 10.0, 212, aec=aec, start=200, caller=caller_samples(-20.0), learn=False)
    residual, inbound = aec.coherence()
    assert residual < 0.5 < inbound  # the inbound is mostly our echo, the residual is not
    assert aec.estimate_fits()
    assert aec.follows_estimate() < 0.5


def test_a_path_that_only_got_louder_leaves_a_residual_that_follows_the_estimate() -> None:
    aec = echo_run(np.ones(1), echo_loss_db=20.0, frames=200)
    echo_run(np.ones(1), 6.0, 212, aec=aec, start=200, learn=False)
    assert aec.follows_estimate() > 0.9


def test_a_path_that_moved_makes_the_estimate_misfit_and_the_inbound_stays_coherent() -> None:
    aec = echo_run(np.ones(1), echo_loss_db=10.0, frames=200)
    echo_run(np.ones(1), 10.0, 212, aec=aec, start=200, delay=60 * 8, learn=False)
    assert not aec.estimate_fits()
    assert aec.coherence()[1] > 0.7


def moved_echo(echo_loss_db: float, start: int, delay: int) -> np.ndarray:
    """The bot's frames from `start` on coming back through BAD_LINE after `delay`: a
    second echo, at a lag the filter does not model (as after the path moved)."""
    sent = np.concatenate(bot_frames()[start:]).astype(np.float64)
    return np.concatenate([np.zeros(delay), np.convolve(sent, BAD_LINE)]) * 10 ** (
        -echo_loss_db / 20)


def test_an_echo_at_another_lag_fills_the_recent_coherence_before_the_whole_window() -> None:
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    # 100 ms of it (from frame 203: it comes back after 60 ms), the filter frozen
    echo_run(BAD_LINE, 10.0, 208, aec=aec, start=200, caller=moved_echo(10.0, 200, 60 * 8),
             learn=False)
    assert aec.coherence()[0] < 0.5 < 0.7 < aec.recent_coherence()


def test_a_callers_residual_is_not_recently_coherent_with_what_we_sent() -> None:
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    echo_run(BAD_LINE, 10.0, 208, aec=aec, start=200, caller=caller_samples(-20.0), learn=False)
    assert aec.recent_coherence() < 0.5


def test_a_response_still_ringing_at_the_filters_end_is_carried_on_at_its_decay() -> None:
    rng = np.random.default_rng(3)
    k = np.arange(1024)
    room = (rng.standard_normal(1024) * 10 ** (-2.0 * k / 1600)).astype(np.float32)
    tail = tail_beyond(room)  # 2 dB of decay per 20 ms block, ringing on past 120 ms
    assert tail.size == 15
    assert np.all(np.diff(10 * np.log10(tail)) < -1.0)  # each block quieter than the last
    assert 10 * np.log10(tail[0] / (room**2).sum()) > -30.0


def test_a_response_over_within_the_filter_leaves_no_tail() -> None:
    rng = np.random.default_rng(3)
    short = np.zeros(1024, dtype=np.float32)
    short[:400] = rng.standard_normal(400) * np.exp(-np.arange(400) / 60.0)  # a hybrid
    short[400:] = rng.standard_normal(624) * 1e-4  # the estimate's own noise floor
    assert tail_beyond(short).size == 0


def test_a_caller_not_yet_detected_does_not_undo_the_measured_erle() -> None:
    # Converged on the bad line, then a caller talks for 400 ms while the canceller is still
    # told "echo only" (the VAD has not confirmed them yet). Each such frame counts at most
    # 6 dB over what the filter leaves, and it may pull the measured ERLE down only slowly:
    # at the old pace, 6.6 dB in these 400 ms, and in the emulator a -20 dB caller on the
    # bad line took a trusted canceller (18 dB) under its 10 dB and was never heard.
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=150)
    before = aec.erle_db
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=170, aec=aec, start=150,
                   caller=caller_samples(-20.0))
    assert before >= 15.0
    assert before - aec.erle_db < 3.0


def test_the_first_filter_is_measured_as_it_is_now_not_as_it_was() -> None:
    # The bot talks for 0.5 s, then pauses for 0.4 s: the filter goes on learning from
    # spectra that still hold its words, but no echo comes to measure it on, and a caller
    # starting as the bot goes on is in every frame measured after that. So the ERLE must
    # be the filter's as it is by then (the bad line, traced: 4 dB was known of a filter
    # that took off 18-20 dB, and a -20 dB caller was heard only 1.2 s later); but not
    # much more than it does on the echo that follows, learning nothing (measured on the
    # frames it learned from, it reads high: here 20.6 dB against 16.8; before, 10.1).
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=45, silent=range(25, 45))
    known = aec.erle_db
    powers: list[tuple[float, float]] = []
    echo_run(BAD_LINE, echo_loss_db=10.0, frames=60, aec=aec, start=45, learn=False,
             silent=range(25, 45), powers=powers)
    echo, left = np.sum(powers, axis=0)
    assert known >= 15.0
    assert known <= 10 * np.log10(echo / left) + 4.0


def test_the_best_erle_outlasts_a_callers_onset_that_drags_the_erle_down() -> None:
    # A caller talking over the bot's first seconds, not yet detected, is learned as echo
    # and pulls the measured ERLE towards 0: the best ERLE since the filter was reset still
    # says the canceller did remove our echo (echo.py `_cold` reads it).
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=150)
    before = aec.erle_db
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=250, aec=aec, start=150,
                   caller=caller_samples(0.0))
    assert aec.erle_db < before - 6.0
    assert aec.best_erle_db >= before


def test_a_filter_shorter_than_the_tail_blocks_leaves_no_tail() -> None:
    assert tail_beyond(np.ones(512, dtype=np.float32)).size == 0
    aec = echo_run(np.ones(1), echo_loss_db=20.0, frames=100, aec=EchoCanceller(taps=512))
    assert aec.tail_power == 0.0


def test_no_filter_is_learned_from_a_spectrum_that_holds_a_frame_judged_the_caller() -> None:
    # The spectra span 512 ms: after one frame judged the caller, frames judged echo must
    # not learn a window that still holds it (the caller's first syllables left the filter
    # noisy through the next answer, whose echo then barged in), and learn again after it.
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=100)
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=101, aec=aec, start=100, learn=False)
    learned = aec.learned_frames
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=125, aec=aec, start=101)
    assert aec.learned_frames == learned
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=135, aec=aec, start=125)
    assert aec.learned_frames > learned


def test_an_echo_moved_out_of_the_filters_span_is_seen_before_the_search_realigns() -> None:
    # 160 -> 40 ms through a ring with a reflection: the delay search, smoothed, is slow
    # to see the new delay; the residual's own correlation stands sharp there, where the
    # filter models nothing, on looks in a row (echo_path.PathMoveWatch).
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    watch, seen = PathMoveWatch(), []
    for frame in range(201, 214):
        echo_run(BAD_LINE, 10.0, frame, aec=aec, start=frame - 1, delay=40 * 8, learn=False)
        seen.append(watch.seen(frame * TICK, aec))
    assert aec.delay is not None and abs(aec.delay - DELAY) < 32  # not realigned yet
    found = aec.residual_lag()
    assert found is not None and abs(found.delay - 40 * 8) < 16
    assert aec.response_at(found.delay) < 0.1
    assert any(seen)


def test_the_filter_models_the_echo_it_learned_and_nothing_far_from_it() -> None:
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    assert aec.delay is not None
    assert aec.response_at(aec.delay) > 0.5
    assert aec.response_at(aec.delay + 80 * 8) < 0.1  # inside the span, no echo there
    assert aec.response_at(aec.delay - 120 * 8) == 0.0  # outside the span


def test_a_burst_sent_between_ticks_meets_the_filter_learned_on_the_tick() -> None:
    # A response's frames leave when its audio comes, at any phase of the 20 ms tick, and
    # play (and echo) from then. Placed on the nearest slot, the reference of this one
    # would sit 7 ms off its echo and the filter learned on the last one no longer fit.
    aec = echo_run(np.ones(1), echo_loss_db=20.0, frames=150)
    phase, first = 56, 200  # samples after the tick; the burst's first frame, 1 s later
    sent = bot_frames()
    echo = np.zeros((first + 80) * 160 + DELAY + phase)
    inbound_power = residual_power = 0.0
    for i in range(first, first + 60):
        x = sent[i - first].astype(np.float64) / 32768.0
        at = i * 160 + DELAY + phase
        echo[at : at + 160] += x * 0.1  # 20 dB down
        aec.on_sent(x.astype(np.float32), (i + 1) * TICK + phase / 8000)
        y = echo[i * 160 : (i + 1) * 160].astype(np.float32)
        residual = aec.process(y, (i + 1) * TICK)
        aec.commit(caller=True)  # learns nothing: the filter of the last burst must fit
        if i >= first + 20:
            inbound_power += float(np.dot(y, y))
            residual_power += float(np.dot(residual, residual))
    assert 10 * np.log10(inbound_power / residual_power) >= 15.0


def test_an_echo_come_a_few_ms_late_is_found_at_its_shift_and_the_filter_follows_it() -> None:
    # Twilio's playout ran dry for 8 ms that the server did not see: the same path, later.
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    powers: list[tuple[float, float]] = []
    echo_run(BAD_LINE, 10.0, 203, aec=aec, start=200, delay=DELAY + 64, learn=False,
             powers=powers)
    assert powers[-1][1] > powers[-1][0] * 0.5  # the filter as it was: no use now
    assert aec.path_shift() == 64
    assert aec.shift(64)  # inside a burst: the echo still holds what played before it
    assert aec.moved_in_burst
    powers.clear()
    echo_run(BAD_LINE, 10.0, 206, aec=aec, start=203, delay=DELAY + 64, learn=False,
             powers=powers)
    assert all(res < est * 10 ** (-15 / 10) for est, res in powers)  # >= 15 dB off again


def test_an_echo_come_earlier_is_found_at_its_negative_shift() -> None:
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    echo_run(BAD_LINE, 10.0, 203, aec=aec, start=200, delay=DELAY - 96, learn=False)
    assert aec.path_shift() == -96


def test_an_echo_where_the_filter_has_it_is_no_shift() -> None:
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    echo_run(BAD_LINE, 10.0, 203, aec=aec, start=200, learn=False)
    assert aec.path_shift() is None


def test_a_caller_over_the_echo_is_no_shift() -> None:
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    for level_db in (-10.0, -20.0):
        for frame in range(201, 230):
            echo_run(BAD_LINE, 10.0, frame, aec=aec, start=frame - 1, learn=False,
                     caller=caller_samples(level_db)[(frame - 201) * 160 :])
            assert aec.path_shift() is None, (level_db, frame)


def test_the_delay_search_moves_with_a_shifted_filter() -> None:
    # Else its smoothed correlation, still at the old delay, would reset the filter there.
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    old = aec.delay
    assert old is not None
    aec.shift(64)
    echo_run(BAD_LINE, 10.0, 230, aec=aec, start=200, delay=DELAY + 64)
    assert aec.delay == old + 64 and aec.learned_frames > 100


def test_a_burst_that_began_to_play_late_moves_the_filter_with_nothing_before_it() -> None:
    # The bot paused; Twilio began to play its next turn 3 ms later than the server's
    # clock says (the first packet's jitter): the filter moves, and no echo of what played
    # before the move is left in its span.
    aec = echo_run(BAD_LINE, echo_loss_db=10.0, frames=200)
    echo_run(BAD_LINE, 10.0, 272, aec=aec, start=260, delay=DELAY + 24, learn=False)
    assert aec.path_shift() == 24
    assert not aec.shift(24)
    assert not aec.moved_in_burst
