"""Silero VAD (ONNX) as a speech classifier for `mediasrv.policy.vad.Vad`: numpy + onnxruntime.

Layer: models.

The model (silero-vad 6.2.3, `silero_vad/data/silero_vad.onnx`, MIT, see
`models/silero_vad.LICENSE`) takes at 8 kHz a window of 256 new samples preceded by the
last 32 samples of the previous window, an LSTM state of shape (2, 1, 128) and the rate.
What runs is its 8 kHz branch alone, flattened (`silero_vad_8k.onnx`, made by
scripts/derive_vad_8k.py, bit-identical scores; see `silero_vad_8k.SOURCE`): the whole
file's 25 subgraphs cost 9 MB more memory and 30 % more CPU a run, for a rate never used.

    input (1, 288) float32 in [-1, 1)   state (2, 1, 128) float32
    -> output (1, 1) speech probability, stateN (2, 1, 128)

Twilio frames are 160 samples, so samples are buffered here and the model runs on every
256 samples (5 frames -> 3 windows). A window with no frame above the noise floor is not
run at all: it scores 0.0, which is where the CPU goes on quiet lines.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

log = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).with_name("silero_vad_8k.onnx")
WINDOW = 256  # samples the 8 kHz model scores per run (32 ms)
CONTEXT = 32  # samples of the previous window the 8 kHz model expects in front
# After this many skipped (quiet) windows the LSTM state is cleared: 8 x 32 ms = 256 ms
# of silence is a new start for the model, and a stale state would bias the next onset.
_RESET_AFTER_IDLE = 8


_sessions: dict[Path, ort.InferenceSession] = {}
_load_lock = threading.Lock()


def load_session(path: Path = MODEL_PATH, *, mem_pattern: bool = True) -> ort.InferenceSession:
    """Load the model once per process; `run` is thread-safe, so all calls share it.

    Once, under a lock: calls that start together must not each load their own copy
    while the first load is still running (`functools.cache` would let them: measured,
    20 calls starting within a second held 20 sessions, ~3 MB each, for their lifetime).
    `mem_pattern`: see `session_options`.
    """
    with _load_lock:
        session = _sessions.get(path)
        if session is None:
            session = _sessions[path] = _new_session(path, mem_pattern)
        return session


def session_options(mem_pattern: bool) -> ort.SessionOptions:
    """Return how a model's session runs: one thread, onnxruntime's memory pattern or not.

    One thread per run: 100 calls on 2 cores parallelise across calls, not inside one.
    The memory pattern is a plan, made on the first run, for one block holding all of a
    run's tensors, allocated from the second run on. It saves the VAD ~5 us of CPU a run
    (~90 us; the block is a few kB). The end-of-turn model's block is 10 MB on top of the
    arena that serves its tensors anyway, held for good from the second check on, at no
    CPU gain (measured: 45-48 ms a check either way): that model runs without it.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = mem_pattern
    opts.log_severity_level = 3  # the graph has unused initialisers; ORT warns at load
    return opts


def _new_session(path: Path, mem_pattern: bool) -> ort.InferenceSession:
    log.info("loading model %s", path)  # also the end-of-turn model's (turn_model)
    return ort.InferenceSession(str(path), session_options(mem_pattern),
                                providers=["CPUExecutionProvider"])


class SileroClassifier:
    """Per-call model state over a shared session; fed 160-sample float frames."""

    def __init__(self, session: ort.InferenceSession | None = None) -> None:
        self._session = session if session is not None else load_session()
        self._buf = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)
        self._fill = CONTEXT
        self._active = False
        self._idle = 0
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._feed: dict[str, Any] = {"input": self._buf, "state": self._state}

    def reset(self) -> None:
        """Forget buffered samples and the LSTM state (after a gap in the audio)."""
        self._buf.fill(0.0)
        self._fill = CONTEXT
        self._active = False
        self._idle = 0
        self._feed["state"] = np.zeros((2, 1, 128), dtype=np.float32)

    def push(self, x: npt.NDArray[np.float32], active: bool) -> float | None:
        """Buffer one frame; return a new speech probability when a window completes."""
        buf = self._buf[0]
        n = x.shape[0]
        space = CONTEXT + WINDOW - self._fill
        self._active = self._active or active
        if n < space:
            buf[self._fill : self._fill + n] = x
            self._fill += n
            return None
        buf[self._fill :] = x[:space]
        prob = self._score()
        buf[:CONTEXT] = buf[WINDOW:]
        rest = n - space
        buf[CONTEXT : CONTEXT + rest] = x[space:]
        self._fill = CONTEXT + rest
        # The leftover samples belong to this frame: the next window inherits its activity.
        self._active = active and rest > 0
        return prob

    def _score(self) -> float:
        if not self._active:
            self._idle += 1
            if self._idle == _RESET_AFTER_IDLE:
                self._feed["state"] = np.zeros((2, 1, 128), dtype=np.float32)
            return 0.0
        self._idle = 0
        out, state = self._session.run(None, self._feed)
        self._feed["state"] = state
        return float(out[0, 0])
