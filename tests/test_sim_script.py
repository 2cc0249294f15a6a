"""The caller's script: placement, resampling, onsets, causal echo."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from mediasrv.audio import FRAME_BYTES, pcm16_to_ulaw, rms_dbfs, to_pcm16, ulaw_to_pcm16
from mediasrv.sim.playout import PlayoutModel
from mediasrv.sim.script import CallerScript, EchoPath, Placement, load_8k, resample


def write_tone(
    path: Path,
    rate: int,
    seconds: float,
    hz: float = 440.0,
    amp: float = 0.5,
    channels: int = 1,
    width: int = 2,
) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    x = amp * np.sin(2 * np.pi * hz * t)
    data = np.repeat(x[:, None], channels, axis=1).ravel()
    if width == 2:
        raw = np.round(data * 32767).astype("<i2").tobytes()
    else:
        raw = np.round(data * (2**31 - 1)).astype("<i4").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return path


def frame_db(script: CallerScript, i: int) -> float:
    return rms_dbfs(ulaw_to_pcm16(script.frame(i)))


def test_placed_wav_starts_at_its_time_over_silence(tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "t.wav", 8000, 0.5)
    script = CallerScript.build([Placement(tone, 1.0)], duration=2.0)
    assert script.n_frames == 100 and script.duration == 2.0
    assert script.frame(49) == bytes([0xFF]) * FRAME_BYTES
    assert frame_db(script, 50) > -10
    assert frame_db(script, 74) > -10
    assert script.frame(75) == bytes([0xFF]) * FRAME_BYTES
    seg = script.segments[0]
    assert (seg.name, seg.placed_at, seg.onset, seg.end) == ("t.wav", 1.0, 1.0, 1.5)


def test_onset_is_first_loud_frame_after_placement(tmp_path: Path) -> None:
    quiet = np.zeros(800)  # 100 ms of silence at the head of the file
    loud = 0.3 * np.sin(2 * np.pi * 300 * np.arange(1600) / 8000)
    path = tmp_path / "late.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.round(np.concatenate([quiet, loud]) * 32767).astype("<i2").tobytes())
    script = CallerScript.build([Placement(path, 0.5)])
    assert script.segments[0].onset == 0.6
    assert script.n_frames == 140  # 0.5 s + 0.3 s of file + 2 s of tail


def test_44k_stereo_wav_is_resampled_to_8k(tmp_path: Path) -> None:
    path = write_tone(tmp_path / "hi.wav", 44100, 1.0, hz=1000.0, channels=2, width=4)
    x = load_8k(path)
    assert x.size == 8000
    spectrum = np.abs(np.fft.rfft(x[1000:7000]))
    peak_hz = np.argmax(spectrum) * 8000 / 6000
    assert abs(peak_hz - 1000.0) < 2.0


def test_16k_tone_keeps_its_level_after_resampling(tmp_path: Path) -> None:
    path = write_tone(tmp_path / "w.wav", 16000, 0.5, hz=500.0, amp=0.5)
    x = load_8k(path)
    assert x.size == 4000
    rms = float(np.sqrt(np.mean(x[200:-200] ** 2)))
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.01


def test_downsampling_removes_content_above_the_new_nyquist() -> None:
    rate = 16000
    t = np.arange(rate) / rate
    alias = resample(0.5 * np.sin(2 * np.pi * 7000 * t), rate)  # would fold to 1 kHz
    assert np.sqrt(np.mean(alias[200:-200] ** 2)) < 0.02


def test_background_noise_is_looped_with_gain(tmp_path: Path) -> None:
    noise = write_tone(tmp_path / "n.wav", 8000, 0.1, hz=200.0, amp=0.5)
    script = CallerScript.build([], duration=1.0, background=noise, background_db=-20.0)
    levels = [frame_db(script, i) for i in (5, 45)]
    expected = 20 * np.log10(0.05 / np.sqrt(2))
    assert all(abs(level - expected) < 1.0 for level in levels)


def test_echo_returns_heard_audio_delayed_and_attenuated() -> None:
    p = PlayoutModel()
    ai = 0.5 * np.sin(2 * np.pi * 400 * np.arange(800) / 8000)  # 100 ms of AI speech
    p.receive_media(pcm16_to_ulaw(to_pcm16(ai)), 0.200)
    p.advance(1.0)
    script = CallerScript(bytes([0xFF]) * 8000, echo=EchoPath(delay_ms=60.0, erl_db=12.0))
    frames = [script.frame_at(i, p, stream_t0=0.0) for i in range(50)]
    loud = [i for i, f in enumerate(frames) if f != bytes([0xFF]) * FRAME_BYTES]
    assert loud == [13, 14, 15, 16, 17]  # heard 200-300 ms, echoed 260-360 ms
    level = rms_dbfs(ulaw_to_pcm16(frames[14]))
    assert abs(level - (20 * np.log10(0.5 / np.sqrt(2)) - 12.0)) < 0.5


def test_echo_is_causal_for_a_window_not_yet_played() -> None:
    p = PlayoutModel()
    p.receive_media(bytes([0x10]) * 1600, 0.0)
    p.advance(0.010)  # only 10 ms have played so far
    script = CallerScript(bytes([0xFF]) * 160, echo=EchoPath(delay_ms=0.0, erl_db=0.0))
    out = script.frame_at(0, p, stream_t0=0.0)
    assert out[:80] != bytes([0xFF]) * 80
    assert out[80:] == bytes([0xFF]) * 80


def test_echo_adds_to_the_caller_voice() -> None:
    script = CallerScript(bytes([0xFF]) * 160, echo=EchoPath(delay_ms=0.0, erl_db=0.0))
    voice = bytes([0x90]) * 160
    heard = bytes([0x90]) * 160
    mixed = ulaw_to_pcm16(script.mix_echo(voice, heard)).astype(np.int32)
    single = ulaw_to_pcm16(voice).astype(np.int32)
    assert abs(int(mixed[0]) - 2 * int(single[0])) <= abs(int(single[0])) // 16
