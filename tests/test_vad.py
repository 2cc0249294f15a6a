"""The VAD on the shared recordings: speech yields turns, nothing else does."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from mediasrv.audio import Pcm16, pcm16_to_ulaw, ulaw_to_pcm16
from mediasrv.errors import ConfigError
from mediasrv.policy.vad import SpeechEnd, SpeechStart, Vad, VadConfig, VadEvent

AUDIO = Path(__file__).resolve().parent / "audio"
TICK = 0.020
SPEECH = sorted(p.name for p in (AUDIO / "speech").glob("*.wav"))
NOT_SPEECH = sorted(
    f"{p.parent.name}/{p.name}"
    for kind in ("music", "noise", "silence", "tones")
    for p in (AUDIO / kind).glob("*.wav")
)


def read(relpath: str) -> Pcm16:
    with wave.open(str(AUDIO / relpath), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def silence(seconds: float) -> Pcm16:
    return np.zeros(int(seconds * 8000), dtype=np.int16)


def run(samples: Pcm16, vad: Vad | None = None) -> list[VadEvent]:
    """Feed the samples as Twilio would deliver them (mu-law frames) plus 1 s of silence."""
    vad = vad if vad is not None else Vad()
    ulaw = pcm16_to_ulaw(np.concatenate([samples, silence(1.0)]))
    events = []
    now = 0.0
    for i in range(0, len(ulaw) - 159, 160):
        now += TICK
        event = vad.feed(ulaw_to_pcm16(ulaw[i : i + 160]), now)
        if event is not None:
            events.append(event)
    return events


def turns(events: list[VadEvent]) -> list[float]:
    return [e.duration_s for e in events if isinstance(e, SpeechEnd) and e.duration_s >= 0.3]


def pink_noise(n: int) -> np.ndarray:
    spec = np.fft.rfft(np.random.default_rng(3).standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spec / np.sqrt(f), n)
    return pink / np.sqrt(np.mean(pink * pink))


def in_pink_noise(speech: Pcm16, snr_db: float) -> Pcm16:
    """Return 1 s of pink noise, then the speech over it at `snr_db` (speech RMS when on)."""
    s = np.concatenate([silence(1.0), speech]).astype(np.float64)
    on = s[np.abs(s) > 0.05 * np.abs(s).max()]
    noise = pink_noise(s.shape[0]) * np.sqrt(np.mean(on * on)) / 10 ** (snr_db / 20)
    return np.clip(np.rint(s + noise), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("name", SPEECH)
def test_speech_recording_yields_a_turn(name: str) -> None:
    assert turns(run(read(f"speech/{name}")))


@pytest.mark.parametrize("name", NOT_SPEECH)
def test_non_speech_recording_yields_no_speech(name: str) -> None:
    assert run(read(name)) == []


@pytest.mark.parametrize(
    "name", ["en_asterisk_allison_tt-weasels.wav", "en_espeak_caller.wav", "es_espeak_caller.wav"]
)
def test_speech_in_pink_noise_at_10_db_snr_is_detected(name: str) -> None:
    assert turns(run(in_pink_noise(read(f"speech/{name}"), 10.0)))


def spoken_part(samples: Pcm16) -> Pcm16:
    """Cut the recording's own leading and trailing silence."""
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > 0.05 * np.abs(samples).max())[0]
    return samples[loud[0] : loud[-1] + 1]


def test_pause_shorter_than_end_silence_does_not_split() -> None:
    words = spoken_part(read("speech/en_asterisk_allison_hello-world.wav"))
    events = run(np.concatenate([words, silence(0.25), words]))
    assert len([e for e in events if isinstance(e, SpeechStart)]) == 1
    assert len(turns(events)) == 1


def test_pause_longer_than_end_silence_splits() -> None:
    words = spoken_part(read("speech/en_asterisk_allison_hello-world.wav"))
    assert len(turns(run(np.concatenate([words, silence(1.0), words])))) == 2


def test_gap_counts_as_silence() -> None:
    vad = Vad(VadConfig(end_silence_ms=500))
    ulaw = pcm16_to_ulaw(read("speech/en_asterisk_allison_tt-weasels.wav")[: 8000 * 2])
    now = 0.0
    for i in range(0, len(ulaw) - 159, 160):
        now += TICK
        vad.feed(ulaw_to_pcm16(ulaw[i : i + 160]), now)
    assert vad.feed_gap(200, now + 0.2) is None
    end = vad.feed_gap(400, now + 0.6)
    assert isinstance(end, SpeechEnd)


def test_config_error_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="onset_ms"):
        VadConfig(onset_ms=0)
