"""Prometheus metrics (prometheus-client), one registry per app; implements Observer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.active_calls = Gauge("mediasrv_active_calls", "Calls in progress", registry=r)
        self.calls_ended = Counter(
            "mediasrv_calls_ended", "Calls ended, by reason", ["reason"], registry=r
        )
        self.calls_rejected = Counter(
            "mediasrv_calls_rejected", "Calls refused (capacity or draining)", registry=r
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

    def set_active(self, calls: Iterable[Any]) -> None:
        """Refresh the gauges from the live calls (at scrape time, not per frame)."""
        calls = list(calls)
        self.active_calls.set(len(calls))
        self.tx_late.set(sum(c.tx.stats.late_frames for c in calls if c.tx is not None))
        self.tx_underruns.set(sum(c.tx.stats.underruns for c in calls if c.tx is not None))
        self.queue_depth.labels(queue="audio_out").set(sum(c.audio_out_q.qsize() for c in calls))
        self.queue_depth.labels(queue="tx").set(sum(c.tx_q.qsize() for c in calls))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _reason_label(reason: str) -> str:
    # Bounded label values: the reason's first words, not free text.
    return reason.split(":")[0].split("(")[0].strip()[:40] or "unknown"
