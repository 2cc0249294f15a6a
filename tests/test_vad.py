"""The VAD on the shared recordings: speech yields turns, nothing else does."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from mediasrv.audio import Pcm16, pcm16_to_ulaw, ulaw_to_pcm16
from mediasrv.errors import ConfigError
from mediasrv.policy.turns import BargeIn, TurnConfig, TurnPolicy
from mediasrv.policy.vad import SpeechEnd, SpeechStart, Vad, VadConfig, VadEvent
from mediasrv.testing.callers import speech_frames

AUDIO = Path(__file__).resolve().parent / "audio"
TICK = 0.020
SPEECH = sorted(p.name for p in (AUDIO / "speech").glob("*.wav"))
NOT_SPEECH = sorted(
    f"{p.parent.name}/{p.name}"
    for kind in ("music", "noise", "silence", "tones")
    for p in (AUDIO / kind).glob("*.wav")
)


class ScriptedClassifier:
    """Score frame i with `probs[i]` (then the last one on), whatever the audio."""

    def __init__(self, probs: list[float]) -> None:
        self._probs = probs
        self._i = 0

    def push(self, x: npt.NDArray[np.float32], active: bool) -> float | None:
        prob = self._probs[min(self._i, len(self._probs) - 1)]
        self._i += 1
        return prob

    def reset(self) -> None:
        pass


TONE = (3000 * np.sin(2 * np.pi * 300 * np.arange(160) / 8000)).astype(np.int16)  # active


def leads(probs: list[float]) -> list[int]:
    """Feed one active frame per score; return `onset_lead_ms` after each."""
    vad = Vad(classifier=ScriptedClassifier(probs))
    out = []
    for i in range(len(probs)):
        vad.feed(TONE, (i + 1) * TICK)
        out.append(vad.onset_lead_ms)
    return out


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


def test_an_onset_rising_under_the_threshold_lends_its_lead_to_the_first_speech_frame() -> None:
    # Silero on "hello world": ~0 on the aspiration, 0.31-0.49 on the voiced start, then
    # 0.9. The frames from 0.3 on count, up to 60 ms; only the first speech frame says so.
    got = leads([0.02, 0.02, 0.31, 0.45, 0.45, 0.45, 0.9, 0.9, 0.9, 0.2, 0.2, 0.2, 0.9])
    assert got == [0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0]
    assert leads([0.02, 0.02, 0.45, 0.9, 0.9]) == [0, 0, 0, 20, 0]


def test_a_classifier_hovering_under_its_threshold_earns_no_lead() -> None:
    # Hold music scored 0.38-0.46 for 160 ms, then 0.51: unsure, not on its way up.
    assert leads([0.4] * 6 + [0.51, 0.51]) == [0] * 8
    assert leads([0.4] * 5 + [0.51])[-1] == 60  # 100 ms (onset_ms) is still an onset


@pytest.mark.parametrize("second,speech", [(0.0, False), (0.9, True)])
def test_a_sure_second_opinion_makes_a_frame_speech(second: float, speech: bool) -> None:
    # Two silero states on one residual disagreed for up to 600 ms (0.1-0.4 against 0.9).
    vad = Vad(classifier=ScriptedClassifier([0.3]))
    x = TONE.astype(np.float32) / 32768
    for i in range(3):
        vad.feed_float(x, (i + 1) * TICK, second_opinion=second)
    assert vad.is_speech is speech


def test_an_onset_dipping_under_the_threshold_after_its_first_speech_frame_still_counts() -> None:
    # hello-world at one window phase through the 2:1 normaliser: 0.53, then 0.46 twice,
    # then 0.9+. From the first speech frame on, the release point holds, as in SPEECH.
    vad = Vad(classifier=ScriptedClassifier([0.53, 0.46, 0.46, 0.46, 0.46, 0.2]))
    events = [vad.feed(TONE, (i + 1) * TICK) for i in range(5)]
    assert [vad.is_speech] == [True]
    assert isinstance(events[-1], SpeechStart)  # onset_ms (100) of speech: all five frames


@pytest.mark.parametrize("phase", range(0, 256, 32))  # samples: silero's 32 ms windows
def test_a_caller_10_db_under_natural_level_is_speech_within_100_ms(phase: int) -> None:
    # "vm-intro" 10 dB down sits at -34 to -24 dBFS, where a limiter to -24 dBFS (the
    # normaliser until stop 27) erased its syllables' rise: 5-6 frames at seven phases and
    # 32 at one (0.15-0.39 for 600 ms); 2:1 towards -16 dBFS takes 3-5.
    raw = read("speech/en_asterisk_allison_vm-intro.wav")
    clip = (raw * 10 ** (-10 / 20)).astype(np.int16)
    lead_in = 8000 + phase
    onset = (lead_in + speech_frames(raw / 32768.0)[0] * 160) // 160  # at natural level
    pcm = ulaw_to_pcm16(pcm16_to_ulaw(np.concatenate([silence(lead_in / 8000), clip])))
    vad = Vad()
    first = None
    for k in range(pcm.size // 160):
        vad.feed(pcm[k * 160 : (k + 1) * 160], (k + 1) * TICK)
        if k >= onset and vad.is_speech:
            first = k
            break
    assert first is not None and first - onset + 1 <= 5  # frames of audio, onset included


def test_a_frame_under_the_threshold_starts_nothing() -> None:
    vad = Vad(classifier=ScriptedClassifier([0.46]))
    assert [vad.feed(TONE, (i + 1) * TICK) for i in range(10)] == [None] * 10
    assert not vad.is_speech


def test_config_error_names_the_lead_settings() -> None:
    with pytest.raises(ConfigError, match="lead_threshold"):
        VadConfig(lead_threshold=0.6)
    with pytest.raises(ConfigError, match="lead_max_ms"):
        VadConfig(lead_max_ms=-20)


@pytest.mark.parametrize("phase", range(0, 256, 32))  # samples: silero's 32 ms windows
def test_hello_world_barges_in_within_220_ms_of_audio_at_any_window_phase(phase: int) -> None:
    # The real clip through the real VAD: silero reaches 0.5 late on its onset (120-180 ms
    # in), and wherever its windows fall the rise under 0.5 must count, or the barge-in
    # takes up to 13 frames (260 ms of audio) from the first frame over -45 dBFS.
    clip = read("speech/en_asterisk_allison_hello-world.wav")
    levels = 10 * np.log10(np.maximum(np.mean((clip[: clip.size // 160 * 160]
                                               .reshape(-1, 160) / 32768.0) ** 2, axis=1), 1e-12))
    lead_in = 8000 + phase  # a second of silence and the phase
    onset = (lead_in + int(np.flatnonzero(levels > -45.0)[0]) * 160) // 160
    ulaw = pcm16_to_ulaw(np.concatenate([silence(lead_in / 8000), clip]))
    policy = TurnPolicy(TurnConfig())
    for k in range(len(ulaw) // 160):
        step = policy.feed(ulaw[k * 160 : (k + 1) * 160], (k + 1) * TICK, ai_playing=True,
                           closing=False)
        if any(isinstance(e, BargeIn) for e in step.events):
            break
    assert k - onset + 1 <= 11  # frames of audio from the onset frame to the barge-in
