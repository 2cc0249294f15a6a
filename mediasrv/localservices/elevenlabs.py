"""The local ElevenLabs stand-in: `multi-stream-input` WebSocket TTS on loopback.

Layer: stand-ins.

    with LocalElevenLabs().start() as tts:
        tts.url("voice123", model_id="eleven_flash_v2_5")
        # ws://127.0.0.1:<port>/v1/text-to-speech/voice123/multi-stream-input?...
        tts.api_key   # what to send in the `xi-api-key` header

Pure decisions are in `elevenlabs_wire.py` (handshake, messages) and
`elevenlabs_session.py` (contexts, generation, alignment, timeouts); speech comes from
`voice.py` (espeak-ng). This module wires them to the threaded shell.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urlencode

from mediasrv.clock import Clock
from mediasrv.errors import ConfigError

from . import elevenlabs_wire as wire
from .common import Fault, Stats
from .elevenlabs_session import TtsConfig, TtsSession
from .voice import EspeakVoice, Voice
from .wsserver import Headers, Opened, Rejected, WsServer, WsStandIn

log = logging.getLogger(__name__)

DEFAULT_KEY = "local-elevenlabs-key"  # not a secret: the stand-in is loopback-only
JSON = [("content-type", "application/json")]


@dataclass(frozen=True)
class ElevenLabsOptions:
    """Key, voice engine, pacing/spelling (`TtsConfig`) and the fault to inject."""

    api_key: str = DEFAULT_KEY
    tts: TtsConfig = field(default_factory=TtsConfig)
    fault: Fault | None = None
    socket_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ConfigError("api_key must not be empty")
        if self.tts.speed <= 0 or self.tts.chunk_ms < 20 or self.tts.first_audio_s < 0:
            raise ConfigError("tts: speed must be > 0, chunk_ms >= 20, first_audio_s >= 0")


class ElevenLabsService:
    """Decides each upgrade to multi-stream-input and builds its session."""

    def __init__(self, options: ElevenLabsOptions, voice: Voice, stats: Stats) -> None:
        self._options = options
        self._voice = voice
        self._stats = stats

    def open(self, target: str, headers: Headers, now: float) -> Opened | Rejected:
        try:
            params = wire.parse_target(target)
        except wire.QueryError as exc:
            log.info("elevenlabs stand-in: handshake refused (422): %s", exc)
            self._stats.add("params_refused")
            return Rejected(422, exc.body(), JSON)
        if params is None:
            return Rejected(404, b'{"detail":"Not Found"}', JSON)
        key = wire.header_key(headers)
        if key is not None and key != self._options.api_key:
            self._stats.add("auth_refused")
            return Rejected(401, wire.auth_error(), JSON)
        if key is None:
            log.info("elevenlabs stand-in: no xi-api-key header: the first message will fail")
        session = TtsSession(params, self._voice, self._options.tts, self._stats, now,
                             authenticated=key is not None)
        log.info("elevenlabs stand-in: session opened (voice %s, model %s, sync_alignment %s)",
                 params.voice_id, params.model_id, params.sync_alignment)
        return Opened(session)


class LocalElevenLabs(WsStandIn):
    """A local, offline ElevenLabs multi-context TTS server."""

    def __init__(self, options: ElevenLabsOptions | None = None, voice: Voice | None = None,
                 clock: Clock | None = None) -> None:
        self.options = options or ElevenLabsOptions()
        stats = Stats()
        service = ElevenLabsService(self.options, voice or EspeakVoice(), stats)
        server = WsServer("elevenlabs", service, stats, self.options.fault, clock,
                          self.options.socket_timeout_s)
        super().__init__(server, stats)

    @property
    def api_key(self) -> str:
        return self.options.api_key

    def url(self, voice_id: str = "local-voice", **query: str) -> str:
        """Return the multi-stream-input URL; `query` defaults to ulaw_8000 with alignment."""
        params = {"model_id": "eleven_flash_v2_5", "output_format": "ulaw_8000",
                  "sync_alignment": "true", **query}
        return (f"{self.base_url}/v1/text-to-speech/{voice_id}/multi-stream-input?"
                f"{urlencode(params)}")
