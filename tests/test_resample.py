"""8 <-> 16 kHz resampling keeps the phone band and adds no images (mediasrv.models.resample)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mediasrv.models.resample import downsample_16k_to_8k, upsample_8k_to_16k

EDGE = 400  # samples at 16 kHz left out at each end: the filter's start/stop ringing


def tone(hz: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> npt.NDArray[np.float32]:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def rms(x: npt.NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def band_energy_db(x: npt.NDArray[np.float32], rate: int, low_hz: float) -> float:
    """Energy above `low_hz` relative to the total, in dB (Hann-windowed spectrum)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
    return float(10 * np.log10(spec[freqs >= low_hz].sum() / spec.sum()))


def test_upsampling_doubles_the_sample_count() -> None:
    assert upsample_8k_to_16k(np.zeros(160, np.float32)).shape == (320,)


def test_upsampling_keeps_a_1khz_tone_level() -> None:
    y = upsample_8k_to_16k(tone(1000, 8000))
    assert abs(20 * np.log10(rms(y[EDGE:-EDGE]) / rms(tone(1000, 16000)))) < 0.1


def test_upsampling_keeps_a_3500hz_tone_level() -> None:
    y = upsample_8k_to_16k(tone(3500, 8000))
    assert abs(20 * np.log10(rms(y[EDGE:-EDGE]) / rms(tone(3500, 16000)))) < 0.1


def test_upsampling_adds_no_delay() -> None:
    x = tone(440, 8000)
    y = upsample_8k_to_16k(x)
    assert np.max(np.abs(y[0::2][100:-100] - x[100:-100])) < 1e-3


def test_upsampled_tone_has_no_image_above_4200hz() -> None:
    # A 3.5 kHz tone's image would sit at 4.5 kHz.
    y = upsample_8k_to_16k(tone(3500, 8000))[EDGE:-EDGE]
    assert band_energy_db(y, 16000, 4200) <= -50


def test_upsampled_noise_has_no_energy_above_4200hz() -> None:
    rng = np.random.default_rng(7)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)  # fills all of 0-4 kHz
    y = upsample_8k_to_16k(x)[EDGE:-EDGE]
    assert band_energy_db(y, 16000, 4200) <= -50


def test_downsampling_keeps_a_1khz_tone_level() -> None:
    y = downsample_16k_to_8k(tone(1000, 16000))
    assert abs(20 * np.log10(rms(y[EDGE:-EDGE]) / rms(tone(1000, 8000)))) < 0.1


def test_downsampling_does_not_fold_a_6khz_tone_into_the_band() -> None:
    # Without the low-pass, 6 kHz at 16 kHz would come back as 2 kHz at 8 kHz.
    y = downsample_16k_to_8k(tone(6000, 16000))[EDGE:-EDGE]
    assert 20 * np.log10(rms(y) / rms(tone(6000, 16000))) <= -50


def test_empty_input_gives_empty_output() -> None:
    assert upsample_8k_to_16k(np.zeros(0, np.float32)).shape == (0,)
    assert downsample_16k_to_8k(np.zeros(0, np.float32)).shape == (0,)
