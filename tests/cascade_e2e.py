"""End-to-end helpers for AGENT_BACKEND=cascade (mediasrv.testing.cascade places the
calls): a void call placed once more, the words a caller heard judged independently."""

from __future__ import annotations

from collections.abc import Sequence

from mediasrv.localservices.voice import EspeakVoice
from mediasrv.testing.cascade import SHORT, CascadeOutcome, Job, StandIns, place

__all__ = ["SHORT", "CascadeOutcome", "Job", "StandIns", "plain", "run", "words_heard"]

MAX_LATE_MS = 150.0  # emulator slip that voids a call (as in e2e_helpers)
ATTEMPTS = 2
ANSWER = "I would like to know the opening hours of your shop on weekends and on holidays"


def run(jobs: Sequence[Job]) -> list[CascadeOutcome]:
    """Place every job's call at once; a call the emulator itself fell behind in is void
    and placed once more (a second void call fails the test)."""
    results: dict[int, CascadeOutcome] = {}
    for _ in range(ATTEMPTS):
        todo = [i for i in range(len(jobs)) if _void(results.get(i))]
        if not todo:
            break
        for i, outcome in zip(todo, place([jobs[i] for i in todo]), strict=True):
            results[i] = outcome
    out = [results[i] for i in range(len(jobs))]
    for r in out:
        assert r.o.result.connected, f"{r.o.label}: call failed: {r.o.result.error}"
        assert r.o.server_ended, f"{r.o.label}: the server never logged the call's end"
        assert not _void(r), f"{r.o.label}: emulator behind real time twice: overloaded"
    return out


def _void(r: CascadeOutcome | None) -> bool:
    return r is None or float(r.o.summary["emulator"]["tx_late_max_ms"]) > MAX_LATE_MS


def words_heard(renderings: Sequence[str], played_ms: float) -> tuple[list[str], list[str]]:
    """Return (every word of a context, the words whose first sound started before
    `played_ms`), by rendering its texts again with the stand-in's own voice: espeak-ng
    is deterministic, and each rendering follows the one before it in the audio."""
    voice = EspeakVoice()
    words: list[tuple[str, float]] = []
    offset = 0.0
    for text in renderings:
        rendered = voice.render(text)
        start = None
        for i, char in enumerate(text):
            if char.isspace():
                start = None
            elif start is None:
                start = offset + rendered.starts_ms[i]
                words.append((text[i:].split()[0], start))
        offset += len(rendered.audio) / 8.0
    return [w for w, _ in words], [w for w, t in words if t < played_ms]


def plain(words: Sequence[str]) -> list[str]:
    return [w.strip(".,:;!?").lower() for w in words]
