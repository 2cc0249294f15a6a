"""Measure the Smart Turn end-of-turn model and policy on real speech, 8 kHz phone path.

    PYTHONPATH=. .venv/bin/python scripts/eot_eval.py [-v] [--no-highpass] [--check-ms=MS,...]
                                    [--early=MS,...] [--early-min=MS,...]
                                    # off vs the shipped rule (the server's default settings)
    PYTHONPATH=. .venv/bin/python scripts/eot_eval.py --sweep   # every variant tried
    PYTHONPATH=. .venv/bin/python scripts/eot_eval.py --e2e [--runs=3] [--parallel=5] [-v]
                                    [--no-off] [--early=MS,...] [--env=NAME=VALUE+NAME=VALUE]
                                    # response latency through the real server
    PYTHONPATH=. .venv/bin/python scripts/eot_eval.py --probe    # P(complete): 16 vs 8 kHz
    PYTHONPATH=. .venv/bin/python scripts/eot_eval.py --bench    # cost per check
    PYTHONPATH=. SCRATCH_VENV/bin/python scripts/eot_eval.py --features  # needs transformers

Material: sentences of real speech with a forced-aligned word boundary inside them (our
8 kHz IVR recordings; 16 kHz LibriVox / pocketsphinx recordings, brought to the phone band
first), the same sentences cut after a short opening (their first 0.4-0.6 s of words),
and pocketsphinx's conversational recording with its labelled speech segments.

The turn-taking table drives, frame by frame through mu-law like a Twilio call, the real
TurnPolicy (silero VAD, echo guard, end of turn) as the rx loop does. Each check the policy
asks for is answered `--check-ms` of audio later (default 60-140: drawn per check; the
server's checks take that long end to end), through one worker that runs one check at a
time, as the server's: speech that comes back before the answer makes it stale. At 0 the
check is free, which hid splits (docs/turn-taking.md, the early check). Each distinct
audio is scored once: variants share answers. A rule is `None` (TURN_MODEL=off: the VAD's
500 ms end silence) or an EndTurnConfig. Pauses of 250-1,200 ms are inserted at the
sentence's boundary, 150-400 ms after its opening: a turn end before the sentence's last
word is a split. Latency is from the last frame the VAD called speech to the turn end
(the check's time included). `--e2e` measures instead, through the real server and the
emulator, from the caller's last loud frame to `response.create`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mediasrv.audio import FRAME_MS, pcm16_to_ulaw, to_pcm16, ulaw_to_pcm16
from mediasrv.models.melspec import log_mel
from mediasrv.models.resample import downsample_16k_to_8k, upsample_8k_to_16k

if TYPE_CHECKING:
    from mediasrv.emulator.scenarios import Scenario
    from mediasrv.policy.endturn import EndTurnConfig
    from mediasrv.testing.harness import BackendPool

Floats = npt.NDArray[np.float32]
AUDIO = Path(__file__).resolve().parents[1] / "tests" / "audio"
PAUSES_MS = (0, 400, 700, 1200)
SHORT_PAUSES_MS = (250, 300)  # at the same cut: splits only (latency: PAUSES_MS)
HISS_DBFS = -70.0  # line hiss between words: what a quiet phone line carries
TAIL_S = 2.5
CHAN3 = "speech/en_pocketsphinx_chan3_conversation.wav"
# Speech segments labelled for pocketsphinx's endpointer test (test/unit/test_endpointer.c).
CHAN3_SEGMENTS = ((0.24, 1.80), (2.88, 12.12), (12.51, 15.75), (16.44, 20.87))
FOUND_WITHIN_S = 0.4
# --early=MS: the early check at MS of silence instead of the shipped TURN_EARLY_CHECK_MS
# (0: without it), in the frame-level table as a third rule and in --e2e.
EARLY_MS = [int(v) for v in next(
    (a.split("=")[1] for a in sys.argv if a.startswith("--early=")), "").split(",") if v]
# --early-min=MS[,MS...]: each --early rule with the early check asked only after this much
# speech in the turn (EndTurnConfig.early_min_speech_ms); default: the shipped value.
EARLY_MIN_MS = [int(v) for v in next(
    (a.split("=")[1] for a in sys.argv if a.startswith("--early-min=")), "-1").split(",")]
HIGHPASS = "--no-highpass" not in sys.argv  # G.712's 300 Hz edge on the 16 kHz material


@dataclass(frozen=True)
class Sentence:
    path: str
    cut_s: float  # end of a word inside the sentence (forced alignment)
    end_s: float  # end of its last word
    words: str  # ... up to the cut | after it


SENTENCES = (
    Sentence("speech/en_asterisk_allison_conf-onlyperson.wav", 1.16, 2.93,
             "you are currently the | only person in this conference"),
    Sentence("speech/en_asterisk_allison_queue-periodic-announce.wav", 1.45, 2.33,
             "all of our representatives are | currently busy"),
    Sentence("speech/en_asterisk_allison_tt-weasels.wav", 1.71, 2.95,
             "weasels have eaten our | phone system"),
    Sentence("speech/en_asterisk_allison_vm-intro.wav", 1.61, 2.14,
             "please leave your message after the | tone"),
    Sentence("wideband/speech/en_librivox_sense-and-sensibility_0870.wav", 2.21, 6.79,
             "and mister john dashwood had then | leisure to consider ... for them"),
    Sentence("wideband/speech/en_librivox_sense-and-sensibility_0880.wav", 1.30, 2.74,
             "he was not an | ill disposed young man"),
    Sentence("wideband/speech/en_librivox_sense-and-sensibility_0890.wav", 2.39, 5.09,
             "unless to be rather cold hearted and | rather selfish is to be ill disposed"),
    Sentence("wideband/speech/en_librivox_sense-and-sensibility_0920.wav", 3.36, 5.83,
             "had he married a more amiable woman he might have been | made ... than he was"),
    Sentence("wideband/speech/en_librivox_sense-and-sensibility_0930.wav", 1.33, 3.02,
             "he might even have been | made amiable himself"),
    Sentence("wideband/speech/en_pocketsphinx_forever.wav", 1.97, 3.35,
             "feels like these days go on | forever"),
)


# Short openings: the first 0.3-0.6 s of speech of a sentence above ("Yes, | I would
# like..."), where a caller pauses briefly and goes on; pauses of 150-400 ms after them
# (the VAD's end lags a word's end by up to ~150 ms: a 300 ms pause is often heard as
# less than the 200 ms check silence).
# A turn end before the sentence's last word is a split. Word ends: the LibriVox .json
# files of pocketsphinx 5.1.1's test data; pocketsphinx 5.1.1's aligner (set_align_text,
# en-us model, 8 kHz prompts upsampled to 16 kHz) for the others.
OPENING_PAUSES_MS = (150, 200, 250, 300, 350, 400)
_OPENING_CUTS = {  # path -> end of the opening's last word (s), and its words
    "speech/en_asterisk_allison_conf-onlyperson.wav": (0.41, "you are"),
    "speech/en_asterisk_allison_queue-periodic-announce.wav": (0.53, "all of our"),
    "speech/en_asterisk_allison_vm-intro.wav": (0.43, "please"),
    "wideband/speech/en_librivox_sense-and-sensibility_0870.wav": (0.63, "and mister"),
    "wideband/speech/en_librivox_sense-and-sensibility_0880.wav": (0.56, "he was"),
    "wideband/speech/en_librivox_sense-and-sensibility_0890.wav": (0.59, "unless"),
    "wideband/speech/en_librivox_sense-and-sensibility_0920.wav": (0.54, "had he"),
    "wideband/speech/en_librivox_sense-and-sensibility_0930.wav": (0.64, "he might"),
    "wideband/speech/en_pocketsphinx_forever.wav": (0.44, "feels"),
}
OPENINGS = tuple(dataclasses.replace(s, cut_s=_OPENING_CUTS[s.path][0],
                                     words=f"{_OPENING_CUTS[s.path][1]} | ...")
                 for s in SENTENCES if s.path in _OPENING_CUTS)


def read_wav(relpath: str) -> tuple[int, Floats]:
    """Return (rate, float samples) of a mono 16-bit WAV under tests/audio."""
    with wave.open(str(AUDIO / relpath), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return w.getframerate(), pcm.astype(np.float32) / 32768.0


def _highpass_300hz_8k() -> npt.NDArray[np.float64]:
    n = np.arange(161) - 80
    low = 2 * (300 / 8000) * np.sinc(2 * (300 / 8000) * n) * np.kaiser(161, 6.0)
    high = -low / low.sum()
    high[80] += 1.0  # spectral inversion of the low-pass
    return high


_HIGHPASS = _highpass_300hz_8k()


def mu_law(x8: Floats) -> Floats:
    """Return x8 after a G.711 mu-law round trip, as the phone line delivers it."""
    return ulaw_to_pcm16(pcm16_to_ulaw(to_pcm16(x8))).astype(np.float32) / 32768.0


def phone_band(x16: Floats, highpass: bool = True) -> Floats:
    """Return 16 kHz audio as a phone carries it: 8 kHz, mu-law, band 300-3,850 Hz
    (G.712's 300 Hz lower edge only with `highpass`: many mobile/VoIP paths pass lower)."""
    x8 = downsample_16k_to_8k(x16)
    if highpass:
        x8 = np.convolve(x8, _HIGHPASS)[80 : 80 + x8.shape[0]].astype(np.float32)
    return mu_law(x8)


def hiss(seconds: float, rate: int, seed: int) -> Floats:
    noise = np.random.default_rng(seed).standard_normal(int(seconds * rate))
    return (noise * 10 ** (HISS_DBFS / 20)).astype(np.float32)


def sentence_8k(s: Sentence) -> Floats:
    rate, x = read_wav(s.path)
    return x if rate == 8000 else phone_band(x, HIGHPASS)


def with_pause(s: Sentence, pause_ms: int, seed: int = 1) -> tuple[Floats, float]:
    """Return 8 kHz audio: 0.5 s hiss, the sentence with a pause at the cut, 2.5 s hiss;
    and the time its last word ends."""
    x = sentence_8k(s)
    cut, end = int(s.cut_s * 8000), int(s.end_s * 8000)
    parts = [hiss(0.5, 8000, seed), x[:cut], hiss(pause_ms / 1000, 8000, seed + 1),
             x[cut:end], hiss(TAIL_S, 8000, seed + 2)]
    return np.concatenate(parts), 0.5 + s.end_s + pause_ms / 1000


def check_audio(x: Floats, seconds: float, rate: int) -> Floats:
    """What a check 200 ms into a pause sees: the audio up to `seconds`, then 200 ms hiss."""
    return np.concatenate([x[: int(seconds * rate)], hiss(0.2, rate, 9)])


def probe() -> None:
    """Print P(complete) for each sentence whole and cut mid-phrase, 16 kHz vs 8 kHz."""
    from mediasrv.models.turn_model import SmartTurn

    model = SmartTurn()
    print("P(complete): whole sentence / cut at the '|'   (threshold 0.5)")
    print("  16k: wideband original; 8k: phone band (mu-law, 0-3.85 kHz) through our")
    print("  upsampler; 8k-hp: the same with G.712's 300 Hz high-pass; 8k-as-16k: the 8k-hp")
    print("  samples given to the model as if they were 16 kHz (pipecat #3844)")
    cols = ("16k", "8k", "8k-hp", "8k-as-16k")
    print(f"{'sentence':56} " + " ".join(f"{c:>11}" for c in cols))
    for s in SENTENCES:
        rate, x = read_wav(s.path)
        cells = dict.fromkeys(cols, "")
        for t in (s.end_s, s.cut_s):
            a = check_audio(x, t, rate)
            if rate == 8000:
                cells["16k"] = cells["8k-hp"] = "-"
                cells["8k"] += f"{model.probability(a):5.2f}"
                cells["8k-as-16k"] += f"{model.probability_16k(a):5.2f}"
                continue
            phone, hp = phone_band(a, highpass=False), phone_band(a)
            cells["16k"] += f"{model.probability_16k(a):5.2f}"
            cells["8k"] += f"{model.probability(phone):5.2f}"
            cells["8k-hp"] += f"{model.probability(hp):5.2f}"
            cells["8k-as-16k"] += f"{model.probability_16k(hp):5.2f}"
        print(f"{s.words[:56]:56} " + " ".join(f"{c:>11}" for c in cells.values()))


@dataclass
class Run:
    ends: list[float]  # turn ends answered (EndOfUtterance), s of audio
    last_speech: list[float]  # the last speech frame before each end
    checks: list[tuple[float, float]]  # (time asked, probability) of every check


class Scorer:
    """The model, each distinct audio scored once: rules that ask the same question share
    the answer, so a sweep costs one pass of checks."""

    def __init__(self) -> None:
        from mediasrv.models.turn_model import SmartTurn

        self._model = SmartTurn()
        self._seen: dict[bytes, float] = {}
        self.runs = 0

    def __call__(self, audio: Floats) -> float:
        key = hashlib.sha1(audio.tobytes()).digest()
        if key not in self._seen:
            self._seen[key] = self._model.probability(audio)
            self.runs += 1
        return self._seen[key]


@dataclass(frozen=True)
class CheckTime:
    """How long a check takes, in audio: `low` ms, or drawn from `low`-`high` per check
    (seeded by the audio, so every rule that asks the same question waits as long)."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> CheckTime:
        low, _, high = text.partition("-")
        return cls(int(low), int(high or low))

    def ms(self, audio: Floats) -> float:
        if self.high == self.low:
            return float(self.low)
        seed = int.from_bytes(hashlib.sha1(audio.tobytes()).digest()[:8], "little")
        return float(np.random.default_rng(seed).uniform(self.low, self.high))

    def __str__(self) -> str:
        return f"{self.low}" if self.high == self.low else f"{self.low}-{self.high}"


# --check-ms=N[,N...]: each check's answer reaches the policy N ms of audio after it was
# asked (A-B: drawn per check); several values: the table once for each. The server's
# checks take 60-140 ms of wall time end to end (5 calls at once on this 2-core machine).
CHECK_TIMES = [CheckTime.parse(v) for v in next(
    (a.split("=")[1] for a in sys.argv if a.startswith("--check-ms=")), "60-140").split(",")]


def drive(x8: Floats, rule: EndTurnConfig | None, score: Scorer,
          check_time: CheckTime = CheckTime(0, 0)) -> Run:
    """Feed x8 as 20 ms mu-law frames to the real TurnPolicy (VAD, echo guard, end of
    turn) as the rx loop does; collect the answered turns. A check is answered as the
    server's worker would: one at a time, each `check_time` of audio after it started, and
    taken after the first frame at or past that (the rx loop reads Twilio, then answers):
    speech that comes back meanwhile makes the answer stale, as in the server."""
    from mediasrv.policy.turns import EndOfUtterance, TurnConfig, TurnPolicy

    policy = TurnPolicy(TurnConfig(end_turn=rule))
    ulaw = pcm16_to_ulaw(to_pcm16(x8))
    run, last_speech = Run([], [], []), 0.0
    out: list[tuple[float, int, float]] = []  # (answered at, seq, P), in answer order
    free_at = 0.0  # when the one worker is done with the checks it has
    for k in range(len(ulaw) // 160):
        now = round((k + 1) * 0.020, 3)
        step = policy.feed(bytes(ulaw[k * 160 : (k + 1) * 160]), now, ai_playing=False,
                           closing=False)
        if policy.vad.is_speech:
            last_speech = now
        events = list(step.events)
        if step.check is not None:
            p = score(step.check.audio)
            run.checks.append((now, round(p, 2)))
            free_at = max(now, free_at) + check_time.ms(step.check.audio) / 1000
            out.append((free_at, step.check.seq, p))
        while out and out[0][0] <= now + 1e-9:
            _, seq, p = out.pop(0)
            events += policy.on_check_result(seq, p, now).events
        for event in events:
            if isinstance(event, EndOfUtterance):
                run.ends.append(now)
                run.last_speech.append(last_speech)
    return run


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Figures:
    # runs with a turn end before the sentence's last word, by material and pause
    splits: dict[str, dict[int, int]]
    latency: list[float]  # per final end: last speech frame -> turn end (ms of audio)
    found: int = 0  # chan3: labelled ends with a turn end within 400 ms after them
    inside: int = 0  # chan3: turn ends inside a labelled segment


def materials() -> dict[str, tuple[tuple[Sentence, ...], tuple[int, ...]]]:
    """Return the split tests: the sentences with pauses at their cut (latency from these),
    short pauses at the same cut, and short pauses after a short opening."""
    return {"sentences": (SENTENCES, PAUSES_MS), "short": (SENTENCES, SHORT_PAUSES_MS),
            "openings": (OPENINGS, OPENING_PAUSES_MS)}


def evaluate(rule: EndTurnConfig | None, score: Scorer, check_time: CheckTime) -> Figures:
    figures = Figures({}, [])
    for name, (material, pauses) in materials().items():
        splits = figures.splits[name] = dict.fromkeys(pauses, 0)
        for s in material:
            for pause in pauses:
                x8, end_s = with_pause(s, pause)
                run = drive(x8, rule, score, check_time)
                splits[pause] += any(e < end_s for e in run.ends)
                final = [i for i, e in enumerate(run.ends) if e >= end_s]
                if final and name == "sentences":
                    i = final[0]
                    figures.latency.append((run.ends[i] - run.last_speech[i]) * 1000)
                if "-v" in sys.argv:
                    ends = [round(e, 2) for e in run.ends]
                    print(f"    {Path(s.path).name[:40]:40} {pause:4} ms: ends {ends} checks "
                          f"{run.checks}")
    rate, x = read_wav(CHAN3)
    assert rate == 8000
    run = drive(np.concatenate([x, hiss(TAIL_S, 8000, 3)]), rule, score, check_time)
    figures.found = sum(
        any(0 <= e - b <= FOUND_WITHIN_S for e in run.ends) for _, b in CHAN3_SEGMENTS)
    figures.inside = sum(any(a < e < b for a, b in CHAN3_SEGMENTS) for e in run.ends)
    if "-v" in sys.argv:
        print(f"    chan3 ends: {[round(e, 2) for e in run.ends]} checks {run.checks}")
    return figures


def rule_name(rule: EndTurnConfig | None) -> str:
    if rule is None:
        return "off: fixed 500 ms silence"
    falls = "" if rule.threshold_at_cap is None else f"->{rule.threshold_at_cap:g}"
    pauses = "" if rule.max_pause_heard_ms is None else f" pauses<={rule.max_pause_heard_ms}"
    early = "" if rule.early_check_ms is None else f" early {rule.early_check_ms}"
    if rule.early_check_ms is not None and rule.early_min_speech_ms:
        early += f" after {rule.early_min_speech_ms}"
    return (f"{rule.check_silence_ms}/{rule.max_silence_ms} @{rule.threshold:g}{falls}{pauses}"
            f"{early}")


def shipped_rule() -> EndTurnConfig | None:
    """The rule the server runs with its default settings."""
    from mediasrv.web.settings import load_settings
    from mediasrv.web.wiring import call_config

    return call_config(load_settings({})).turn.end_turn


def sweep_rules() -> list[EndTurnConfig | None]:
    """Phase 1's rule, higher thresholds, lower caps, thresholds that fall with silence."""
    from mediasrv.policy.endturn import EndTurnConfig as C

    rules: list[EndTurnConfig | None] = [None]
    rules += [C(threshold=t) for t in (0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95)]
    rules += [C(max_silence_ms=m, threshold=0.9) for m in (1200, 1300, 1400, 1500, 2000)]
    rules += [C(check_silence_ms=c, threshold=0.9) for c in (100, 300, 400)]
    rules += [C(threshold=0.9, threshold_at_cap=f) for f in (0.7, 0.5, 0.2)]
    rules += [C(threshold=0.5, threshold_at_cap=0.2), C(threshold=0.95, threshold_at_cap=0.5)]
    rules += [C(threshold=t, max_silence_ms=1500, max_pause_heard_ms=k)
              for t in (0.5, 0.9) for k in (100, 200, 400)]
    return rules


def table(rules: list[EndTurnConfig | None]) -> None:
    n, m = len(SENTENCES), len(OPENINGS)
    band = "300-3850 Hz" if HIGHPASS else "0-3850 Hz"
    print(f"{n} sentences (16 kHz ones in the {band} phone band) x pauses {PAUSES_MS} and "
          f"{SHORT_PAUSES_MS} ms inside; {m} short openings x pauses {OPENING_PAUSES_MS} ms "
          f"after them; chan3, "
          f"{len(CHAN3_SEGMENTS)} labelled ends; load {os.getloadavg()}")
    print("rule = check silence / cap ms @ threshold [-> threshold at the cap]; check = its "
          "time in the loop (ms of audio); latency = last speech frame -> turn end")
    head = ("splits 0/400/700/1200 250/300 | openings 150-400 | latency p50/p95 ms | "
            "model ends | chan3 ends")
    print(f"{'rule':44} {'check':>6} {head}")
    score = Scorer()
    for check_time in CHECK_TIMES:
        for rule in rules:
            f = evaluate(rule, score, check_time)
            splits, short, openings = ("/".join(str(v) for v in f.splits[k].values())
                                       for k in ("sentences", "short", "openings"))
            cap = 500 if rule is None else rule.max_silence_ms
            by_model = sum(v < cap - FRAME_MS / 2 for v in f.latency)
            print(f"{rule_name(rule):44} {check_time!s:>6} {splits:>9} {short:>4} of {n} | "
                  f"{openings:>11} of {m} | {pct(f.latency, 50):4.0f} / "
                  f"{pct(f.latency, 95):4.0f} | "
                  f"{by_model:2} of {len(f.latency)} | {f.found}/{len(CHAN3_SEGMENTS)} found "
                  f"<= 400 ms, {f.inside} inside a segment")
    print(f"{score.runs} distinct checks run; load {os.getloadavg()}")


def e2e_variants() -> list[tuple[str, dict[str, str]]]:
    """Return the rules --e2e compares, each as the environment the server would get: the
    model off, the shipped default, then --early=MS and --env=NAME=VALUE[+NAME=VALUE]
    (through the settings' own checks, as the env vars would be)."""
    variants = [] if "--no-off" in sys.argv else [("off", {"TURN_MODEL": "off"})]
    variants.append(("default", {}))
    variants += [(f"early {ms}", {"TURN_EARLY_CHECK_MS": str(ms)}) for ms in EARLY_MS]
    for arg in sys.argv:
        if arg.startswith("--env="):
            pairs = [kv.split("=", 1) for kv in arg[len("--env="):].split("+")]
            variants.append((" ".join(v for _, v in pairs), dict(pairs)))
    return variants


def write_whole_sentences(folder: Path) -> list[tuple[str, float]]:
    """Write each sentence, cut at its last word as in the table, as an 8 kHz WAV."""
    (folder / "speech").mkdir()
    clips = []
    for s in SENTENCES:
        x8 = sentence_8k(s)[: int(s.end_s * 8000)]
        name = f"speech/{Path(s.path).stem}.wav"
        with wave.open(str(folder / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(to_pcm16(x8).tobytes())
        clips.append((name, s.end_s))
    return clips


def e2e(runs: int, parallel: int) -> None:
    """Place each whole sentence as a call through the real server, for each rule, the
    rules' batches of `parallel` calls alternated (load drifts over a run): response
    latency = the caller's last loud frame (the emulator's) -> TRIGGER_RESPONSE (logged as
    `response.create` is sent), on one clock; the network is instant."""
    import logging
    import tempfile

    from mediasrv.emulator.network import NetworkTiming
    from mediasrv.emulator.scenarios import Clip, Scenario
    from mediasrv.testing import harness

    logging.getLogger("mediasrv").setLevel(logging.INFO)
    variants = e2e_variants()
    with tempfile.TemporaryDirectory() as tmp, harness.BackendPool() as backends:
        clips = write_whole_sentences(Path(tmp))
        print(f"{len(clips)} whole sentences x {runs} runs per rule, {parallel} calls at once, "
              f"rules alternated by batch; load {os.getloadavg()}")
        jobs = [Scenario(f"eot_{Path(name).stem}_{run}", "a whole sentence",
                         clips=(Clip(name, 7.0 + 0.137 * run),), duration=7.0 + length + 2.5,
                         overrides={"silence_timeout_s": 120.0}, modes=("local",),
                         network=NetworkTiming.instant())
                for run in range(runs) for name, length in clips]
        tallies = {label: E2eTally() for label, _ in variants}
        for i in range(0, len(jobs), parallel):
            for label, env in variants:
                tallies[label].batch(jobs[i : i + parallel], env, backends, Path(tmp))
        for label, tally in tallies.items():
            tally.report(label)


class E2eTally:
    """One rule's end-to-end latencies, batch by batch."""

    def __init__(self) -> None:
        self.latency: list[float] = []
        self.early = self.missing = 0
        self.loads: list[float] = []

    def batch(self, jobs: list[Scenario], env: dict[str, str], backends: BackendPool,
              audio_dir: Path) -> None:
        import re
        from contextlib import ExitStack

        from mediasrv.testing import harness

        trigger = re.compile(r"TRIGGER_RESPONSE #\d+ purpose=answer")
        self.loads.append(os.getloadavg()[0])
        with harness.LogCapture() as logs, ExitStack() as stack:
            specs = []
            for job in jobs:
                settings = harness.scenario_settings(job, "local", backends.url_for(job), env)
                server = stack.enter_context(harness.LocalServer(settings))
                specs.append((server.base_url, job, "local"))
            outcomes = harness.run_calls(specs, logs, backends, audio_dir=audio_dir)
        for o in outcomes:
            end = o.speech_times()[-1][1]
            asked = [ln.mono - o.t0 for ln in o.lines if trigger.search(ln.message)]
            self.early += any(t < end for t in asked)
            after = [t for t in asked if t >= end]
            if after:
                self.latency.append((after[0] - end) * 1000)
            else:
                self.missing += 1
            if "-v" in sys.argv:
                turn = [ln.message.split("] ", 1)[-1] for ln in o.lines
                        if "[TURN]" in ln.message or "END OF UTT" in ln.message]
                print(f"    {o.scenario.name[4:44]:40} end {end:6.2f} asked "
                      f"{[round(t, 2) for t in asked]} {turn}")

    def report(self, label: str) -> None:
        print(f"  {label:24} last loud frame -> response.create p50 "
              f"{pct(self.latency, 50):5.0f} p95 {pct(self.latency, 95):5.0f} max "
              f"{max(self.latency, default=float('nan')):5.0f} ms over {len(self.latency)} "
              f"calls; answered before the end: {self.early}, never: {self.missing}; load "
              f"{min(self.loads, default=0):.1f}-{max(self.loads, default=0):.1f}")


def bench(runs: int = 60) -> None:
    """Print the cost of one check (upsample + features + model) for 1, 4 and 8 s."""
    from mediasrv.models.turn_model import SmartTurn, load_session

    model, session = SmartTurn(), load_session()
    _, x = read_wav("speech/en_asterisk_allison_demo-congrats.wav")
    print("load before:", os.getloadavg(), "cores:", os.cpu_count())
    for seconds in (1, 4, 8):
        a = x[8000 : 8000 + seconds * 8000]
        model.probability(a)  # warm-up
        whole, features, net = [], [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            up = upsample_8k_to_16k(a)
            f = log_mel(up)[np.newaxis]
            t1 = time.perf_counter()
            session.run(None, {"input_features": f})
            t2 = time.perf_counter()
            whole.append((t2 - t0) * 1000)
            features.append((t1 - t0) * 1000)
            net.append((t2 - t1) * 1000)
        print(f"  {seconds} s audio: check p50 {pct(whole, 50):6.1f} p99 {pct(whole, 99):6.1f} ms"
              f"  (resample+features p50 {pct(features, 50):5.1f}, model p50 {pct(net, 50):5.1f})")
    print("load after:", os.getloadavg())


def features() -> None:
    """Print max |ours - transformers| over real and synthetic inputs (scratch venv)."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(chunk_length=8)
    rng = np.random.default_rng(0)
    inputs = {f"{s.path} (8k path)": upsample_8k_to_16k(sentence_8k(s)) for s in SENTENCES}
    inputs["noise 10 s"] = (0.1 * rng.standard_normal(160000)).astype(np.float32)
    inputs["silence 1 s"] = np.zeros(16000, np.float32)
    worst = 0.0
    for name, a in inputs.items():
        window = a[-128000:]
        window = np.pad(window, (128000 - window.shape[0], 0))
        ref = extractor(window, sampling_rate=16000, return_tensors="np", padding="max_length",
                        max_length=128000, truncation=True, do_normalize=True).input_features[0]
        diff = float(np.max(np.abs(log_mel(a) - ref)))
        worst = max(worst, diff)
        print(f"  {name:70} max |diff| {diff:.2e}")
    print(f"worst: {worst:.2e}")


if __name__ == "__main__":
    if "--features" in sys.argv:
        features()
    elif "--bench" in sys.argv:
        bench()
    elif "--probe" in sys.argv:
        probe()
    elif "--e2e" in sys.argv:
        e2e(runs=int(next((a.split("=")[1] for a in sys.argv if a.startswith("--runs=")), 3)),
            parallel=int(next((a.split("=")[1] for a in sys.argv
                               if a.startswith("--parallel=")), 5)))
    elif "--sweep" in sys.argv:
        table(sweep_rules())
    else:
        shipped = shipped_rule()
        rules = [None, shipped]
        if shipped is not None:
            least_shipped = shipped.early_min_speech_ms
            rules += [dataclasses.replace(
                shipped, early_check_ms=ms or None,
                early_min_speech_ms=least if least >= 0 else least_shipped)
                for ms in EARLY_MS for least in EARLY_MIN_MS]
        table(rules)
