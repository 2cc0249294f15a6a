"""Turn policy: what to forward to OpenAI and which turn events an inbound frame makes.

Layer: policy.

The bridge calls `TurnPolicy.feed` on every inbound frame and `on_sent` on every outbound
one. Pure: time comes in as `now`; it returns a `TurnStep` and does nothing itself.

Rules, per inbound frame:

- the VAD always sees the frame (its noise floor and hangover must never skip audio);
- outside the echo window (see `mediasrv.policy.echo`) the frame is forwarded;
- inside it, frames are held back until the VAD hears speech the echo guard says can be
  the caller; once the caller is recognised, what was held from `prefix_ms` before that
  first frame on is forwarded (the first syllable is not lost) and so is the rest of that
  utterance, even its quieter frames under the bot;
- `UtteranceStarted` once per utterance, when the VAD has confirmed speech and some of it
  can be the caller;
- `BargeIn` once per utterance, when `barge_in_min_ms` of caller speech (not echo) has been
  heard while AI audio plays (counted from the VAD's onset lead, `Vad.onset_lead_ms`,
  when the caller's level alone is beyond our echo) -- 120 ms once any of it was heard
  only on weak evidence (the canceller's residual, the level at the echo's delay) while
  the path may have just moved: an echo path that moved looks like that for up to ~100
  ms, until the coherence window holds enough of the moved echo to recognise it (see
  `TurnPolicy._path_unsure`); a caller on a path that did not move needs 100 ms. Caller
  frames more than 300 ms apart start the count again: scattered frames of a long echo
  utterance are not one caller;
- at the VAD's end of speech, one candidate: `EndOfUtterance` if it lasted at least
  `min_utterance_ms`, was not echo and the call is not closing; else `UtteranceSkipped`.

With an end-of-turn model (`TurnConfig.end_turn`, see `mediasrv.policy.endturn`) the VAD's
own end silence is the model policy's cap, and the turn usually ends sooner: the policy
hears every frame, and a frame counts as the caller's speech only if the VAD calls it
speech *and* the echo guard says it can be the caller (our own echo never holds a turn
open). When it asks for a check, the step carries it (`TurnStep.check`); the shell runs
it and reports back with `on_check_result` / `on_check_failed`. A turn it ends goes
through the same end-of-utterance path (closing, echo, too short: `END OF UTTERANCE`),
and the VAD is put back to silence (`Vad.end_now`), so the utterance never ends twice.

`echo_blocked` on both tells that some frames of the utterance were withheld as echo.
An utterance is *echo* when none of its speech frames could be the caller.
"""

from __future__ import annotations

import logging

import numpy as np

from mediasrv.audio import FRAME_MS, ULAW_FLOAT
from mediasrv.policy.echo import EchoGuard
from mediasrv.policy.endturn import CheckRequest, EndTurnPolicy, TurnEnd
from mediasrv.policy.residual import ResidualSpeech
from mediasrv.policy.sent import ulaw_peak_dbfs
from mediasrv.policy.turn_types import (
    BargeIn,
    EndOfUtterance,
    HeldAudio,
    TurnConfig,
    TurnEvent,
    TurnStep,
    UtteranceSkipped,
    UtteranceStarted,
    skip_reason,
)
from mediasrv.policy.vad import (
    SpeechClassifier,
    SpeechEnd,
    SpeechStart,
    Vad,
    VadConfig,
    VadEvent,
    VadState,
    default_classifier,
)

__all__ = ["BargeIn", "EndOfUtterance", "TurnConfig", "TurnEvent", "TurnPolicy", "TurnStep",
           "UtteranceSkipped", "UtteranceStarted"]

log = logging.getLogger(__name__)


_NOTHING = TurnStep(b"")
# 0.7 cost quiet callers up to 0.8 s (frame harness: -20 dB handset p95 431 -> 320 ms at
# 0.5); the price, in scripts/bargein_eval.py's noise sweep, is one hold-music condition
# of 40 more barging in (bad line, -10 dB: scored 0.5-0.7). See `TurnPolicy.feed`.
_WEAK_EVIDENCE_PROB = 0.5
# On coherence alone, before this call's echo is learned ("not our echo"), one frame of an
# utterance's caller speech must score this: hold music at -15 dB under the bot's first
# words is not our echo either, and heard with our echo scored 0.53-0.67 for 200 ms.
_COHERENCE_ALONE_PROB = 0.8
_CALLER_GAP_MS = 300
_UNSURE_PATH_MIN_MS = 120  # see `TurnPolicy._path_unsure` (tests/test_echo.py: a path moves)


class TurnPolicy:
    """Per-call turn taking over inbound frames, echo-aware. Pure: time comes in as `now`."""

    def __init__(
        self, config: TurnConfig | None = None, classifier: SpeechClassifier | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
        residual_classifier: SpeechClassifier | None = None,
    ) -> None:
        """`residual_classifier`: see `ResidualSpeech`; silero when `classifier` is, else
        none (weak evidence is then judged on the VAD's classifier alone)."""
        self.config = cfg = config if config is not None else TurnConfig()
        self._log = logger  # a call passes its own, so every turn line names the call
        end_turn = cfg.end_turn
        # With the model, the VAD ends an utterance only at the model policy's cap: until
        # then the policy decides (and the VAD still ends echo the policy never heard).
        end_silence_ms = cfg.end_silence_ms if end_turn is None else end_turn.max_silence_ms
        self.vad = Vad(VadConfig(end_silence_ms=end_silence_ms, onset_ms=cfg.vad_onset_ms),
                       classifier)
        self.end_turn = EndTurnPolicy(end_turn) if end_turn is not None else None
        if residual_classifier is None and classifier is None:
            residual_classifier = default_classifier()
        self.residual = None if residual_classifier is None else ResidualSpeech(
            residual_classifier)
        self.echo = EchoGuard(
            echo_window_ms=cfg.echo_window_ms,
            erl_db=cfg.erl_db,
            echo_path_ms=cfg.echo_path_ms,
            cancel=cfg.echo_cancel,
        )
        self._held = HeldAudio(cfg)  # inbound held back inside the echo window
        self._first_caller_ms: int | None = None  # see `HeldAudio.release`
        self._in_utterance = False  # the VAD is in MAYBE_SPEECH or SPEECH
        self._caller = False  # this utterance holds caller speech (not only echo)
        self._caller_ms = 0
        self._needed_ms = cfg.barge_in_min_ms  # caller speech this utterance needs to barge in
        self._caller_last_ms = 0
        self._caller_sure = False  # see `_sure_of_caller`
        self._held_ms = 0  # caller frames the residual has not confirmed yet (see `feed`)
        self._blocked = False  # frames of this utterance were withheld as echo
        self._barged = False
        self._started = False  # UtteranceStarted sent for this utterance
        # Audio time (ms), so an utterance is measured from its first caller frame: echo
        # heard before the caller spoke must not lengthen the caller's turn.
        self._audio_ms = 0
        self._speech_until_ms = 0
        self._caller_from_ms = 0

    def on_sent(self, frame_ulaw: bytes, now: float) -> None:
        """Record one frame sent to the caller as the echo reference."""
        samples = frame_ulaw if self.echo.canceller is not None else None
        self.echo.on_sent(ulaw_peak_dbfs(frame_ulaw), now, samples)

    def on_cut(self, at: float) -> None:
        """Take what was sent to play from time `at` on off the echo reference (a `clear`
        emptied Twilio's buffer then: it never played)."""
        self.echo.on_cut(at)

    def feed(self, frame_ulaw: bytes, now: float, *, ai_playing: bool, closing: bool) -> TurnStep:
        """Take one inbound 20 ms mu-law frame; return what to forward and the events."""
        vad = self.vad
        # The VAD hears the inbound with our own echo taken out (when cancelling): a
        # caller under the bot's echo is speech, music under it is not.
        inbound = ULAW_FLOAT[np.frombuffer(frame_ulaw, dtype=np.uint8)]
        x = self.echo.cancel(inbound, now, ai_playing)
        if self.residual is not None:
            residual = self.echo.residual  # the inbound itself while nothing is cancelled
            self.residual.hear(residual, self.echo.trusted,
                               frame_ulaw if residual is inbound else None)
        event = vad.feed_float(x, now, self.echo.masked_dbfs(), self._second_opinion())
        events: list[TurnEvent] = []
        self._audio_ms += FRAME_MS
        if vad.is_speech:
            if not self._in_utterance:
                self._begin()
            self._speech_until_ms = self._audio_ms
        elif self._in_utterance and event is None and vad.state is VadState.SILENCE:
            self._in_utterance = False  # an onset the VAD gave up on (a click, a cough)
            if self.end_turn is not None:
                self.end_turn.reset()
        in_window = self.echo.in_window(now, ai_playing)
        # Judged on every frame in the window (the canceller learns only from echo), but
        # the costly "is it our echo after all" check only on speech, where it decides.
        maybe_caller = not in_window or self.echo.judge(
            ulaw_peak_dbfs(frame_ulaw), now, ai_playing, speech=vad.is_speech,
            noise_floor_dbfs=vad.floor_dbfs,
        )
        self.echo.learn(maybe_caller)
        if self.echo.shifted is not None:
            self._log.info("[ECHO] our echo came %.1f ms %s than the canceller had it (a "
                           "playout gap, or when a turn began to play): filter moved with it",
                           abs(self.echo.shifted) / 8,
                           "later" if self.echo.shifted > 0 else "earlier")
        if (maybe_caller and self.echo.weak_evidence
                and vad.own_probability < _WEAK_EVIDENCE_PROB):
            # On weak evidence (the residual alone, the level at the echo's delay) the
            # classifier must stay at its onset threshold inside speech too: a steady noise
            # in the bot's pauses scores 0.35-0.5 there (tests/test_echo.py). Not higher:
            # a quiet caller scores 0.4-0.65 for their first few hundred ms. The VAD's own
            # classifier, not the residual's second opinion (`_second_opinion`): that one
            # must confirm such a frame too, so it cannot stand in for the first (an alarm
            # clock under the bot scored 0.7-0.9 on the residual and barged in).
            maybe_caller = False
        # It also hears our echo: on weak evidence what the canceller leaves must be speech
        # too, and voiced (`ResidualSpeech.confirms`: a breath is not). Heard a frame or
        # three later than the VAD's classifier hears it, so such frames are held
        # (`_held_ms`) and count once one of it is. (Asked only where it counts, a speech
        # frame: its model runs on demand.)
        unconfirmed = (vad.is_speech and maybe_caller and self.echo.weak_evidence
                       and self.residual is not None
                       and not self.residual.confirms(self.echo.residual))
        if vad.is_speech and maybe_caller:
            if self._first_caller_ms is None:
                self._first_caller_ms = self._audio_ms
            if not self._caller_ms and not self._held_ms:
                if not in_window or self.echo.heard_on_level:
                    self._caller_ms = vad.onset_lead_ms  # see EchoGuard.heard_on_level
                self._caller_from_ms = self._audio_ms - FRAME_MS - self._caller_ms
            elif self._audio_ms - self._caller_last_ms > _CALLER_GAP_MS and not self._barged:
                # Scattered frames of a long echo utterance are not one caller's speech.
                self._restart_caller_count()
            if self._path_unsure():
                self._needed_ms = max(self._needed_ms, _UNSURE_PATH_MIN_MS)
            self._caller_last_ms = self._audio_ms
            if unconfirmed:
                self._held_ms += FRAME_MS
            else:
                self._caller_ms += FRAME_MS + self._held_ms
                self._held_ms = 0
                self.echo.caller_speech()
                self._caller_sure = self._caller_sure or self._sure_of_caller(in_window)
            # Inside the echo window the caller is recognised on the evidence a barge-in
            # needs: the first 20-100 ms of an echo (the bot's first syllable, an echo path
            # that just moved) can look like a caller before what we sent explains it.
            enough = self._caller_ms >= self._needed_ms and self._caller_sure
            if not self._caller and (not in_window or enough):
                self._caller = True
                if self._blocked:  # the held prefix goes out with it: count it as heard
                    held_from = self._audio_ms - FRAME_MS - self._held.heard_ms()
                    self._caller_from_ms = min(self._caller_from_ms, held_from)
                if in_window:
                    self._log_caller_over_echo()
            if ai_playing and not self._barged and enough:
                self._barged = True
                events.append(BargeIn(now, self._caller_ms))
        if self._caller and not self._started and vad.state is VadState.SPEECH:
            self._started = True
            events.insert(0, UtteranceStarted(now))
        forward = self._forward(frame_ulaw, in_window)
        check = None
        if self.end_turn is not None:
            if isinstance(event, SpeechEnd):
                self.end_turn.reset()  # the VAD ended it first (echo, or the cap)
            else:
                asked = self.end_turn.feed(x, vad.is_speech and maybe_caller, now)
                check, event = self._from_end_turn(asked, now, event)
        if event is not None:
            self._on_vad_event(event, now, closing, events)
        if not forward and not events and check is None:
            return _NOTHING
        return TurnStep(forward, tuple(events), check)

    def _second_opinion(self) -> float:
        """Return the residual classifier's score of this frame once the canceller is
        trusted (the VAD then hears the same residual), else 0.

        The VAD's own state scored quiet callers over a trusted canceller 0.1-0.4 for up to
        600 ms while this one scored 0.9-1.0 (frame harness: 963 frames of the 113 callers
        over an echo heard after 300 ms). Free: a residual the canceller changed is run at
        once (`ResidualSpeech`)."""
        if self.residual is None or self.echo.residual is None or not self.echo.trusted:
            return 0.0
        return self.residual.probability

    def _path_unsure(self) -> bool:
        """Tell whether this caller frame, heard on weak evidence, may be an echo path that
        just moved: the echo guard says so (`EchoGuard.path_unsure`: the residual's last
        100 ms are our echo at another lag, or the path is still being learned), or the
        caller frames come scattered (2 or more missing since the last one), as a moved
        echo does through the bot's quiet words. Each of the three is needed: see
        docs/turn-taking.md ("Weak evidence") for what each kept out."""
        if not self.echo.weak_evidence:
            return False
        scattered = self._caller_ms and self._audio_ms - self._caller_last_ms > 2 * FRAME_MS
        return bool(scattered) or self.echo.path_unsure

    def _sure_of_caller(self, in_window: bool) -> bool:
        """Tell whether this caller frame makes the utterance's caller sure: any frame does
        but one heard on coherence alone, unless it scores `_COHERENCE_ALONE_PROB`."""
        if not in_window or not self.echo.heard_on_coherence_alone:
            return True
        return self.vad.own_probability >= _COHERENCE_ALONE_PROB

    def on_check_result(self, seq: int, probability: float, now: float, *,
                        closing: bool = False) -> TurnStep:
        """Take the model's answer to `TurnStep.check` number `seq`."""
        if self.end_turn is None:
            return _NOTHING
        self._log.debug("[TURN] check %d: p=%.2f", seq, probability)
        return self._ended(self.end_turn.on_result(seq, probability, now), now, closing)

    def on_check_failed(self, seq: int, now: float, *, closing: bool = False) -> TurnStep:
        """Take a check that could not be run (the shell logged why): fixed silence."""
        if self.end_turn is None:
            return _NOTHING
        return self._ended(self.end_turn.on_failure(seq, now), now, closing)

    def _ended(self, end: TurnEnd | None, now: float, closing: bool) -> TurnStep:
        event = self._end_speech(end, now) if end is not None else None
        if event is None:
            return _NOTHING
        events: list[TurnEvent] = []
        self._on_vad_event(event, now, closing, events)
        return TurnStep(b"", tuple(events))

    def _from_end_turn(
        self, asked: CheckRequest | TurnEnd | None, now: float, event: VadEvent | None
    ) -> tuple[CheckRequest | None, VadEvent | None]:
        if isinstance(asked, CheckRequest):
            return asked, event
        if isinstance(asked, TurnEnd):
            return None, self._end_speech(asked, now) or event
        return None, event

    def _end_speech(self, end: TurnEnd, now: float) -> SpeechEnd | None:
        """End the VAD's utterance for the end-of-turn policy; None if it has none."""
        speech_end = self.vad.end_now(now)
        if speech_end is not None:
            p = "-" if end.probability is None else f"{end.probability:.2f}"
            self._log.info("[TURN] %s after %d ms of silence (p=%s)", end.reason,
                           end.silence_ms, p)
        return speech_end

    def _log_caller_over_echo(self) -> None:
        echo = self.echo
        aec = echo.canceller
        coherence = "-" if echo.coherence is None else "{:.2f}/{:.2f}".format(*echo.coherence)
        self._log.info(
            "[ECHO] caller heard over our audio: evidence=%s loss_bound=%.0fdB erle=%s "
            "coherence(residual/inbound)=%s",
            echo.evidence, echo.path.bound_db,
            "-" if aec is None else f"{aec.erle_db:.0f}dB", coherence,
        )

    def feed_gap(self, ms: int, now: float, *, closing: bool = False) -> TurnStep:
        """Count `ms` of inbound frames that never came as silence."""
        event = self.vad.feed_gap(ms, now)
        self.echo.gap(ms)
        self._audio_ms += max(0, ms)
        check = None
        if self.end_turn is not None:
            if event is not None:
                self.end_turn.reset()
            else:
                check, event = self._from_end_turn(self.end_turn.feed_gap(ms, now), now, None)
        if event is None:
            return TurnStep(b"", (), check) if check is not None else _NOTHING
        events: list[TurnEvent] = []
        self._on_vad_event(event, now, closing, events)
        return TurnStep(b"", tuple(events), check)

    def _forward(self, frame_ulaw: bytes, in_window: bool) -> bytes:
        held = self._held
        if (self._in_utterance and self._caller) or not in_window:
            if not held:
                return frame_ulaw
            if not self._in_utterance:
                held.drop()  # held echo, and the window is over: drop it
                return frame_ulaw
            # Speech that began under the echo window: send what was held back first,
            # it holds the first syllable.
            return held.release(self._audio_ms, self._first_caller_ms) + frame_ulaw
        held.hold(frame_ulaw)
        self._blocked = self._blocked or self._in_utterance
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("[ECHO] blocking frame to OpenAI, VAD state kept")
        return b""

    def _begin(self) -> None:
        self._in_utterance = True
        self._first_caller_ms = None
        self._caller = False
        self._restart_caller_count()
        self._blocked = False
        self._barged = False
        self._started = False

    def _restart_caller_count(self) -> None:
        """Count this utterance's caller speech from nothing (a new utterance, or caller
        frames too far apart to be one caller)."""
        self._caller_ms = 0
        self._needed_ms = self.config.barge_in_min_ms
        self._caller_sure = False
        self._held_ms = 0

    def _on_vad_event(
        self, event: SpeechStart | SpeechEnd, now: float, closing: bool, events: list[TurnEvent]
    ) -> None:
        if isinstance(event, SpeechStart):
            return
        self._in_utterance = False
        duration = event.duration_s
        echo = not self._caller
        if not echo:
            caller_s = (self._speech_until_ms - self._caller_from_ms) / 1000.0
            duration = min(duration, max(caller_s, 0.0))
        self._log.info("END OF UTTERANCE: %.2fs echo_blocked=%s", duration, self._blocked)
        reason = skip_reason(closing, echo, duration, self.config.min_utterance_ms)
        if reason is None:
            events.append(EndOfUtterance(now, duration, self._blocked))
            return
        self._log.info("[UTT] SKIPPED: %s", reason)
        events.append(UtteranceSkipped(now, reason, duration, self._barged))
