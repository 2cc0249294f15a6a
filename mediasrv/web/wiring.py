"""From settings to the parts of a call: its CallConfig and the backend it opens.

Layer: web. The only place where the environment's Settings meet the call and the
backend: neither of those imports this layer, they take their own config objects.
"""

from __future__ import annotations

import logging
import threading

from mediasrv.backends.base import Backend, EventSink
from mediasrv.backends.cascade.actions import CascadeConfig
from mediasrv.backends.cascade.backend import CascadeBackend, Services
from mediasrv.backends.realtime.backend import RealtimeBackend, RealtimeConfig
from mediasrv.backends.realtime.client import Connector
from mediasrv.call.core import CallConfig, OpenBackend
from mediasrv.call.observer import CallLog
from mediasrv.clock import Clock
from mediasrv.policy.turns import TurnConfig
from mediasrv.web.settings import Settings
from mediasrv.web.standins import local_service

log = logging.getLogger(__name__)
LOCAL_VOICE = "local-voice"  # the ElevenLabs stand-in speaks any voice id with espeak-ng
# Deepgram's endpointing with our own turn detection: finals come 300 ms into a pause,
# before our END_SILENCE_MS commit, so Finalize mostly finds the turn already final.
LOCAL_ENDPOINTING_MS = 300


def call_config(s: Settings) -> CallConfig:
    """Return what one call needs to know of the settings."""
    return CallConfig(
        turn_detection=s.turn_detection,
        greeting=s.greeting,
        prebuffer_ms=s.prebuffer_ms,
        mark_interval_ms=s.mark_interval_ms,
        append_batch_ms=s.append_batch_ms,
        drain_timeout_ms=s.drain_timeout_ms,
        silence_timeout_s=s.silence_timeout_s,
        max_call_s=s.max_call_s,
        stall_timeout_s=s.openai_stall_timeout_s,
        ws_max_message_bytes=s.ws_max_message_bytes,
        turn=TurnConfig(
            end_silence_ms=s.end_silence_ms,
            min_utterance_ms=s.min_utterance_ms,
            barge_in_min_ms=s.barge_in_min_ms,
            echo_window_ms=s.echo_window_ms,
            erl_db=s.echo_erl_db,
            echo_cancel=s.echo_cancel,
        ),
    )


def realtime_config(s: Settings) -> RealtimeConfig:
    """Return the Realtime session settings (`session.update`) of every call."""
    server_vad = (s.server_vad_threshold, s.server_vad_silence_ms)
    return RealtimeConfig(
        model=s.openai_realtime_model,
        instructions=s.instructions,
        voice=s.openai_voice,
        transcription_model=s.input_transcription_model,
        server_vad=server_vad if s.turn_detection == "server" else None,
    )


def realtime_backend(connect: Connector, s: Settings) -> OpenBackend:
    """Return how each call opens its Realtime backend through `connect`."""
    config = realtime_config(s)

    def open_backend(events: EventSink, *, closing: threading.Event, name: str,
                     logger: CallLog) -> Backend:
        return RealtimeBackend(connect, config, events, closing=closing, name=name,
                               logger=logger)

    return open_backend


def cascade_config(s: Settings) -> CascadeConfig:
    """Return how every call's cascade behaves."""
    return CascadeConfig(chat_model=s.openai_chat_model, instructions=s.instructions,
                         greeting=s.greeting, server_turns=s.turn_detection == "server")


def cascade_services(s: Settings) -> Services:
    """Return the three services' addresses and keys, starting stand-ins for missing keys."""
    found = {"deepgram": (s.deepgram_url, s.deepgram_api_key),
             "chat": (s.openai_base_url, s.openai_api_key),
             "elevenlabs": (s.elevenlabs_url, s.elevenlabs_api_key)}
    for service, key_name in (("deepgram", "DEEPGRAM_API_KEY"), ("chat", "OPENAI_API_KEY"),
                              ("elevenlabs", "ELEVENLABS_API_KEY")):
        if s.stand_in(service):
            found[service] = local_service(service)
            log.warning("!!! cascade: %s not set: %s is the BUILT-IN LOCAL stand-in at %s, "
                        "not the real service !!!", key_name, service, found[service][0])
        else:
            log.info("cascade: %s at %s", service, found[service][0])
    voice = s.elevenlabs_voice_id or LOCAL_VOICE
    endpointing = s.server_vad_silence_ms if s.turn_detection == "server" \
        else LOCAL_ENDPOINTING_MS
    return Services(
        deepgram_url=found["deepgram"][0], deepgram_key=found["deepgram"][1],
        deepgram_model=s.deepgram_model,
        chat_base_url=found["chat"][0], chat_key=found["chat"][1],
        elevenlabs_url=found["elevenlabs"][0], elevenlabs_key=found["elevenlabs"][1],
        voice_id=voice, tts_model=s.elevenlabs_model,
        connect_timeout_s=s.openai_connect_timeout_s, read_timeout_s=s.openai_stall_timeout_s,
        endpointing_ms=endpointing)


def cascade_backend(services: Services, s: Settings, clock: Clock) -> OpenBackend:
    """Return how each call opens its cascade (Deepgram -> chat -> ElevenLabs)."""
    config = cascade_config(s)

    def open_backend(events: EventSink, *, closing: threading.Event, name: str,
                     logger: CallLog) -> Backend:
        return CascadeBackend(services, config, events, closing=closing, name=name,
                              clock=clock, logger=logger)

    return open_backend
