"""End to end, the end-of-turn model (TURN_MODEL=smart-turn, local mode): the real app
and local backend, the emulator, real sockets, the real Smart Turn model.

Material where the model behaves on our 8 kHz path (scripts/eot_eval.py -v): Allison's
"Weasels have eaten our | phone system" scores 0.03 cut after "our" and 0.96 whole.
Bounds on call times are generous (loaded machines): they check order, not speed; how
soon the turn ended is read from the server's own account, in audio time.
"""

from __future__ import annotations

import re

import e2e_helpers as e2e

from mediasrv.emulator import catalogue as sc
from mediasrv.testing.harness import BackendPool


def test_a_pause_inside_a_sentence_is_one_turn(backends: BackendPool) -> None:
    o = e2e.run(sc.pause_inside_sentence(pause_s=1.0), backends)["local"]
    why = o.describe()
    assert o.purposes == ["greeting", "answer"], why
    (_, first_end), (second_onset, second_end) = o.speech_times()
    assert second_onset - first_end >= 0.9, why  # the pause is twice END_SILENCE_MS
    [answer] = e2e.answers(o)
    assert second_end < answer < second_end + 4.0, why
    # the one committed turn holds the whole sentence, both parts
    [said] = o.caller_said_s()
    assert said >= second_end - o.speech_times()[0][0] - 0.1, why
    assert o.count("END OF UTTERANCE") == 1, why


def test_without_the_model_the_same_pause_cuts_the_caller_off(backends: BackendPool) -> None:
    o = e2e.run(sc.pause_inside_sentence(pause_s=1.0, turn_model="off"), backends)["local"]
    why = o.describe()
    (_, first_end), (second_onset, _) = o.speech_times()
    first, *_ = e2e.answers(o)
    assert first_end < first < second_onset, why  # answered in the middle of the sentence
    assert o.count("[TURN]") == 0, why


def test_a_finished_sentence_is_answered_sooner_than_the_fixed_silence_would(
    backends: BackendPool,
) -> None:
    o = e2e.run(sc.finished_sentence(end_silence_ms=1000), backends)["local"]
    why = o.describe()
    assert o.purposes == ["greeting", "answer"], why
    # The turn ended on the model's word (asked at 200 ms of silence, ended when its
    # answer came back), before END_SILENCE_MS of silence: both counted in audio.
    [turn] = [line.message for line in o.lines if "[TURN]" in line.message]
    found = re.search(r"\[TURN\] complete after (\d+) ms of silence", turn)
    assert found is not None and 200 <= int(found[1]) < 1000, why
    [(_, end)] = o.speech_times()
    [answer] = e2e.answers(o)
    assert end < answer < end + 4.0, why
