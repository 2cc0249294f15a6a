"""The Smart Turn model on real speech through our 8 kHz path (mediasrv.models.turn_model)."""

from __future__ import annotations

import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from mediasrv.models.turn_model import SmartTurn, load_session

AUDIO = Path(__file__).resolve().parent / "audio"
# "Weasels have eaten our | phone system": word ends from a forced alignment (pocketsphinx).
WEASELS = "speech/en_asterisk_allison_tt-weasels.wav"
CUT_S, END_S = 1.71, 2.95


def read(relpath: str) -> npt.NDArray[np.float32]:
    with wave.open(str(AUDIO / relpath), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def up_to(x: npt.NDArray[np.float32], seconds: float) -> npt.NDArray[np.float32]:
    """The audio until `seconds`, then 200 ms of silence: what a check at the pause sees."""
    return np.concatenate([x[: int(seconds * 8000)], np.zeros(1600, np.float32)])


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    return SmartTurn()


def test_a_finished_sentence_scores_as_complete(model: SmartTurn) -> None:
    assert model.probability(up_to(read(WEASELS), END_S)) > 0.5


def test_the_same_sentence_cut_mid_phrase_scores_as_unfinished(model: SmartTurn) -> None:
    assert model.probability(up_to(read(WEASELS), CUT_S)) < 0.5


def test_probability_is_between_0_and_1_even_for_silence(model: SmartTurn) -> None:
    assert 0.0 <= model.probability(np.zeros(8000, np.float32)) <= 1.0


def test_all_calls_share_one_session() -> None:
    assert load_session() is load_session()


def test_checks_run_at_once_from_several_threads_match_one_by_one(model: SmartTurn) -> None:
    x = read(WEASELS)
    inputs = [up_to(x, s) for s in (1.0, 1.71, 2.2, 2.95)]
    alone = [model.probability(a) for a in inputs]
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-turn-model") as pool:
        together = list(pool.map(model.probability, inputs * 2))
    assert together == alone * 2
