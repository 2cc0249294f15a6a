"""The cascade's settings: defaults from the issue, one check each, keys kept out of logs,
a service without a key served by its stand-in, the backend chosen by AGENT_BACKEND."""

from __future__ import annotations

import logging
import threading

import pytest

from mediasrv.backends.cascade.backend import CascadeBackend
from mediasrv.call.observer import CallLog
from mediasrv.clock import RealClock
from mediasrv.errors import ConfigError
from mediasrv.web.settings import load_settings
from mediasrv.web.standins import stop_local_services
from mediasrv.web.wiring import cascade_backend, cascade_services


def test_the_defaults_are_the_issues_and_realtime_stays_the_default_backend() -> None:
    s = load_settings({})
    assert s.agent_backend == "realtime" and not s.cascade
    assert (s.deepgram_url, s.deepgram_model) == ("wss://api.deepgram.com/v1/listen", "nova-3")
    assert (s.openai_base_url, s.openai_chat_model) == ("https://api.openai.com/v1",
                                                        "gpt-4.1-mini")
    assert (s.elevenlabs_url, s.elevenlabs_model) == ("wss://api.elevenlabs.io",
                                                      "eleven_flash_v2_5")


@pytest.mark.parametrize(("env", "message"), [
    ({"AGENT_BACKEND": "pipeline"}, "AGENT_BACKEND: 'pipeline' is not one of realtime, cascade"),
    ({"DEEPGRAM_URL": "https://api.deepgram.com"},
     "DEEPGRAM_URL: 'https://api.deepgram.com' is not a URL like ws://HOST or wss://HOST"),
    ({"OPENAI_BASE_URL": "api.openai.com/v1"},
     "OPENAI_BASE_URL: 'api.openai.com/v1' is not a URL like http://HOST or https://HOST"),
    ({"ELEVENLABS_VOICE_ID": "../voices"},
     "ELEVENLABS_VOICE_ID: '../voices' is not an id of letters, digits, _ and - (at most 64)"),
    ({"AGENT_BACKEND": "cascade", "ELEVENLABS_API_KEY": "el-secret"},
     "ELEVENLABS_VOICE_ID: required with ELEVENLABS_API_KEY (the voice the cascade speaks "
     "with)"),
])
def test_bad_cascade_values_are_explained_in_words(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value) == message


def test_every_cascade_key_is_a_secret() -> None:
    s = load_settings({"DEEPGRAM_API_KEY": "dg-1", "ELEVENLABS_API_KEY": "el-2",
                       "ELEVENLABS_VOICE_ID": "v", "OPENAI_API_KEY": "sk-3"})
    assert {"dg-1", "el-2", "sk-3"} <= set(s.secrets)


def test_a_service_is_its_stand_in_only_without_a_key_and_at_its_default_url() -> None:
    s = load_settings({"DEEPGRAM_API_KEY": "dg-1",
                       "OPENAI_BASE_URL": "http://127.0.0.1:9000/v1"})
    assert not s.stand_in("deepgram")  # a key
    assert not s.stand_in("chat")  # an OpenAI-compatible server of its own
    assert s.stand_in("elevenlabs")


def test_keyless_services_get_stand_ins_said_loudly_and_calls_get_the_cascade(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mediasrv.web.wiring")
    s = load_settings({"AGENT_BACKEND": "cascade"})
    try:
        services = cascade_services(s)
        assert services.deepgram_url.startswith("ws://127.0.0.1:")
        assert services.chat_base_url.startswith("http://127.0.0.1:")
        assert services.elevenlabs_url.startswith("ws://127.0.0.1:")
        loud = [r.getMessage() for r in caplog.records if "BUILT-IN LOCAL" in r.getMessage()]
        assert len(loud) == 3 and any("DEEPGRAM_API_KEY not set" in m for m in loud)
        open_backend = cascade_backend(services, s, RealClock())
        backend = open_backend(lambda ev: None, closing=threading.Event(), name="mediasrv-rt-x",
                               logger=CallLog(logging.getLogger("test"), {}), call_sid="CAx")
        assert isinstance(backend, CascadeBackend)  # made, not started: no thread to end
    finally:
        stop_local_services()
