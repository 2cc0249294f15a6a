"""From settings to the parts of a call: its CallConfig and the backend it opens.

Layer: web. The only place where the environment's Settings meet the call and the
backend: neither of those imports this layer, they take their own config objects.
"""

from __future__ import annotations

import threading

from mediasrv.backends.base import Backend, EventSink, ToolSpec
from mediasrv.backends.realtime.backend import RealtimeBackend, RealtimeConfig
from mediasrv.backends.realtime.client import Connector
from mediasrv.call.core import CallConfig, OpenBackend
from mediasrv.call.observer import CallLog
from mediasrv.callctl.tools import ToolRegistry
from mediasrv.policy.turns import TurnConfig
from mediasrv.web.settings import Settings


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
        tool_timeout_s=s.tool_timeout_s,
        dtmf_barge_in=s.dtmf_barge_in,
        dtmf_inter_digit_ms=s.dtmf_inter_digit_ms,
        recordings_dir=s.recordings_dir if s.record_calls else "",
    )


def tool_registry(s: Settings) -> ToolRegistry:
    """Return the tools every call offers: end_call, transfer_call when it can work
    (an allow-list and the REST API), the TOOLS_FILE webhooks."""
    return ToolRegistry(s.transfer_numbers if s.rest_enabled else (), s.tools_file)


def realtime_config(s: Settings, tools: tuple[ToolSpec, ...] = ()) -> RealtimeConfig:
    """Return the Realtime session settings (`session.update`) of every call."""
    server_vad = (s.server_vad_threshold, s.server_vad_silence_ms)
    return RealtimeConfig(
        model=s.openai_realtime_model,
        instructions=s.instructions,
        voice=s.openai_voice,
        transcription_model=s.input_transcription_model,
        server_vad=server_vad if s.turn_detection == "server" else None,
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
