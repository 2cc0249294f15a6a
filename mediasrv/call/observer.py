"""The seam between a call and metrics: calls report, an Observer counts."""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    def call_started(self) -> None: ...
    def call_ended(self, reason: str) -> None: ...
    def barge_in(self, latency_ms: float) -> None: ...
    def drain(self, outcome: str) -> None: ...
    def backend_error(self, code: str) -> None: ...
    def reconnect(self) -> None: ...
    def bad_input(self) -> None: ...
    def response_latency(self, ms: float) -> None: ...


class NullObserver:
    """Counts nothing (tests, scripts)."""

    def call_started(self) -> None:
        pass

    def call_ended(self, reason: str) -> None:
        pass

    def barge_in(self, latency_ms: float) -> None:
        pass

    def drain(self, outcome: str) -> None:
        pass

    def backend_error(self, code: str) -> None:
        pass

    def reconnect(self) -> None:
        pass

    def bad_input(self) -> None:
        pass

    def response_latency(self, ms: float) -> None:
        pass


NULL_OBSERVER: Observer = NullObserver()
