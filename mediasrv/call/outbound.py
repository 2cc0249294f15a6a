"""The call's side of the tx thread: barge-in, and what the tx thread reports.

Layer: call.

Barge-in -- the caller talks over the AI, and the AI stops at once -- has two halves on
two threads. `trigger` runs on whichever thread heard the caller (the rx
loop with our VAD, the backend's reader with the server's) and only decides: under the
call lock the response ledger cuts the playing response off (`BargeInPlan`), the
playout buffer drops its audio and puts a `ClearRequest` first in line, and speaking
state ends. Nothing there waits on a socket, so the backend's reader goes straight back
to reading. The tx thread, woken, sends `clear` to Twilio and calls `after_clear`: the
cut is taken where the `clear` found playback (the playout timeline, corrected by the
mark echoes), then `truncate` at the heard ms and `cancel` go to the backend, in that
order: clear, truncate, cancel.

`TxReports` is what the tx thread tells the call as it goes (tx.TxListener): marks and
probes about to leave are recorded in the playback ledger first (their echo may come
back before the tx thread runs on), a response's first frame gives its latency, an
item's last frame may end its drain, and a queued `ClearRequest` is barge-in's second
half.
"""

from __future__ import annotations

from mediasrv.call.core import CallCore
from mediasrv.call.playout import ClearRequest
from mediasrv.policy.playback import ClearPoint


class BargeIn:
    def __init__(self, core: CallCore) -> None:
        self._core = core

    def trigger(self, trigger: str, now: float, speech_ms: int = 0) -> bool:
        """Cut off the AI if any of its audio is still to be heard; False if none is."""
        core = self._core
        with core.lock:
            plan = core.ledger.barge_in(core.ai_playing_locked())
            if plan is None:
                return False
            core.playout.clear_locked(ClearRequest(plan, trigger, now, speech_ms))
            core.ai_speaking.clear()
        core.wake()  # its drain watch is over
        return True

    def before_clear(self) -> None:
        """(tx thread) Marks not echoed by now come back from the `clear`, unplayed."""
        with self._core.lock:
            self._core.playback.on_clear()

    def after_clear(self, request: ClearRequest, point: ClearPoint) -> None:
        """(tx thread) Truncate at what was heard, cancel if still generating; report."""
        core, plan = self._core, request.plan
        with core.lock:  # cut where the clear found playback, not where the trigger did
            cuts = core.playback.truncations(plan.response_id, point)
        if not plan.local:
            for cut in cuts:
                core.backend.truncate(cut.item_id, cut.content_index, cut.audio_end_ms)
            if plan.cancel:
                core.backend.cancel(plan.response_id)
        latency_ms = (point.at - request.triggered_at) * 1000.0
        core.observer.barge_in(latency_ms)
        core.recording.barge_in(point.at - core.started_at,
                                [(c.item_id, c.audio_end_ms) for c in cuts])
        core.log.info("[BARGE-IN] trigger=%s speech_ms=%d response=%s heard_ms=%s "
                      "trigger_to_clear_ms=%.1f cancel=%s", request.trigger, request.speech_ms,
                      plan.response_id, [c.audio_end_ms for c in cuts], latency_ms, plan.cancel)
        core.wake()  # the marks the clear echoes no longer count as unheard


class TxReports:
    """What the tx thread reports (`TxListener`), on the tx thread."""

    def __init__(self, core: CallCore, barge_in: BargeIn) -> None:
        self._core = core
        self._barge_in = barge_in

    def before_mark(self, name: str, item_id: str, ms: float, is_end: bool,
                    play_end: float) -> None:
        with self._core.lock:
            self._core.playback.on_mark_sent(name, item_id, ms, is_end, play_end)

    def before_probe(self, name: str, sent_at: float) -> None:
        with self._core.lock:
            self._core.playback.on_probe_sent(name, sent_at)

    def first_frame(self, response_id: str, now: float) -> None:
        with self._core.lock:
            received = self._core.ledger.first_delta_at(response_id)
        if received is not None:
            self._core.observer.response_latency((now - received) * 1000.0)

    def item_sent(self, response_id: str) -> None:
        self._core.wake()  # its drain may be complete

    def frame_sent(self, audio: bytes, plays_at: float) -> None:
        self._core.recording.ai_frame(audio, plays_at - self._core.started_at)

    def before_clear(self) -> None:
        self._barge_in.before_clear()

    def after_clear(self, request: ClearRequest, point: ClearPoint) -> None:
        self._barge_in.after_clear(request, point)
