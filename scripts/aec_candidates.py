"""Echo cancellers compared by `scripts/aec_compare.py`, behind one per-frame interface.

Every candidate sees what the bridge would give it: per 20 ms slot, the frame we sent
(`far`, nothing shifted: finding the echo delay is the candidate's job) and the inbound
frame (`near`, mu-law decoded), both as floats on the int16 scale; it returns the frame
the VAD would hear. Libraries are imported only if installed (see `available`), so the
script runs with whatever subset is there; none of them is a project dependency.

- `ours`: `mediasrv.policy.aec.EchoCanceller` driven exactly as
  `mediasrv.policy.echo.EchoGuard` does
  with `cancel=True`: it learns only from frames the guard judges echo.
- `webrtc`: WebRTC AEC3 through `pywebrtc-audio` (`AudioProcessor`, 8 kHz in, 16 kHz
  inside, 10 ms frames, its own delay estimator: no delay hint given).
- `livekit`: WebRTC AEC3 through `livekit.rtc.AudioProcessingModule` (same algorithm,
  another build: livekit's Rust FFI library), 10 ms frames, stream delay 0.
- `speex`, `speex+pp`: libspeexdsp's MDF canceller through `pyaec`, one 400 ms filter
  (the span of our delay search), without / with speex's preprocessor (noise and
  residual echo suppression).
- `voiceclean`: cross-correlation gated spectral suppression (pure numpy).

`LibraryGuard` plugs a candidate into `TurnPolicy` in place of the echo guard: the VAD
hears the candidate's output, and every frame may be the caller (no level test), which is
how a library's canceller would be used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mediasrv.audio import ULAW_DECODE
from mediasrv.policy.aec import EchoCanceller
from mediasrv.policy.echo import EchoGuard
from mediasrv.policy.sent import SILENT_DBFS, ulaw_peak_dbfs
from mediasrv.policy.turns import TurnConfig, TurnPolicy

Floats = npt.NDArray[np.float64]
FRAME = 160
TICK = 0.020
SPEEX_TAPS = 3200  # 400 ms at 8 kHz: every delay and tail of the comparison fits


class Canceller(Protocol):
    def process(self, near: Floats, far: Floats) -> Floats: ...


def _peak_dbfs(x: Floats) -> float:
    peak = float(np.abs(x).max())
    return 20.0 * np.log10(peak / 32768.0) if peak >= 1.0 else SILENT_DBFS


class Ours:
    """The project's canceller with the guard's double-talk decision deciding what it learns."""

    def __init__(self) -> None:
        self.guard = EchoGuard(cancel=True)
        self.now = 0.0

    def process(self, near: Floats, far: Floats) -> Floats:
        self.now += TICK
        guard, now = self.guard, self.now
        if far.any():
            guard.on_sent(_peak_dbfs(far), now, (far / 32768.0).astype(np.float32))
        out = guard.cancel((near / 32768.0).astype(np.float32), now, ai_playing=True)
        guard.learn(guard.judge(_peak_dbfs(near), now, ai_playing=True))
        return out.astype(np.float64) * 32768.0


class Variant(EchoCanceller):
    """Our canceller with another filter length and a wider delay hysteresis (diagnosis).

    `mediasrv.policy.aec` re-aligns (and so resets its filter) whenever the delay estimate moves
    by more than 16 samples; here it must move by more than `hop` samples.
    """

    def __init__(self, taps: int, hop: int) -> None:
        super().__init__(taps=taps)
        self.hop = hop
        self.realigns = 0

    def _realign(self, delay: int) -> None:
        if self.delay is not None and abs(delay - self.delay) <= self.hop:
            return
        self.realigns += 1
        super()._realign(delay)


def ours_variant(taps: int, hop: int) -> Ours:
    ours = Ours()
    ours.guard.canceller = Variant(taps, hop)
    return ours


def _int16(x: Floats) -> npt.NDArray[np.int16]:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


class WebRtc:
    def __init__(self) -> None:
        import pywebrtc_audio

        self.ap = pywebrtc_audio.AudioProcessor(sample_rate=8000, echo_cancellation=True)

    def process(self, near: Floats, far: Floats) -> Floats:
        return self.ap.process(_int16(near), _int16(far)).astype(np.float64)


class LiveKit:
    def __init__(self) -> None:
        from livekit import rtc

        self.rtc = rtc
        self.apm = rtc.AudioProcessingModule(echo_cancellation=True)
        self.apm.set_stream_delay_ms(0)

    def process(self, near: Floats, far: Floats) -> Floats:
        out = []
        n, f = _int16(near), _int16(far)
        for i in (0, FRAME // 2):  # the module takes exactly 10 ms per call
            rev = self.rtc.AudioFrame(f[i : i + 80].tobytes(), 8000, 1, 80)
            self.apm.process_reverse_stream(rev)
            cap = self.rtc.AudioFrame(n[i : i + 80].tobytes(), 8000, 1, 80)
            self.apm.process_stream(cap)
            out.append(np.frombuffer(cap.data, dtype=np.int16))
        return np.concatenate(out).astype(np.float64)


class Speex:
    def __init__(self, preprocess: bool) -> None:
        import pyaec

        self.aec = pyaec.Aec(FRAME, SPEEX_TAPS, 8000, preprocess)

    def process(self, near: Floats, far: Floats) -> Floats:
        out = self.aec.cancel_echo(_int16(near).tolist(), _int16(far).tolist())
        return np.asarray(out, dtype=np.float64)


class VoiceClean:
    def __init__(self) -> None:
        from voiceclean.aec import AEC

        self.aec = AEC(sample_rate=8000, chunk_ms=20)  # 20 ms: no added latency

    def process(self, near: Floats, far: Floats) -> Floats:
        self.aec.feed_reference(_int16(far).tobytes())
        out = self.aec.process(_int16(near).tobytes())
        return np.frombuffer(out, dtype=np.int16).astype(np.float64)


class Nothing:
    """No canceller: the inbound as it came (the baseline of the double-talk table)."""

    def process(self, near: Floats, far: Floats) -> Floats:
        return near


FACTORIES: dict[str, Callable[[], Canceller]] = {
    "none": Nothing,
    "ours": Ours,
    "webrtc": WebRtc,
    "livekit": LiveKit,
    "speex": lambda: Speex(False),
    "speex+pp": lambda: Speex(True),
    "voiceclean": VoiceClean,
}
PACKAGES = {
    "webrtc": "pywebrtc-audio==0.2.0",
    "livekit": "livekit==1.2.1",
    "speex": "pyaec==1.0.1",
    "speex+pp": "pyaec==1.0.1",
    "voiceclean": "voiceclean==0.3.6",
}


def available(names: list[str]) -> list[str]:
    """Return the candidates among `names` that can be built, saying why for the others."""
    found = []
    for name in names:
        try:
            FACTORIES[name]()
        except ImportError as exc:
            print(f"skipped {name}: {exc.name} is not installed (pip install {PACKAGES[name]})")
            continue
        found.append(name)
    return found


class Timed:
    """Wrap a canceller and record the wall time of each call (for the cost table)."""

    def __init__(self, inner: Canceller) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    def process(self, near: Floats, far: Floats) -> Floats:
        t0 = time.perf_counter()
        out = self.inner.process(near, far)
        self.seconds.append(time.perf_counter() - t0)
        return out


class LibraryGuard(EchoGuard):
    """An echo guard whose canceller is a candidate, for `TurnPolicy`.

    `TurnPolicy` calls `on_sent` for every frame we send and `cancel` for every inbound
    frame; the candidate gets both once per slot. Outside the echo window the inbound goes
    to the VAD untouched (as today), but the candidate still sees it, so its timeline
    never skips. Two ways to judge double talk:

    - plain (`gated=False`): every frame may be the caller; the VAD hearing the
      candidate's output decides alone (how a library's canceller is usually used);
    - gated: our guard's rule on the candidate's output: the Geigel test until the
      output has been measured >= 10 dB below the inbound on 0.5 s of echo, then caller
      only where the output is 10 dB louder than that echo return loss enhancement
      (ERLE) predicts. Powers per frame: libraries delay their output (WebRTC ~11 ms).
    """

    def __init__(self, inner: Canceller, gated: bool = False) -> None:
        super().__init__()
        self.inner = inner
        self.gated = gated
        self._far = np.zeros(FRAME)
        self._in_p = self._out_p = 0.0
        self._erle = 0.0
        self._learned = 0
        self._judged_at: float | None = None

    def on_sent(
        self, peak_dbfs: float, now: float, samples: npt.NDArray[np.float32] | None = None
    ) -> None:
        super().on_sent(peak_dbfs, now)
        self._far = np.asarray(samples, dtype=np.float64) * 32768.0

    def cancel(
        self, frame: npt.NDArray[np.float32], now: float, ai_playing: bool = False
    ) -> npt.NDArray[np.float32]:
        y = frame.astype(np.float64) * 32768.0
        out = self.inner.process(y, self._far)
        self._far = np.zeros(FRAME)
        self._in_p, self._out_p = float(np.mean(y * y)), float(np.mean(out * out))
        if not self.in_window(now, ai_playing):
            return frame
        return (out / 32768.0).astype(np.float32)

    def judge(
        self, inbound_peak_dbfs: float, now: float, ai_playing: bool = False, explain: bool = True
    ) -> bool:
        self.weak_evidence = False
        self._judged_at = None
        if not self.gated or not self.in_window(now, ai_playing):
            return True
        self._judged_at = now
        if self._learned < 25 or self._erle < 10.0:
            return inbound_peak_dbfs > self.threshold_dbfs(now)
        if self._out_p < _FLOOR:
            return False
        return 10 * np.log10(self._in_p / self._out_p) < self._erle - 10.0

    def learn(self, caller: bool) -> None:
        if caller or self._judged_at is None or self._in_p < _ACTIVE:
            return
        frame_db = 10 * np.log10(self._in_p / max(self._out_p, 1e-3))
        self._erle += 0.1 * min(max(frame_db - self._erle, -6.0), 6.0)  # as mediasrv.policy.aec
        self._learned += 1

    def masked_dbfs(self) -> float:
        return SILENT_DBFS


_ACTIVE = 32768.0**2 * 10 ** (-50 / 10)  # inbound power worth learning the ERLE from
_FLOOR = 32768.0**2 * 10 ** (-65 / 10)  # output power below which it is line noise


def make_policy(name: str) -> TurnPolicy:
    """Return a turn policy judging echo with candidate `name` (`guard`: as it is today).

    `ours` is `ECHO_CANCEL=true` (`ours-hop`: with `Variant(256, 400)`); a library name
    feeds its output to the VAD alone; with `+gate` the output is also judged by
    `LibraryGuard`'s level rule.
    """
    if name == "guard":
        return TurnPolicy(TurnConfig())
    if name in ("ours", "ours-hop"):
        policy = TurnPolicy(TurnConfig(echo_cancel=True))
        if name == "ours-hop":
            policy.echo.canceller = Variant(256, 400)
        return policy
    base = name.removesuffix("+gate")
    return LibraryPolicy(LibraryGuard(FACTORIES[base](), gated=base != name))


class LibraryPolicy(TurnPolicy):
    """`TurnPolicy` with a `LibraryGuard` in place of its echo guard."""

    def __init__(self, guard: LibraryGuard) -> None:
        super().__init__(TurnConfig())
        self.echo = self.library = guard

    def on_sent(self, frame_ulaw: bytes, now: float) -> None:
        # TurnPolicy hands the sent samples over only to a guard with our canceller.
        samples = ULAW_DECODE[np.frombuffer(frame_ulaw, dtype=np.uint8)] / np.float32(32768.0)
        self.library.on_sent(ulaw_peak_dbfs(frame_ulaw), now, samples.astype(np.float32))
