"""End to end, turn taking: the real app and local backend, the emulator, real sockets.

Every test runs its scenario (mediasrv/emulator/catalogue.py) in TURN_DETECTION=local and
server at once, on two servers. Times are call times of the emulator's clock; bounds on
them are generous (this runs on loaded machines): they check order, not speed.
"""

from __future__ import annotations

import e2e_helpers as e2e

from mediasrv.emulator import catalogue as sc
from mediasrv.testing.harness import BackendPool


def test_silent_caller_is_asked_once_then_told_goodbye_and_hung_up(backends: BackendPool) -> None:
    scenario = sc.silent_caller()  # silence_timeout_s = 2
    for o in e2e.run(scenario, backends).values():
        why = o.describe()
        assert o.purposes == ["greeting", "idle_prompt", "goodbye"], why
        assert o.count("END OF UTTERANCE") == 0 and o.count("TRIGGER_RESPONSE") == 3, why
        assert o.summary["clears"] == [], why
        greeting, idle, goodbye = o.created()
        heard = o.result.bursts()
        assert len(heard) == 3, why  # greeting, prompt and goodbye, each heard apart
        # each prompt follows the silence timeout after the previous audio was heard
        assert heard[0].end + 2.0 - 0.1 <= idle.t <= heard[0].end + 2.0 + 3.0, why
        assert heard[1].end + 2.0 - 0.1 <= goodbye.t <= heard[1].end + 2.0 + 3.0, why
        # the server hangs up (closes the socket) once the goodbye has been heard
        s = o.summary
        assert s["hangup"]["by"] == "server", why
        assert heard[2].end - 0.05 <= s["hangup"]["t_s"] <= heard[2].end + 3.0, why
        assert heard[2].heard_bytes / 8 >= 2000, why  # goodbye.ulaw is 2.17 s
        assert o.end_reason is not None and "silence_timeout" in o.end_reason, why


def test_sentence_after_greeting_gets_one_answer_after_it_ends_and_no_clear(
    backends: BackendPool,
) -> None:
    for o in e2e.run(sc.answer_after_greeting(), backends).values():
        why = o.describe()
        assert o.purposes == ["greeting", "answer"], why
        [(_, end)] = o.speech_times()
        [answer] = e2e.answers(o)
        assert end < answer < end + 4.0, why
        # speech after the greeting fully played is no barge-in
        assert o.summary["clears"] == [] and o.barge_ins() == [], why


def test_talking_over_the_answer_clears_truncates_and_answers_once(
    backends: BackendPool,
) -> None:
    # The caller's interruption is real speech inside the echo window (10 dB ERL echo).
    for o in e2e.run(sc.talk_over_answer(), backends).values():
        why = o.describe()
        assert o.purposes == ["greeting", "answer", "answer"], why
        [(_, first_end), (second_onset, second_end)] = o.speech_times()
        first, second = e2e.answers(o)
        assert first_end < first < second_onset, why
        [barge] = o.barge_ins()
        assert len(o.summary["clears"]) == 1, why
        # the interrupted answer had been fully streamed (response.done) before the
        # barge-in: the bridge truncates, and has nothing to cancel
        interrupted = o.created()[1].detail
        assert barge.detail == f"response={interrupted} cancel=False", why
        done = [d for d in o.done() if d.detail == interrupted]
        assert done and done[0].t < barge.t and done[0].what == "completed", why
        e2e.check_barge_in(o)
        # one new answer, created after the caller stopped talking
        assert second_end < second < second_end + 4.0, why
        assert len(o.summary["barge_in_latency_ms"]) == 1, why


def test_barge_in_during_greeting_clears_truncates_and_answers_once(backends: BackendPool) -> None:
    for o in e2e.run(sc.barge_in_greeting(), backends).values():
        why = o.describe()
        assert o.purposes == ["greeting", "answer"], why
        assert len(o.barge_ins()) == 1 and len(o.summary["clears"]) == 1, why
        assert o.summary["greeting"]["interrupted"], why
        e2e.check_barge_in(o)
        [(_, end)] = o.speech_times()
        [answer] = e2e.answers(o)
        assert end < answer < end + 4.0, why


def test_pauses_shorter_than_end_silence_keep_one_turn(backends: BackendPool) -> None:
    scenario = sc.paused_sentence(gap_s=0.3)
    for o in e2e.run(scenario, backends).values():
        why = o.describe()
        assert o.purposes == ["greeting", "answer"], why
        parts = o.speech_times()
        assert len(parts) == 3, why
        [answer] = e2e.answers(o)
        assert parts[-1][1] < answer, why
        # the one committed turn holds the whole sentence, all three parts
        [said] = o.caller_said_s()
        assert said >= parts[-1][1] - parts[0][0] - 0.1, why
        assert o.summary["clears"] == [], why
