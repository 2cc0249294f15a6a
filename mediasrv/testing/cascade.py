"""Cascade calls for real: the app with AGENT_BACKEND=cascade, the three local stand-ins,
the emulator, real sockets (the e2e tests, scripts/cascade_latency.py).

Layer: testing.

Every call gets its own server and its own stand-ins (so each can inject its own fault,
or its own canned transcripts), and all the calls of one `place` run at once. Besides
the emulator's record and the server's log lines, an outcome carries what the stand-ins
saw: every chat request (the history the model was given) and every stretch of text
the voice rendered, by context.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from mediasrv.emulator.metrics import item_of
from mediasrv.emulator.scenarios import Scenario
from mediasrv.localservices import (
    ChatOptions,
    DeepgramOptions,
    ElevenLabsOptions,
    LocalChat,
    LocalDeepgram,
    LocalElevenLabs,
)
from mediasrv.testing.harness import LocalServer, LogCapture, Outcome, run_calls
from mediasrv.web.settings import load_settings

SHORT = ("yes I would like to check on my order please", "what time is it")  # ~3 s answers
_PIPELINE = re.compile(r"\[PIPELINE\] (\S+): transcript->chat_sent_ms=([\d.]+) "
                       r"first_token->tts_text_ms=([\d.]+) ttft_ms=\S+ "
                       r"first_tts_audio_at=([\d.]+)")


@dataclass(frozen=True)
class StandIns:
    """What each stand-in of one call does (its options, faults included)."""

    transcripts: tuple[str, ...] = SHORT  # canned, one per final segment, in turn
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

    def pipeline(self) -> list[dict[str, float]]:
        """Return, per answer, the cascade's own three added latencies (ms).

        The first two come from the server's `[PIPELINE]` line; the third is the first
        TTS audio's arrival at the backend (monotonic, from the same line) to the first
        frame of that answer read from the server's socket by the emulator.
        """
        out = []
        for line in self.o.lines:
            m = _PIPELINE.search(line.message)
            if m is None:
                continue
            frame = self._first_frame(m[1].replace("resp", "item"))
            row = {"transcript_to_chat_sent_ms": float(m[2]),
                   "first_token_to_tts_text_ms": float(m[3])}
            if frame is not None:
                row["tts_audio_to_first_frame_ms"] = (self.o.t0 + frame - float(m[4])) * 1000.0
            out.append(row)
        return out

    def _first_frame(self, item: str) -> float | None:
        """Return when the emulator read the first frame of `item` (call time)."""
        r = self.o.result
        marks = [m for m in r.server_marks if item_of(m.name) == item]
        if not marks:
            return None
        offset = 0
        for at, nbytes in r.media_arrivals:  # the first mark follows the first frame
            offset += nbytes
            if offset >= marks[0].offset:
                return at
        return None


def start_standins(stack: ExitStack, s: StandIns
                   ) -> tuple[dict[str, str], LocalChat, LocalElevenLabs]:
    """Start one call's three stand-ins (stopped with `stack`); return the environment
    that points a server at them, and the chat and voice stand-ins (what they saw)."""
    dg = stack.enter_context(LocalDeepgram(s.deepgram or DeepgramOptions(
        recognizer="canned", canned_transcripts=s.transcripts)))
    chat = stack.enter_context(LocalChat(s.chat))
    tts = stack.enter_context(LocalElevenLabs(s.tts))
    dg.start(), chat.start(), tts.start()
    env = {"AGENT_BACKEND": "cascade", "DEEPGRAM_URL": dg.url,
           "DEEPGRAM_API_KEY": dg.api_key, "OPENAI_BASE_URL": chat.base_url,
           "OPENAI_API_KEY": chat.api_key, "ELEVENLABS_URL": tts.base_url,
           "ELEVENLABS_API_KEY": tts.api_key, "ELEVENLABS_VOICE_ID": "e2e-voice"}
    return env, chat, tts


def place(jobs: Sequence[Job]) -> list[CascadeOutcome]:
    """Place every job's call at once; return their outcomes in order."""
    with LogCapture() as logs, ExitStack() as stack:
        specs, standins = [], []
        for job in jobs:
            env, chat, tts = start_standins(stack, job.standins)
            settings = load_settings(env, turn_detection=job.mode, **job.scenario.overrides)
            server = stack.enter_context(LocalServer(settings))
            specs.append((server.base_url, job.scenario, job.mode))
            standins.append((chat, tts))
        outcomes = run_calls(specs, logs)
        return [CascadeOutcome(job, o, chat.stats()["records"].get("requests", []),
                               chat.stats()["counts"],
                               tts.stats()["records"].get("generated", []))
                for job, o, (chat, tts) in zip(jobs, outcomes, standins, strict=True)]
