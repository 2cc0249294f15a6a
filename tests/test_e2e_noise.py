"""End to end, what must not be a turn: silence, echo, music, tones, noise.

The real app and local backend, the emulator, real sockets; each scenario runs in
TURN_DETECTION=local and server at once. A response here means a `response.create`
for an answer; the greeting and the bridge's own silence prompts are expected.
"""

from __future__ import annotations

import e2e_helpers as e2e

from mediasrv.emulator import catalogue as sc
from mediasrv.testing.harness import BackendPool


def test_echo_alone_at_6_10_20_db_erl_never_barges_in_nor_answers(backends: BackendPool) -> None:
    # silence_timeout_s = 1: greeting, "are you still there?" and goodbye all echo back
    outcomes = e2e.run_all([sc.echo_only(erl) for erl in sc.ECHO_ERLS], backends)
    assert len(outcomes) == 6
    for o in outcomes:
        why = o.describe()
        assert o.summary["clears"] == [] and o.barge_ins() == [], why
        assert o.purposes == ["greeting", "idle_prompt", "goodbye"], why
        assert o.summary["hangup"]["by"] == "server", why


def test_quiet_room_music_tones_and_noise_bursts_get_no_response(backends: BackendPool) -> None:
    # One batch: 30 s of quiet room, and (meanwhile) music on hold, ring-back/DTMF/busy
    # tones and loud noise bursts, all from the greeting on.
    scenarios = [sc.quiet_room(30.0), sc.music_on_hold(), sc.tones(), sc.noise_bursts()]
    outcomes = e2e.run_all(scenarios, backends)
    assert len(outcomes) == 8
    for o in outcomes:
        why = o.describe()
        assert o.purposes == ["greeting"], why
        assert o.summary["responses"] == 1, why
        assert o.summary["clears"] == [] and o.barge_ins() == [], why
        if o.scenario.name == "quiet_room":
            assert o.count("END OF UTTERANCE") == 0, why
            assert o.summary["frames_sent"] >= 1490, why  # the whole 30 s went through


def test_speech_in_pink_noise_at_10_db_snr_gets_one_answer(backends: BackendPool) -> None:
    scenario = sc.speech_in_noise()
    assert scenario.modes == ("local",)  # server mode: see the scenario (backend VAD)
    for o in e2e.run(scenario, backends).values():
        why = o.describe()
        assert o.purposes == ["greeting", "answer"], why
        [(_, end)] = o.speech_times()
        [answer] = e2e.answers(o)
        assert end < answer < end + 4.0, why
        assert o.summary["clears"] == [], why
