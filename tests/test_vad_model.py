"""The VAD model that runs (silero's 8 kHz branch, flattened by scripts/derive_vad_8k.py)
scores like the silero file it was cut from."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

from mediasrv.models import vad_silero

AUDIO = Path(__file__).resolve().parent / "audio"
ORIGINAL = vad_silero.MODEL_PATH.with_name("silero_vad.onnx")
RECORDINGS = ["speech/en_asterisk_allison_tt-weasels.wav",
              *(f"{p.parent.name}/{p.name}" for kind in ("noise", "music")
                for p in sorted((AUDIO / kind).glob("*.wav"))[:1])]


def read(relpath: str) -> npt.NDArray[np.float32]:
    with wave.open(str(AUDIO / relpath), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def windows(x: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """The model's inputs over `x`: each 256 new samples behind the previous window's last 32."""
    padded = np.concatenate([np.zeros(vad_silero.CONTEXT, np.float32), x])
    step, size = vad_silero.WINDOW, vad_silero.CONTEXT + vad_silero.WINDOW
    return [padded[None, i : i + size] for i in range(0, len(padded) - size + 1, step)]


@pytest.mark.parametrize("relpath", RECORDINGS)
def test_every_window_scores_bit_for_bit_as_the_original_s_8_khz_branch(relpath: str) -> None:
    original = ort.InferenceSession(str(ORIGINAL), providers=["CPUExecutionProvider"])
    derived = vad_silero.load_session()
    sr = np.array(8000, dtype=np.int64)
    state_a = state_b = np.zeros((2, 1, 128), np.float32)
    scores = []
    for window in windows(read(relpath)):
        out_a, state_a = original.run(None, {"input": window, "state": state_a, "sr": sr})
        out_b, state_b = derived.run(None, {"input": window, "state": state_b})
        assert out_b.tobytes() == out_a.tobytes() and state_b.tobytes() == state_a.tobytes()
        scores.append(float(out_a[0, 0]))
    assert len(scores) > 50  # a real recording (3 s or more), not an empty comparison
