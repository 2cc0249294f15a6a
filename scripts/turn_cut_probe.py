"""Can Smart Turn run on only the frames that hold audio? Probe (rejected 2026-11-30: no).

    PYTHONPATH=. .venv/bin/python scripts/turn_cut_probe.py   # needs onnx (requirements-dev)
    PYTHONPATH=. .venv/bin/python scripts/turn_cut_probe.py --table LEAD,BUCKET[ ...]
                                    # eot_eval's figures, shipped rule, cut model at each

A check always runs the model on (80, 800) features, the utterance zero-padded at the
start of the 8 s window, so 1 s of speech costs what 8 s costs. This script derives, in
memory, a variant of `smart-turn-v3.2-cpu.onnx` with a dynamic time axis:

- the input's 800 becomes `frames`; the attention's reshapes get -1 where they had 400
  (`val_21`, the only constant that holds the length);
- the encoder's positional embedding (400 x 384, added once after the convolutions) is
  sliced to its LAST frames/2 rows, since the speech sits at the end of the window.

At 800 frames it answers as the shipped model, bit for bit (asserted below). It is then
fed the last n columns of the SAME 8 s features (computed as today, then cut): n = the
audio's frames plus LEAD frames of the padding kept, rounded up to BUCKET frames (100
frames = 1 s), at most 800. Audio: every check the shipped rule and the threshold sweep
of `eot_eval.py` ask (answered 0, so each asks up to its cap), `eot_eval.py --probe`'s
sentences whole and cut, and the first 1/2/4/8 s of every 8 kHz recording under
tests/audio. Printed per (LEAD, BUCKET): |p(cut) - p(shipped)|, decisions that change at
0.9 (the shipped threshold) and 0.5, and the cut model's CPU per check (thread time,
median of a per-length curve measured here).

Why it fails: the padding is not inert. The padding's frames hold ~10-80 % of the
classifier's attention-pooling weight and their states depend on the utterance (full
attention, and the padding's features are the utterance's floor, max - 80 dB), so the
answer keeps moving until the whole window is back (docs/turn-taking.md, "Cutting the
window").
"""

from __future__ import annotations

import os
import sys
import time
import wave
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eot_eval as E  # noqa: E402  (a script beside this one, not a package)

from mediasrv.models import turn_model, vad_silero  # noqa: E402
from mediasrv.models.melspec import HOP, N_FRAMES, log_mel  # noqa: E402
from mediasrv.models.resample import upsample_8k_to_16k  # noqa: E402

LENGTHS = range(100, N_FRAMES + 1, 100)
SETTINGS = ((0, 100), (100, 100), (200, 100), (200, 200), (300, 200), (400, 200))


def dynamic_time_axis(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return the model with a dynamic time axis and the last frames/2 positions."""
    g = model.graph
    g.input[0].type.tensor_type.shape.dim[2].dim_param = "frames"
    (length,) = [i for i in g.initializer if i.name == "val_21"]
    assert numpy_helper.to_array(length).tolist() == [400]
    length.CopyFrom(numpy_helper.from_array(np.array([-1], np.int64), "val_21"))
    (add,) = [n for n in g.node if "inner.encoder.embed_positions.weight" in n.input]
    at = list(g.node).index(add)
    positions = [helper.make_node("Shape", [add.input[0]], ["cut_len"], start=1, end=2),
                 helper.make_node("Neg", ["cut_len"], ["cut_from"]),
                 helper.make_node("Slice", [add.input[1], "cut_from", "val_50"],  # to the end
                                  ["cut_positions"])]
    add.input[1] = "cut_positions"
    for k, node in enumerate(positions):
        g.node.insert(at + k, node)
    del g.value_info[:]
    onnx.checker.check_model(model)
    return model


def check_audios() -> list[tuple[str, E.Floats]]:
    """Return (source, 8 kHz audio) of every distinct check; see the module docstring."""
    seen: dict[bytes, tuple[str, E.Floats]] = {}

    class Recorder:
        def probability(self, audio: E.Floats) -> float:
            seen.setdefault(audio.tobytes(), ("eot", audio.copy()))
            return 0.0

    score = E.Scorer.__new__(E.Scorer)  # its cache, our model
    score._model, score._seen, score.runs = Recorder(), {}, 0  # type: ignore[assignment]
    for rule in [E.shipped_rule(), *E.sweep_rules()[1:8]]:
        E.evaluate(rule, score, E.CheckTime(100, 100))
    for s in E.SENTENCES:
        rate, x = E.read_wav(s.path)
        for t in (s.end_s, s.cut_s):
            a = E.check_audio(x, t, rate)
            seen.setdefault(a.tobytes(), ("probe", a if rate == 8000 else E.phone_band(a)))
    for path in sorted(E.AUDIO.rglob("*.wav")):
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (8000, 1, 2):
                continue
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32)
        for seconds in (1, 2, 4, 8):
            if x.shape[0] >= seconds * 4000:  # at least half of it
                a = x[: seconds * 8000] / np.float32(32768.0)
                seen.setdefault(a.tobytes(), ("clip", a))
    return list(seen.values())


def frames_of(audio_8k: E.Floats) -> int:
    return min(N_FRAMES, -(-2 * audio_8k.shape[0] // HOP))  # 16 kHz samples / hop, rounded up


def cut_to(frames: int, lead: int, bucket: int) -> int:
    return min(N_FRAMES, -(-(frames + lead) // bucket) * bucket)


def cut_session() -> ort.InferenceSession:
    derived = dynamic_time_axis(onnx.load(str(turn_model.MODEL_PATH)))
    return ort.InferenceSession(derived.SerializeToString(), vad_silero.session_options(False),
                                providers=["CPUExecutionProvider"])


class CutTurn:
    """The cut model where eot_eval's Scorer expects SmartTurn: `probability(audio_8k)`."""

    def __init__(self, session: ort.InferenceSession, lead: int, bucket: int) -> None:
        self._session, self._lead, self._bucket = session, lead, bucket

    def probability(self, audio_8k: E.Floats) -> float:
        audio_8k = audio_8k[-turn_model.MAX_SAMPLES_8K :]
        f = log_mel(upsample_8k_to_16k(audio_8k))[np.newaxis]
        n = cut_to(frames_of(audio_8k), self._lead, self._bucket)
        (out,) = self._session.run(None, {"input_features": np.ascontiguousarray(f[:, :, -n:])})
        return float(out[0, 0])


def table(settings: list[tuple[int, int]]) -> None:
    """Print eot_eval's figures for the shipped rule: the shipped model, then each cut."""
    rule, session = E.shipped_rule(), cut_session()
    print(f"shipped rule {E.rule_name(rule)}, check {E.CHECK_TIMES[0]} ms; load "
          f"{os.getloadavg()[0]:.1f}")
    print("model            | splits 0/400/700/1200 250/300 | openings 150-400 | "
          "latency p50/p95 | model ends | chan3 found, inside")
    for lead, bucket in [(-1, 0), *settings]:
        score = E.Scorer()
        if lead >= 0:
            score._model = CutTurn(session, lead, bucket)  # type: ignore[assignment]
        f = E.evaluate(rule, score, E.CHECK_TIMES[0])
        splits, short, openings = ("/".join(str(v) for v in f.splits[k].values())
                                   for k in ("sentences", "short", "openings"))
        by_model = sum(v < rule.max_silence_ms - 10 for v in f.latency) if rule else 0
        name = "shipped (800)" if lead < 0 else f"cut {lead}/{bucket}"
        print(f"{name:16} | {splits:>9} {short:>4} | {openings:>11} | {E.pct(f.latency, 50):4.0f}"
              f" / {E.pct(f.latency, 95):4.0f} | {by_model:2} of {len(f.latency)} | "
              f"{f.found}/{len(E.CHAN3_SEGMENTS)}, {f.inside}")


def main() -> None:
    shipped = vad_silero.load_session(turn_model.MODEL_PATH, mem_pattern=False)
    cut = cut_session()
    rows = []  # (source, audio frames, p shipped, {n: p cut})
    for source, audio in check_audios():
        audio = audio[-turn_model.MAX_SAMPLES_8K :]
        f = log_mel(upsample_8k_to_16k(audio))[np.newaxis]
        p = float(shipped.run(None, {"input_features": f})[0][0, 0])
        cuts = {n: float(cut.run(None, {"input_features": np.ascontiguousarray(f[:, :, -n:])})
                         [0][0, 0]) for n in LENGTHS}
        assert cuts[N_FRAMES] == p, "the derived model must equal the shipped one at 800"
        rows.append((source, frames_of(audio), p, cuts))
    _, speech = E.read_wav("speech/en_asterisk_allison_demo-congrats.wav")  # as --bench
    f = log_mel(upsample_8k_to_16k(np.tile(speech, 3)[: turn_model.MAX_SAMPLES_8K]))[None]
    cost: dict[int, list[float]] = {n: [] for n in LENGTHS}
    for k in range(30):  # lengths interleaved, the order alternated: load drifts
        for n in LENGTHS if k % 2 else reversed(LENGTHS):
            x = np.ascontiguousarray(f[:, :, -n:])
            t0 = time.thread_time()
            cut.run(None, {"input_features": x})
            cost[n].append((time.thread_time() - t0) * 1000)
    ms = {n: float(np.median(v)) for n, v in cost.items()}
    print(f"{len(rows)} audios ({sum(r[0] == 'eot' for r in rows)} eot_eval checks); cut model "
          "ms per run by frames: " + " ".join(f"{n}:{v:.1f}" for n, v in ms.items())
          + f"; load {os.getloadavg()[0]:.1f}")
    print("lead bucket | eot checks: model ms, |dp| p50 p90 max, flips @0.9 (down) @0.5 | "
          "all audios: |dp| max, flips @0.9 @0.5")
    for lead, bucket in SETTINGS:
        line = f"{lead:4} {bucket:6} |"
        for part in ("eot", "all"):
            sel = [r for r in rows if part == "all" or r[0] == part]
            pc = [(r[2], r[3][cut_to(r[1], lead, bucket)]) for r in sel]
            dp = [abs(a - b) for a, b in pc]
            f9 = sum((a >= 0.9) != (b >= 0.9) for a, b in pc)
            f5 = sum((a >= 0.5) != (b >= 0.5) for a, b in pc)
            if part == "eot":
                down = sum(a >= 0.9 > b for a, b in pc)
                spent = np.mean([ms[cut_to(r[1], lead, bucket)] for r in sel])
                line += (f" {spent:5.1f} (800: {ms[N_FRAMES]:.1f}), {np.median(dp):.3f} "
                         f"{np.percentile(dp, 90):.3f} {max(dp):.3f}, {f9:2} ({down}) {f5:2} |")
            else:
                line += f" {max(dp):.3f}, {f9:2} {f5:2} of {len(sel)}"
        print(line)


if __name__ == "__main__":
    if "--table" in sys.argv:
        table([(int(a), int(b)) for a, b in (v.split(",") for v in sys.argv[2:])])
    else:
        main()
