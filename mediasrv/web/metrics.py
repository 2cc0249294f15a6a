"""Prometheus metrics (prometheus-client), one registry per app; implements Observer.

Layer: web.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mediasrv.call import Call

# `*_created` samples (the time each series was first made) were a third of the page and
# say nothing an operator uses: counters are read as rates. The switch is process-wide
# and read when a series is made, so it is flipped before any Metrics exists.
disable_created_metrics()


class Metrics:
    """Every series mediasrv exports; also the calls' Observer."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.active_calls = Gauge("mediasrv_active_calls", "Calls in progress", registry=r)
        self.calls_ended = Counter(
            "mediasrv_calls_ended", "Calls ended, by reason", ["reason"], registry=r
        )
        self.calls_rejected = Counter(
            "mediasrv_calls_rejected", "Calls refused (capacity or draining)", registry=r
        )
        self.calls_handed_off = Counter(
            "mediasrv_calls_handed_off", "Calls this full instance redirected to another",
            registry=r,
        )
        self.reserved_calls = Gauge(
            "mediasrv_reserved_calls", "Slots reserved at /voice, stream not yet here", registry=r
        )
        self.barge_ins = Counter("mediasrv_barge_ins", "Barge-ins", registry=r)
        self.barge_in_latency = Histogram(
            "mediasrv_barge_in_trigger_to_clear_ms", "Barge-in trigger to clear sent (ms)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 250), registry=r,
        )
        self.drains = Counter("mediasrv_drains", "Drain outcomes", ["outcome"], registry=r)
        self.backend_errors = Counter(
            "mediasrv_backend_errors", "Realtime error events by code", ["code"], registry=r
        )
        self.reconnects = Counter("mediasrv_realtime_reconnects", "Realtime losses", registry=r)
        self.bad_inputs = Counter("mediasrv_bad_inputs", "Twilio messages dropped", registry=r)
        self.response_latency_ms = Histogram(
            "mediasrv_response_latency_ms", "First delta received to first frame sent (ms)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200), registry=r,
        )
        self.tx_late = Gauge("mediasrv_tx_late_frames", "Tx re-anchors, live calls", registry=r)
        self.tx_underruns = Gauge("mediasrv_tx_underruns", "Tx underruns, live calls", registry=r)
        self.queue_depth = Gauge(
            "mediasrv_queue_frames", "Queued items, live calls", ["queue"], registry=r
        )
        # Per-call counters folded in when a call ends (the gauges above only see live calls).
        self.tx_late_total = Counter(
            "mediasrv_tx_late_frames_ended", "Tx re-anchors of ended calls", registry=r
        )
        self.tx_underruns_total = Counter(
            "mediasrv_tx_underruns_ended", "Tx underruns of ended calls", registry=r
        )
        self.dead_air = Counter(
            "mediasrv_dead_air", "Waits of more than 2 s of silence for the AI", registry=r
        )
        self.inbound_flood_dropped = Counter(
            "mediasrv_inbound_flood_dropped", "Caller frames dropped: faster than real time",
            registry=r,
        )
        self.rest_hangups = Counter(
            "mediasrv_rest_hangups", "Calls ended through the Twilio REST API", ["outcome"],
            registry=r,
        )
        self.shutdown_calls = Counter(
            "mediasrv_shutdown_calls", "Calls at shutdown, by what happened", ["outcome"],
            registry=r,
        )

    # Observer
    def call_started(self) -> None:
        pass

    def call_ended(self, reason: str) -> None:
        self.calls_ended.labels(reason=_reason_label(reason)).inc()

    def barge_in(self, latency_ms: float) -> None:
        self.barge_ins.inc()
        self.barge_in_latency.observe(latency_ms)

    def drain(self, outcome: str) -> None:
        self.drains.labels(outcome=outcome).inc()

    def backend_error(self, code: str) -> None:
        self.backend_errors.labels(code=code[:60]).inc()

    def reconnect(self) -> None:
        self.reconnects.inc()

    def bad_input(self) -> None:
        self.bad_inputs.inc()

    def response_latency(self, ms: float) -> None:
        self.response_latency_ms.observe(ms)

    def set_active(self, calls: Iterable[Call]) -> None:
        """Refresh the gauges from the live calls (at scrape time, not per frame)."""
        stats = [c.stats() for c in calls]
        self.active_calls.set(len(stats))
        self.tx_late.set(sum(s.tx_late_frames for s in stats))
        self.tx_underruns.set(sum(s.tx_underruns for s in stats))
        self.queue_depth.labels(queue="tx").set(sum(s.queued_frames for s in stats))
        self.queue_depth.labels(queue="backlog").set(sum(s.overflow_frames for s in stats))
        self.queue_depth.labels(queue="twilio_in").set(sum(s.twilio_backlog for s in stats))

    def call_finished(self, call: Call) -> None:
        """Fold an ended call's own counters into the process totals."""
        s = call.stats()
        self.tx_late_total.inc(s.tx_late_frames)
        self.tx_underruns_total.inc(s.tx_underruns)
        self.dead_air.inc(s.dead_air_events)
        self.inbound_flood_dropped.inc(s.flood_dropped)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _reason_label(reason: str) -> str:
    # Bounded label values: the reason's first words, not free text.
    return reason.split(":")[0].split("(")[0].strip()[:40] or "unknown"
