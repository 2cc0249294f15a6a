"""Smart Turn v3.2 (ONNX) end-of-turn model over 8 kHz phone audio: numpy + onnxruntime.

Layer: models.

The model (`models/smart-turn-v3.2-cpu.onnx`, int8-quantised, BSD-2-Clause, taken from
the pipecat-ai 1.14.0 wheel; source, version and sha256 in
`models/smart-turn-v3.2-cpu.SOURCE`) is Whisper-tiny's encoder with a classifier:

    input_features (batch, 80, 800) float32   -> logits (batch, 1) float32

Despite its name the output is already a probability (a sigmoid is the graph's last op):
the probability that the speaker has finished their turn.

The model only knows 16 kHz audio. Fed 8 kHz samples as if they were 16 kHz (pipecat
#3844) it hears speech at double speed and an octave up, and answers with confident
nonsense. Here every check upsamples the 8 kHz audio through `mediasrv.models.resample` (band-
limited, so the model hears the phone band and no aliases) before the features of
`mediasrv.models.melspec`.

Cost is per check, not per frame: the features are always those of an 8 s window and the
model always runs on (80, 800), so 1 s of speech costs what 8 s costs (see
`scripts/eot_eval.py --bench`). Running it on fewer frames changes its answers: the
padding carries weight (`scripts/turn_cut_probe.py`, docs/turn-taking.md).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from mediasrv.models import vad_silero
from mediasrv.models.melspec import WINDOW_S, log_mel
from mediasrv.models.resample import upsample_8k_to_16k

MODEL_PATH = Path(__file__).with_name("smart-turn-v3.2-cpu.onnx")
MAX_SAMPLES_8K = 8000 * WINDOW_S  # what the model can see: the last 8 s


def load_session(path: Path = MODEL_PATH) -> ort.InferenceSession:
    """Load the model once per process; `run` is thread-safe, so all calls share it.

    The VAD's loader, so both models run alike: one thread per run (with many calls on
    2 cores, parallelism comes from checks of different calls, not from splitting one);
    without onnxruntime's memory pattern, which would hold 10 MB more for nothing
    (`vad_silero.session_options`).
    """
    return vad_silero.load_session(path, mem_pattern=False)


_warmed: set[Path] = set()
_warm_lock = threading.Lock()


def load_warm_session(path: Path = MODEL_PATH) -> ort.InferenceSession:
    """Load the session and run it once, once per process (at start-up).

    The first run grows onnxruntime's memory arena to the model's working size (measured:
    +30 MB RSS, once): at start-up that is the process's base memory and the first
    caller's pause does not wait for it; under calls it would look like their cost.
    """
    session = load_session(path)
    with _warm_lock:
        if path not in _warmed:
            SmartTurn(session).probability(np.zeros(8000, dtype=np.float32))
            _warmed.add(path)
    return session


class SmartTurn:
    """Scores an utterance (8 kHz floats) as complete or not. Stateless: share one."""

    def __init__(self, session: ort.InferenceSession | None = None) -> None:
        self._session = session if session is not None else load_session()

    def probability(self, audio_8k: npt.NDArray[np.float32]) -> float:
        """Return P(turn complete) for the audio of one utterance, its end last."""
        return self.probability_16k(upsample_8k_to_16k(audio_8k[-MAX_SAMPLES_8K:]))

    def probability_16k(self, audio_16k: npt.NDArray[np.float32]) -> float:
        """Return P(turn complete) for wideband audio (evaluation: the model's own rate)."""
        features = log_mel(audio_16k)[np.newaxis]
        (out,) = self._session.run(None, {"input_features": features})
        return float(out[0, 0])
