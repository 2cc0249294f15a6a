"""One ElevenLabs multi-stream-input connection as a pure state machine.

Layer: stand-ins.

Contexts (PROTOCOLS-2 section 5): any message naming a new `context_id` opens one (so a
flush or keepalive for a context never initialised opens a phantom one, as on the real
service); a sixth open context is refused with `max_active_conversations` and a 1008
close. Text accumulates per context; a *generation* renders the buffered text (up to the
last space) once it reaches the next `chunk_length_schedule` threshold, or all of it on
`flush`. `close_context` drops unflushed text, lets audio already generated play out,
then sends exactly one `isFinal` for the context. `close_socket` ends everything (1000).

Audio: each generation is rendered by the injected `Voice`, cut into `chunk_ms` audio
messages due from `now + first_audio_s` at `speed` x real time; a context's generations
follow each other. Each message carries `alignment` and `normalizedAlignment` for the
characters that start in it, times relative to the chunk (never to the response), so a
client must add its own running offset, exactly the trap the real service sets. Without
`sync_alignment` only a generation's first chunk has alignment; the others have null.
`TtsConfig` can also serve the variants clients meet live: `context_id` and
`charsDurationsMs` spellings, entries of several characters, and `flush_done` messages.

Input timing: `inactivity_timeout` seconds (20 by default) without a client message
send `input_timeout_exceeded` and close the socket with 1008.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import logging
from dataclasses import dataclass
from typing import Literal

from . import elevenlabs_wire as wire
from .common import JsonObj, Outbox, Stats, Step
from .voice import Rendered, Voice

log = logging.getLogger(__name__)

MAX_CONTEXTS = 5
# The real close reason is the error message cut to 120 characters: elevenlabs-docs#426
# quotes "...Please make sure to eit" for the inactivity close (exactly 120).
CLOSE_REASON_CHARS = 120
DEFAULT_CONTEXT = "default"  # [assumed] the context of messages without a context_id


@dataclass(frozen=True)
class TtsConfig:
    """The stand-in's own pacing and spelling knobs (not ElevenLabs parameters)."""

    first_audio_s: float = 0.1  # from a generation's trigger to its first audio message
    speed: float = 4.0  # audio messages go out this many times faster than real time
    chunk_ms: int = 500  # audio per message
    context_key: Literal["contextId", "context_id"] = "contextId"  # newer servers: snake
    durations_key: Literal["charDurationsMs", "charsDurationsMs"] = "charDurationsMs"
    chars_per_entry: int = 1  # > 1: alignment entries of several characters, as seen live
    flush_done: bool = False  # also send the undocumented {"type": "flush_done"} message


@dataclass
class _Context:
    id: str
    schedule: tuple[int, ...]
    generation_config: JsonObj | None
    buffer: str = ""
    generations: int = 0
    free_at: float = 0.0  # when this context's next generation may start sending


class TtsSession:
    """ElevenLabs multi-context TTS over one socket: pure, `now` comes from the shell."""

    def __init__(self, params: wire.StreamParams, voice: Voice, config: TtsConfig,
                 stats: Stats, now: float, authenticated: bool) -> None:
        self._params = params
        self._voice = voice
        self._config = config
        self._stats = stats
        self._authenticated = authenticated
        self._contexts: dict[str, _Context] = {}
        self._queue: list[tuple[float, int, str, JsonObj]] = []  # (due, seq, context, msg)
        self._seq = itertools.count()
        self._messages = 0
        self._voice_settings: JsonObj | None = None  # as given in the first message
        self._deadline = now + params.inactivity_timeout_s
        self._out = Outbox()
        stats.add("sessions")

    # -- inputs from the shell ----------------------------------------------------------

    def on_text(self, text: str, now: float) -> Step:
        if self._out.closing:
            return self._out.take()
        self._deadline = now + self._params.inactivity_timeout_s
        try:
            msg = wire.parse_message(text)
            if not self._authenticated:
                raise wire.MessageError(wire.NO_KEY, "authentication_required")
            self._handle(msg, now)
        except wire.MessageError as exc:
            log.info("elevenlabs stand-in: %s: %s", exc.error, exc)
            self._stats.add(f"error_{exc.error}")
            self._fail(exc)
        self._messages += 1
        return self._out.take()

    def on_binary(self, data: bytes, now: float) -> Step:
        self._stats.add("error_binary_frame")
        self._fail(wire.MessageError(wire.BAD_MESSAGE, "invalid_input_message"))
        return self._out.take()

    def tick(self, now: float) -> Step:
        while self._queue and self._queue[0][0] <= now and not self._out.closing:
            message = heapq.heappop(self._queue)[3]
            self._out.send(message)
            kind = "audio_messages" if "audio" in message else \
                "final_sent" if message.get("isFinal") else "other_messages"
            self._stats.add(kind)
        if not self._out.closing and now >= self._deadline:
            self._stats.add("error_input_timeout_exceeded")
            self._fail(wire.MessageError(
                wire.inactivity_message(self._params.inactivity_timeout_s),
                "input_timeout_exceeded"))
        return self._out.take()

    def next_deadline(self) -> float | None:
        if self._out.closing:
            return None
        return min(self._deadline, self._queue[0][0]) if self._queue else self._deadline

    def ended(self) -> None:
        self._stats.add("sessions_ended")

    # -- messages -----------------------------------------------------------------------

    def _handle(self, msg: JsonObj, now: float) -> None:
        self._check_voice_settings(msg)
        if msg.get("close_socket"):
            self._stats.add("close_socket")
            self._queue.clear()
            self._out.close(1000, "")
            return
        context_id = msg.get("context_id", DEFAULT_CONTEXT)
        if msg.get("close_context"):
            self._close_context(context_id, now)
            return
        ctx = self._context(context_id, msg)
        text = msg.get("text", "")
        if text == "" and not msg.get("flush"):
            self._stats.add("keepalives")
            return
        ctx.buffer += text
        if msg.get("flush"):
            self._stats.add("flushes")
            self._generate(ctx, ctx.buffer, now)
            if self._config.flush_done:
                done = {"type": "flush_done", "context_id": ctx.id, "flush_done": True}
                heapq.heappush(self._queue, (max(now, ctx.free_at), next(self._seq), ctx.id,
                                             done))
            return
        self._generate_by_schedule(ctx, now)

    def _check_voice_settings(self, msg: JsonObj) -> None:
        if self._messages == 0:
            self._voice_settings = msg.get("voice_settings")
        elif "voice_settings" in msg and msg["voice_settings"] != self._voice_settings:
            raise wire.MessageError(wire.VOICE_SETTINGS_CHANGED, "invalid_voice_settings")

    def _context(self, context_id: str, msg: JsonObj) -> _Context:
        ctx = self._contexts.get(context_id)
        config = msg.get("generation_config")
        if ctx is None:
            if len(self._contexts) >= MAX_CONTEXTS:
                raise wire.MessageError(wire.TOO_MANY_CONTEXTS, "max_active_conversations")
            ctx = _Context(context_id, wire.schedule(config or {}), config)
            self._contexts[context_id] = ctx
            self._stats.add("contexts_opened")
        elif config is not None and config != ctx.generation_config:
            raise wire.MessageError(wire.VOICE_SETTINGS_CHANGED.replace(
                "voice_settings", "generation_config"), "invalid_generation_config")
        return ctx

    def _close_context(self, context_id: str, now: float) -> None:
        ctx = self._contexts.pop(context_id, None)
        if ctx is None:
            self._stats.add("close_unknown_context")
            return
        if ctx.buffer.strip():
            log.info("elevenlabs stand-in: context %s closed with %d unflushed characters "
                     "(dropped)", context_id, len(ctx.buffer))
            self._stats.add("unflushed_chars_dropped", len(ctx.buffer))
        self._stats.add("contexts_closed")
        final = {"isFinal": True, self._config.context_key: context_id}
        heapq.heappush(self._queue, (max(now, ctx.free_at), next(self._seq), context_id, final))

    # -- generation ---------------------------------------------------------------------

    def _generate_by_schedule(self, ctx: _Context, now: float) -> None:
        while True:
            threshold = ctx.schedule[min(ctx.generations, len(ctx.schedule) - 1)]
            cut = ctx.buffer.rfind(" ") + 1 if not self._params.auto_mode else \
                max(ctx.buffer.rfind(p) + 2 for p in (". ", "! ", "? "))
            if len(ctx.buffer) < threshold and not (self._params.auto_mode and cut > 1):
                return
            if cut <= 1 or not ctx.buffer[:cut].strip():
                return
            self._generate(ctx, ctx.buffer[:cut], now)

    def _generate(self, ctx: _Context, text: str, now: float) -> None:
        ctx.buffer = ctx.buffer[len(text):]
        if not text.strip():
            return
        rendered = self._voice.render(text)
        ctx.generations += 1
        self._stats.add("generations")
        self._stats.add("audio_ms", len(rendered.audio) // 8)
        self._stats.record("generated", {"context": ctx.id, "text": text})
        chunk = self._config.chunk_ms * 8
        interval = self._config.chunk_ms / 1000 / self._config.speed
        start = max(now + self._config.first_audio_s, ctx.free_at)
        count = max(1, -(-len(rendered.audio) // chunk))
        for k in range(count):
            message = self._audio_message(ctx.id, text, rendered, k)
            heapq.heappush(self._queue, (start + k * interval, next(self._seq), ctx.id,
                                         message))
        ctx.free_at = start + count * interval

    def _audio_message(self, context_id: str, text: str, rendered: Rendered,
                       k: int) -> JsonObj:
        span = self._config.chunk_ms
        audio = rendered.audio[k * span * 8 : (k + 1) * span * 8]
        last = (k + 1) * span * 8 >= len(rendered.audio)
        picked = [i for i, start in enumerate(rendered.starts_ms)
                  if start >= k * span and (last or start < (k + 1) * span)]
        group = self._config.chars_per_entry
        entries = [picked[j : j + group] for j in range(0, len(picked), group)]
        alignment: JsonObj | None = {
            "chars": ["".join(text[i] for i in e) for e in entries],
            "charStartTimesMs": [rendered.starts_ms[e[0]] - k * span for e in entries],
            self._config.durations_key: [sum(rendered.durations_ms[i] for i in e)
                                         for e in entries],
        }
        if not self._params.sync_alignment and k > 0:
            alignment = None
        return {"audio": base64.b64encode(audio).decode("ascii"), "isFinal": None,
                "normalizedAlignment": alignment, "alignment": alignment,
                self._config.context_key: context_id}

    def _fail(self, exc: wire.MessageError) -> None:
        self._queue.clear()
        self._out.send(exc.event())
        self._out.close(1008, str(exc)[:CLOSE_REASON_CHARS])
