"""From settings to the parts of a call: its CallConfig and the backend it opens.

Layer: web. The only place where the environment's Settings meet the call and the
backend: neither of those imports this layer, they take their own config objects.

The cascade's modules are imported by the functions that build it, only when
AGENT_BACKEND=cascade: the default Realtime backend's workers would hold them (1.7 MB of
code) for nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from mediasrv.backends.base import Backend, EventSink, ToolSpec
from mediasrv.backends.realtime.backend import RealtimeBackend, RealtimeConfig
from mediasrv.backends.realtime.client import Connector
from mediasrv.call.core import CallConfig, OpenBackend
from mediasrv.call.observer import CallLog
from mediasrv.call.turn_checks import CheckRunner, shared_turn_checks
from mediasrv.callctl.tools import ToolRegistry
from mediasrv.clock import Clock
from mediasrv.models import turn_model
from mediasrv.policy.endturn import EndTurnConfig
from mediasrv.policy.turns import TurnConfig
from mediasrv.protocol import realtime as wire
from mediasrv.web.settings import Settings
from mediasrv.web.standins import local_service

if TYPE_CHECKING:
    from mediasrv.backends.cascade.actions import CascadeConfig
    from mediasrv.backends.cascade.backend import Services

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
        tx_lead_ms=s.tx_lead_ms,
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
            end_turn=end_turn_config(s),
        ),
        tool_timeout_s=s.tool_timeout_s,
        dtmf_barge_in=s.dtmf_barge_in,
        dtmf_inter_digit_ms=s.dtmf_inter_digit_ms,
        recordings_dir=s.recordings_dir if s.record_calls else "",
    )


def uses_turn_model(s: Settings) -> bool:
    """Tell whether calls run the end-of-turn model (local mode, TURN_MODEL=smart-turn)."""
    return s.turn_detection == "local" and s.turn_model == "smart-turn"


def end_turn_config(s: Settings) -> EndTurnConfig | None:
    """Return the end-of-turn policy of every call; None: the fixed END_SILENCE_MS."""
    if not uses_turn_model(s):
        return None
    return EndTurnConfig(
        check_silence_ms=s.turn_check_silence_ms,
        max_silence_ms=s.turn_max_silence_ms,
        threshold=s.turn_model_threshold,
        fallback_silence_ms=s.end_silence_ms,
        # A pause longer than the check silence was already judged "not the end"; heard
        # at full length it lowers the model's answer for the finished sentence after it
        # (measured: scripts/eot_eval.py --sweep), so the model hears it that short.
        max_pause_heard_ms=s.turn_check_silence_ms,
        early_check_ms=s.turn_early_check_ms or None,
    )


def turn_checks(s: Settings) -> CheckRunner | None:
    """Return the process's end-of-turn worker when calls use the model, else None.

    The model file is loaded here, at start-up, so a missing or broken file stops the
    server with its reason instead of failing every check; the worker starts here too,
    in the process that serves (gunicorn loads the app after forking), so the process's
    thread count is the same before its first call and after its last (the soak's check).
    """
    if not uses_turn_model(s):
        return None
    turn_model.load_warm_session()
    return shared_turn_checks().start()


def tool_registry(s: Settings) -> ToolRegistry:
    """Return the tools every call offers: end_call, transfer_call when it can work
    (an allow-list and the REST API), the TOOLS_FILE webhooks."""
    return ToolRegistry(s.transfer_numbers if s.rest_enabled else (), s.tools_file)


def realtime_config(s: Settings, tools: tuple[ToolSpec, ...] = ()) -> RealtimeConfig:
    """Return the Realtime session settings (`session.update`) of every call."""
    turn = None
    if s.turn_detection == "server" and s.server_vad_type == "semantic_vad":
        turn = wire.semantic_vad(s.server_vad_eagerness)
    elif s.turn_detection == "server":
        turn = wire.server_vad(s.server_vad_threshold, s.server_vad_silence_ms)
    return RealtimeConfig(
        model=s.openai_realtime_model,
        instructions=s.instructions,
        voice=s.openai_voice,
        transcription_model=s.input_transcription_model,
        turn_detection=turn,
        tools=tools,
    )


def realtime_backend(connect: Connector, s: Settings,
                     tools: tuple[ToolSpec, ...] = ()) -> OpenBackend:
    """Return how each call opens its Realtime backend through `connect`."""
    config = realtime_config(s, tools)

    def open_backend(events: EventSink, *, closing: threading.Event, name: str,
                     logger: CallLog, call_sid: str) -> Backend:
        return RealtimeBackend(connect, config, events, closing=closing, name=name,
                               logger=logger)

    return open_backend


def cascade_config(s: Settings, tools: tuple[ToolSpec, ...] = ()) -> CascadeConfig:
    """Return how every call's cascade behaves."""
    from mediasrv.backends.cascade.actions import CascadeConfig

    return CascadeConfig(chat_model=s.openai_chat_model, instructions=s.instructions,
                         greeting=s.greeting, server_turns=s.turn_detection == "server",
                         tools=tools)


def cascade_services(s: Settings) -> Services:
    """Return the three services' addresses and keys, starting stand-ins for missing keys."""
    from mediasrv.backends.cascade.backend import Services

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


def cascade_backend(services: Services, s: Settings, clock: Clock,
                    tools: tuple[ToolSpec, ...] = ()) -> OpenBackend:
    """Return how each call opens its cascade (Deepgram -> chat -> ElevenLabs)."""
    from mediasrv.backends.cascade.backend import CascadeBackend

    config = cascade_config(s, tools)

    def open_backend(events: EventSink, *, closing: threading.Event, name: str,
                     logger: CallLog, call_sid: str) -> Backend:
        return CascadeBackend(services, config, events, closing=closing, name=name,
                              clock=clock, logger=logger)

    return open_backend
