"""End-to-end helpers for AGENT_BACKEND=cascade: the real app, the three local stand-ins
(canned transcripts), the emulator, real sockets.

Every call gets its own server and its own stand-ins (so each can inject its own
fault), and all the calls of a test run at once: a test takes as long as its longest
call. Besides the emulator's record and the server's log lines, an outcome carries what
the stand-ins saw: every chat request (the history the model was given) and every
stretch of text the voice rendered, by context.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from mediasrv.emulator.scenarios import Scenario
from mediasrv.localservices import (
    ChatOptions,
    DeepgramOptions,
    ElevenLabsOptions,
    LocalChat,
    LocalDeepgram,
    LocalElevenLabs,
)
from mediasrv.localservices.voice import EspeakVoice
from mediasrv.testing.harness import LocalServer, LogCapture, Outcome, run_calls
from mediasrv.web.settings import load_settings

MAX_LATE_MS = 150.0  # emulator slip that voids a call (as in e2e_helpers)
ATTEMPTS = 2
ANSWER = "I would like to know the opening hours of your shop on weekends and on holidays"
SHORT = ("yes I would like to check on my order please", "what time is it")  # ~3 s answers


@dataclass(frozen=True)
class StandIns:
    """What each stand-in of one call does (its options, faults included)."""

    transcripts: tuple[str, ...] = SHORT  # one per final segment, in turn
    chat: ChatOptions = field(default_factory=ChatOptions)
    deepgram: DeepgramOptions | None = None  # None: canned `transcripts`, no fault
    tts: ElevenLabsOptions = field(default_factory=ElevenLabsOptions)


@dataclass(frozen=True)
class Job:
    scenario: Scenario
    mode: str = "local"
    standins: StandIns = field(default_factory=StandIns)


@dataclass(frozen=True)
class CascadeOutcome:
    job: Job
    o: Outcome
    chat_requests: list[dict[str, Any]]
    chat_counts: dict[str, int]
    generated: list[dict[str, str]]  # {"context", "text"} per rendering, in order

    def spoken(self, context: str) -> list[str]:
        return [g["text"] for g in self.generated if g["context"] == context]


def run(jobs: Sequence[Job]) -> list[CascadeOutcome]:
    """Place every job's call at once; a call the emulator itself fell behind in is void
    and placed once more (a second void call fails the test)."""
    results: dict[int, CascadeOutcome] = {}
    for _ in range(ATTEMPTS):
        todo = [i for i in range(len(jobs)) if _void(results.get(i))]
        if not todo:
            break
        for i, outcome in zip(todo, _place([jobs[i] for i in todo]), strict=True):
            results[i] = outcome
    out = [results[i] for i in range(len(jobs))]
    for r in out:
        assert r.o.result.connected, f"{r.o.label}: call failed: {r.o.result.error}"
        assert r.o.server_ended, f"{r.o.label}: the server never logged the call's end"
        assert not _void(r), f"{r.o.label}: emulator behind real time twice: overloaded"
    return out


def _void(r: CascadeOutcome | None) -> bool:
    return r is None or float(r.o.summary["emulator"]["tx_late_max_ms"]) > MAX_LATE_MS


def _place(jobs: Sequence[Job]) -> list[CascadeOutcome]:
    with LogCapture() as logs, ExitStack() as stack:
        specs, standins = [], []
        for job in jobs:
            s = job.standins
            dg = stack.enter_context(LocalDeepgram(s.deepgram or DeepgramOptions(
                recognizer="canned", canned_transcripts=s.transcripts)))
            chat = stack.enter_context(LocalChat(s.chat))
            tts = stack.enter_context(LocalElevenLabs(s.tts))
            dg.start(), chat.start(), tts.start()
            env = {"AGENT_BACKEND": "cascade", "DEEPGRAM_URL": dg.url,
                   "DEEPGRAM_API_KEY": dg.api_key, "OPENAI_BASE_URL": chat.base_url,
                   "OPENAI_API_KEY": chat.api_key, "ELEVENLABS_URL": tts.base_url,
                   "ELEVENLABS_API_KEY": tts.api_key, "ELEVENLABS_VOICE_ID": "e2e-voice"}
            settings = load_settings(env, turn_detection=job.mode, **job.scenario.overrides)
            server = stack.enter_context(LocalServer(settings))
            specs.append((server.base_url, job.scenario, job.mode))
            standins.append((chat, tts))
        outcomes = run_calls(specs, logs)
        return [CascadeOutcome(job, o, chat.stats()["records"].get("requests", []),
                               chat.stats()["counts"],
                               tts.stats()["records"].get("generated", []))
                for job, o, (chat, tts) in zip(jobs, outcomes, standins, strict=True)]


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
