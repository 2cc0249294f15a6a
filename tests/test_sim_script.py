"""The caller's script: placement, resampling, onsets, the signal the line carries."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from mediasrv.audio import FRAME_BYTES, pcm16_to_ulaw, rms_dbfs, to_pcm16, ulaw_to_pcm16
from mediasrv.emulator.line import EchoPath
from mediasrv.emulator.script import CallerScript, Placement, load_8k, resample


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


def test_mu_law_script_without_a_line_sends_its_bytes_unchanged() -> None:
    ulaw = bytes(range(256)) * 5  # 1280 bytes: 8 frames
    script = CallerScript(ulaw)
    assert script.n_frames == 8 and script.line is None
    assert b"".join(script.frame(i) for i in range(8)) == ulaw


def test_a_bare_echo_path_becomes_a_line_without_hiss() -> None:
    script = CallerScript(bytes([0xFF]) * 160, line=EchoPath(delay_ms=60.0, erl_db=12.0))
    assert script.line is not None and script.line.hiss_dbov is None
    assert script.line.echo == EchoPath(delay_ms=60.0, erl_db=12.0)


def test_float_script_keeps_the_caller_signal_for_the_line() -> None:
    x = 0.25 * np.sin(2 * np.pi * 300 * np.arange(800) / 8000)
    script = CallerScript.from_samples(x)
    assert script.n_frames == 5
    assert np.allclose(script.mic(2), x[320:480], atol=1e-7)  # float32 storage
    assert script.frame(2) == pcm16_to_ulaw(to_pcm16(x[320:480]))
    assert not script.mic(9).any()
