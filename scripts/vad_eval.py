"""Measure the VAD candidates on every fixture in tests/audio.

Prints, per file and candidate: the share of frames judged speech, the number of speech
turns of at least 300 ms the state machine produces (speech files must yield some, others
none), and the CPU cost per 20 ms frame in microseconds (time.perf_counter over the file).
Speech files are also measured mixed into pink noise at 10 dB SNR. Last, the cost of the
whole TurnPolicy (VAD + echo guard) per inbound frame on a typical call mix.

    PYTHONPATH=. .venv/bin/python scripts/vad_eval.py [AUDIO_DIR | --cost]
"""

from __future__ import annotations

import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from vad_spectral import SpectralClassifier

from mediasrv.audio import FRAME_BYTES, Pcm16, pcm16_to_ulaw, ulaw_to_pcm16
from mediasrv.models.vad_silero import SileroClassifier
from mediasrv.policy.turns import TurnConfig, TurnPolicy
from mediasrv.policy.vad import SpeechClassifier, SpeechEnd, Vad

AUDIO_DIR = Path(__file__).resolve().parents[1] / "tests" / "audio"
MIN_TURN_S = 0.3
TRAIL_S = 1.0  # silence appended so the last utterance can end


def read_wav(path: Path) -> Pcm16:
    """Read a mono 16-bit WAV as int16 samples."""
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def pink_noise(n: int, seed: int = 7) -> npt.NDArray[np.float64]:
    """Return n samples of unit-RMS pink (1/f power) noise."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spec / np.sqrt(f), n)
    return pink / np.sqrt(np.mean(pink * pink))


def mix_at_snr(speech: Pcm16, snr_db: float) -> Pcm16:
    """Mix speech into pink noise; SNR over the speech's active samples."""
    s = speech.astype(np.float64)
    active = s[np.abs(s) > 0.05 * np.abs(s).max()]
    s_rms = float(np.sqrt(np.mean(active * active)))
    noise = pink_noise(s.shape[0] + 8000) * s_rms / 10 ** (snr_db / 20)
    lead = np.zeros(8000)  # one second of noise alone first: the floor must learn it
    out = np.concatenate([lead, s]) + noise
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def run(samples: Pcm16, classifier: SpeechClassifier) -> tuple[float, int, float]:
    """Return (speech frame share, turns >= 300 ms, us per frame) for one recording."""
    pcm = np.concatenate([samples, np.zeros(int(TRAIL_S * 8000), dtype=np.int16)])
    ulaw = pcm16_to_ulaw(pcm)  # what Twilio delivers
    frames = [
        ulaw_to_pcm16(ulaw[i : i + FRAME_BYTES])
        for i in range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES)
    ]
    vad = Vad(classifier=classifier)
    speech = turns = 0
    now = 0.0
    start = time.perf_counter()
    for frame in frames:
        now += 0.020
        event = vad.feed(frame, now)
        speech += vad.is_speech
        if isinstance(event, SpeechEnd) and event.duration_s >= MIN_TURN_S:
            turns += 1
    cost = (time.perf_counter() - start) / len(frames) * 1e6
    return speech / len(frames), turns, cost


def call_mix(audio_dir: Path, rounds: int = 4) -> tuple[bytes, bytes, list[bool]]:
    """Build a typical call: bot talks (echo back at 20 dB ERL), caller answers, pauses.

    Returns (outbound mu-law, inbound mu-law, ai_playing per frame). The inbound line
    carries -55 dBFS pink comfort noise throughout.
    """
    bot = read_wav(audio_dir / "speech/en_espeak_bot_prompt.wav").astype(np.float64)
    callers = [
        read_wav(audio_dir / f"speech/{name}").astype(np.float64)
        for name in ("en_espeak_caller.wav", "en_asterisk_allison_vm-intro.wav")
    ]
    out: list[np.ndarray] = []
    inb: list[np.ndarray] = []
    for i in range(rounds):
        pause = np.zeros(8000)
        caller = callers[i % len(callers)]
        echo = np.concatenate([np.zeros(1280), bot * 0.1])[: bot.shape[0]]  # 160 ms, -20 dB
        out += [bot, np.zeros(caller.shape[0]), pause]
        inb += [echo, caller, pause]
    outbound = np.concatenate(out)
    inbound = np.concatenate(inb)
    inbound = inbound + pink_noise(inbound.shape[0]) * 32768 * 10 ** (-67 / 20)
    playing = [bool(np.any(outbound[i : i + 160])) for i in range(0, outbound.shape[0], 160)]
    return to_ulaw(outbound), to_ulaw(inbound), playing


def to_ulaw(x: npt.NDArray[np.float64]) -> bytes:
    """Round, clip and encode float samples."""
    return pcm16_to_ulaw(np.clip(np.rint(x), -32768, 32767).astype(np.int16))


def turn_policy_cost(audio_dir: Path) -> None:
    """Print the TurnPolicy cost per inbound frame (feed + on_sent) on a call mix."""
    outbound, inbound, playing = call_mix(audio_dir)
    policy = TurnPolicy()
    frames = len(inbound) // FRAME_BYTES
    events = 0
    now = 0.0
    start = time.perf_counter()
    for i in range(frames):
        now += 0.020
        chunk = slice(i * FRAME_BYTES, (i + 1) * FRAME_BYTES)
        if playing[i]:
            policy.on_sent(outbound[chunk], now)
        events += len(policy.feed(inbound[chunk], now, ai_playing=playing[i], closing=False).events)
    cost = (time.perf_counter() - start) / frames * 1e6
    share = sum(playing) / frames
    print(
        f"TurnPolicy on a {frames * 0.02:.0f} s call mix (bot {share:.0%} of the time, echo at "
        f"20 dB ERL, caller turns, -55 dBFS comfort noise): {cost:.1f} us/frame, "
        f"{events} events"
    )


def cost_by_kind(audio_dir: Path) -> None:
    """Print TurnPolicy us/frame on silence, the bot alone (echo) and double talk."""
    bot = read_wav(audio_dir / "speech/en_espeak_bot_prompt.wav").astype(np.float64)
    caller = read_wav(audio_dir / "speech/en_espeak_caller.wav").astype(np.float64)
    n = bot.shape[0] // 160 * 160
    echo = np.concatenate([np.zeros(1280), bot * 0.1])[:n]  # 160 ms, 20 dB ERL
    talk = np.zeros(n)
    talk[16000 : 16000 + caller.shape[0]] = caller[: n - 16000]
    hiss = pink_noise(n) * 32768 * 10 ** (-67 / 20)
    outbound, inbound = to_ulaw(bot[:n]), to_ulaw(echo + talk + hiss)
    quiet = to_ulaw(hiss)
    for cancel in (False, True):
        _cost_by_kind(outbound, inbound, quiet, talk, cancel)


def _cost_by_kind(
    outbound: bytes, inbound: bytes, quiet: bytes, talk: npt.NDArray[np.float64], cancel: bool
) -> None:
    n = len(outbound) // FRAME_BYTES * 160
    costs: dict[str, list[float]] = {"silence": [], "bot alone": [], "double talk": []}
    for _ in range(3):
        policy = TurnPolicy(TurnConfig(echo_cancel=cancel))
        now = 0.0
        for i in range(n // 160):
            now += 0.020
            chunk = slice(i * FRAME_BYTES, (i + 1) * FRAME_BYTES)
            start = time.perf_counter()
            policy.on_sent(outbound[chunk], now)
            policy.feed(inbound[chunk], now, ai_playing=True, closing=False)
            kind = "double talk" if np.any(talk[i * 160 : (i + 1) * 160]) else "bot alone"
            costs[kind].append(time.perf_counter() - start)
        for i in range(n // 160):
            now += 0.020
            start = time.perf_counter()
            policy.feed(quiet[i * FRAME_BYTES : (i + 1) * FRAME_BYTES], now, ai_playing=False,
                        closing=False)
            costs["silence"].append(time.perf_counter() - start)
    cells = ", ".join(f"{k} {np.mean(v) * 1e6:.0f}" for k, v in costs.items())
    print(f"TurnPolicy echo_cancel={cancel} us/frame (incl. on_sent): {cells}")


def main() -> None:
    audio_dir = Path(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "--cost" else AUDIO_DIR
    if "--cost" in sys.argv:
        turn_policy_cost(AUDIO_DIR)
        cost_by_kind(AUDIO_DIR)
        return
    candidates: dict[str, Callable[[], SpeechClassifier]] = {
        "silero": SileroClassifier,
        "spectral": SpectralClassifier,
    }
    files = sorted(audio_dir.glob("*/*.wav"))
    cases = [(str(p.relative_to(audio_dir)), read_wav(p)) for p in files]
    cases += [
        (f"{name} +pink10dB", mix_at_snr(pcm, 10.0))
        for name, pcm in list(cases)
        if name.startswith("speech/")
    ]
    head = " | ".join(f"{c:>8} speech turns  us/frm" for c in candidates)
    print(f"{'file':58} {'expect':>6} | {head}")
    for name, pcm in cases:
        expect = "turns" if name.startswith("speech/") else "none"
        cells = []
        for make in candidates.values():
            share, turns, cost = run(pcm, make())
            ok = (turns > 0) == (expect == "turns")
            cells.append(f"{'' if ok else 'FAIL':>8} {share:6.2f} {turns:5d} {cost:7.1f}")
        print(f"{name:58} {expect:>6} | {' | '.join(cells)}")
    print()
    turn_policy_cost(audio_dir)
    cost_by_kind(audio_dir)


if __name__ == "__main__":
    main()
