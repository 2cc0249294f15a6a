"""Local stand-ins for the cascade services: Deepgram live STT, OpenAI chat, ElevenLabs TTS.

Layer: stand-ins. Local servers speaking a real service's wire protocol, for tests and
offline runs. They may import the base modules, mediasrv.protocol and each other; never
the call or the web app (the web app starts them).

Like `mediasrv.localbackend` for the Realtime API: loopback servers that speak the real
wire protocols (PROTOCOLS-2 sections 3-5), validate what the client sends, and inject
faults for tests. Each is started in-process (ephemeral port) or as a process:

    python -m mediasrv.localservices deepgram --port 8101 --recognizer canned

Layout: pure decision code in `*_wire.py` (shapes, validation) and `*_session.py` /
`chat_stream.py` (state machines taking `now`); thread shells in `wsserver.py` + `wsconnection.py`
(shared by the two WebSocket services, reusing the local backend's pacer) and `chat.py`
(HTTP). `recognizer.py` (pocketsphinx) and `voice.py` (espeak-ng) are the engines.
"""

from __future__ import annotations

from .chat import ChatOptions, LocalChat
from .common import Fault
from .deepgram import DeepgramOptions, LocalDeepgram
from .elevenlabs import ElevenLabsOptions, LocalElevenLabs

__all__ = ["ChatOptions", "DeepgramOptions", "ElevenLabsOptions", "Fault", "LocalChat",
           "LocalDeepgram", "LocalElevenLabs"]
