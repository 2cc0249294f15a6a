"""Derive `mediasrv/models/silero_vad_8k.onnx`: silero's 8 kHz branch alone, folded flat.

    .venv/bin/python scripts/derive_vad_8k.py   # needs onnx (requirements-dev.txt)

`silero_vad.onnx` (silero-vad 6.2.3) holds two models behind one `If` on the `sr`
input: 16 kHz (then-branch) and 8 kHz (else-branch), each a tree of 12 more `If`s on
input shapes, with the weights as `Constant` nodes. onnxruntime keeps a session state
(kernels, allocation plan) for each of the 25 subgraphs: measured, loading the file costs
10.5 MB of RSS and a run 90 us of CPU. We only ever run 8 kHz windows of one fixed shape
(`input` (1, 288), `state` (2, 1, 128)), so this script:

1. takes the else-branch as the graph, with those two inputs at those fixed shapes
   (`sr` goes: the branch never reads it) and the same two outputs;
2. lets onnxruntime's basic optimisations (constant folding, which with known shapes
   decides every nested `If` and inlines its branch) rewrite it, and saves the result:
   36 plain nodes and 30 initialisers, standard ONNX (basic optimisations are portable);
3. checks that every window of the recordings under tests/audio scores exactly as the
   original's 8 kHz branch does (output and state, bit for bit), or writes nothing.

Measured after: 1.6 MB to load, 70 us a run (docs/performance.md). Re-run when
silero_vad.onnx is refreshed; tests/test_vad_model.py holds the equality.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "mediasrv" / "models" / "silero_vad.onnx"
TARGET = ROOT / "mediasrv" / "models" / "silero_vad_8k.onnx"
AUDIO = ROOT / "tests" / "audio"
WINDOW, CONTEXT = 256, 32


def eight_khz_branch(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return the else-branch of the top `If` (sr != 16000) as a model of its own."""
    (top_if,) = [n for n in model.graph.node if n.op_type == "If"]
    branch = next(a.g for a in top_if.attribute if a.name == "else_branch")
    nodes = [*branch.node,
             helper.make_node("Identity", [branch.output[0].name], ["output"]),
             helper.make_node("Identity", [branch.output[1].name], ["stateN"])]
    graph = helper.make_graph(
        nodes, "silero_vad_8k",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, CONTEXT + WINDOW]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, 128])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, 1, 128])])
    derived = helper.make_model(graph, opset_imports=model.opset_import,
                                ir_version=model.ir_version,
                                producer_name="mediasrv scripts/derive_vad_8k.py")
    onnx.checker.check_model(derived)
    return derived


def fold(raw: Path, out: Path) -> None:
    """Save onnxruntime's basic optimisation of `raw` (constant folding, `If` inlining)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(out)
    ort.InferenceSession(str(raw), opts, providers=["CPUExecutionProvider"])


def worst_difference(derived: Path) -> tuple[int, float]:
    """Score every window of the 8 kHz recordings with both; return (windows, max |diff|)."""
    original = ort.InferenceSession(str(SOURCE), providers=["CPUExecutionProvider"])
    new = ort.InferenceSession(str(derived), providers=["CPUExecutionProvider"])
    sr = np.array(8000, dtype=np.int64)
    windows, worst = 0, 0.0
    for path in sorted(AUDIO.rglob("*.wav")):
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (8000, 1, 2):
                continue
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32)
        x /= 32768.0
        state_a = state_b = np.zeros((2, 1, 128), np.float32)
        buf = np.zeros((1, CONTEXT + WINDOW), np.float32)
        for i in range(0, len(x) - WINDOW + 1, WINDOW):
            buf = np.concatenate([buf[:, -CONTEXT:], x[None, i : i + WINDOW]], axis=1)
            out_a, state_a = original.run(None, {"input": buf, "state": state_a, "sr": sr})
            out_b, state_b = new.run(None, {"input": buf, "state": state_b})
            worst = max(worst, float(np.abs(out_a - out_b).max()),
                        float(np.abs(state_a - state_b).max()))
            windows += 1
    return windows, worst


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        raw, folded = Path(tmp) / "raw.onnx", Path(tmp) / "folded.onnx"
        onnx.save(eight_khz_branch(onnx.load(str(SOURCE))), str(raw))
        fold(raw, folded)
        windows, worst = worst_difference(folded)
        if worst != 0.0:
            print(f"not written: max |difference| {worst:g} over {windows} windows")
            return 1
        TARGET.write_bytes(folded.read_bytes())
    digest = hashlib.sha256(TARGET.read_bytes()).hexdigest()
    print(f"{TARGET.name}: {TARGET.stat().st_size} bytes, sha256 {digest}; "
          f"identical to the original's 8 kHz branch on {windows} windows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
