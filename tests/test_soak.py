"""Short soak (the full one is scripts/soak.py): calls against a gunicorn server process
leave no call threads, file descriptors or sockets behind."""

from __future__ import annotations

import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from soak import (  # noqa: E402,I001
    back_to_baseline, failures, run_concurrent, run_sequential, sample, server, settled,
)


def test_30_sequential_and_10_concurrent_calls_leave_nothing_behind() -> None:
    with server({"MAX_CALLS": "20", "SILENCE_TIMEOUT_S": "3600", "LOG_LEVEL": "warning"}) as srv:
        assert failures(run_sequential(srv.base, 3, 0.2)) == 0  # warm-up: model, pool
        assert failures(run_concurrent(srv.base, 10, 0.2)) == 0
        base = sample(srv, "baseline", 13)
        assert failures(run_sequential(srv.base, 30, 0.2)) == 0
        assert failures(run_concurrent(srv.base, 10, 0.2)) == 0
        end = settled(srv, base, "end", 53)  # a leak stays; a socket closing goes
        ended = srv.text("/metrics")
    assert end.active_calls == 0
    assert back_to_baseline(base, end) == {"threads": True, "fds": True, "inet": True}, (base, end)
    counts = {s.labels["reason"]: s.value for f in text_string_to_metric_families(ended)
              for s in f.samples if s.name == "mediasrv_calls_ended_total"}
    assert sum(counts.values()) == 53, counts  # every call ended, each with a reason
    # caller-side endings: a stop, or the socket gone first (a send after the close)
    assert set(counts) <= {"caller hung up", "twilio socket closed", "twilio socket failed"}, counts
