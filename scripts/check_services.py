"""Check credentials and connectivity of every service mediasrv talks to; one line each.

    .venv/bin/python scripts/check_services.py

For each service whose key is set, the cheapest real request that proves both the key
and the path mediasrv uses; for a service whose key is unset, the same request against
its built-in local stand-in (started here, in-process), which is what mediasrv would use:

  realtime    WebSocket to the Realtime URL, wait for `session.created`, close (no audio)
  deepgram    WebSocket to DEEPGRAM_URL with mediasrv's parameters, `CloseStream` at once,
              wait for `Metadata` and the 1000 close (no audio is billed)
  chat        GET {OPENAI_BASE_URL}/models/{OPENAI_CHAT_MODEL} (free; proves key and model)
  elevenlabs  WebSocket to multi-stream-input with the xi-api-key header, `close_socket` at
              once, wait for the 1000 close (no text, no characters billed)

Keys are never printed: every line is passed through `redact()`, and error bodies are
reduced to their error code. Exit status 0 when every line is OK, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mediasrv.localbackend import LocalBackend  # noqa: E402
from mediasrv.localservices import (  # noqa: E402
    DeepgramOptions,
    LocalChat,
    LocalDeepgram,
    LocalElevenLabs,
)
from mediasrv.web.settings import load_settings  # noqa: E402

TIMEOUT_S = 10.0
DEFAULT_CHAT_MODEL = "gpt-4.1-mini"  # until settings.py carries OPENAI_CHAT_MODEL
KEY_VARS = ("OPENAI_API_KEY", "DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY")


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def redact(text: str) -> str:
    """Replace every configured key in `text` with ***."""
    for name in KEY_VARS:
        key = env(name)
        if key:
            text = text.replace(key, "***")
    return text


def ws_check(url: str, header: list[str], first: str | None, until: Callable[[dict], bool],
             ) -> str:
    """Open a WebSocket, send `first`, read until `until(message)` or a close; describe it."""
    ws = websocket.create_connection(url, header=header, timeout=TIMEOUT_S)
    try:
        if first is not None:
            ws.send(first)
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                if code == 1000:
                    return "closed 1000"
                raise RuntimeError(f"closed {code}: {data[2:].decode(errors='replace')[:80]}")
            message = json.loads(data)
            if "error" in message:
                raise RuntimeError(f"error {message.get('error')!r}")
            if until(message):
                return f"got {message.get('type', 'message')}"
    finally:
        ws.close()
        ws.shutdown()


def check_realtime() -> tuple[str, str]:
    settings = load_settings()
    if settings.local_backend:
        with LocalBackend().start() as backend:
            return "local stand-in", ws_check(backend.url, [], None,
                                              lambda m: m.get("type") == "session.created")
    header = [f"Authorization: Bearer {settings.openai_api_key}"] if settings.openai_api_key \
        else []
    url = settings.realtime_url()
    return url.split("?")[0], ws_check(url, header, None,
                                       lambda m: m.get("type") == "session.created")


def check_deepgram() -> tuple[str, str]:
    query = urlencode({"model": env("DEEPGRAM_MODEL", "nova-3"), "encoding": "mulaw",
                       "sample_rate": "8000", "channels": "1", "interim_results": "true"})
    close = json.dumps({"type": "CloseStream"})
    key = env("DEEPGRAM_API_KEY")
    if not key:
        with LocalDeepgram(DeepgramOptions(recognizer="canned")).start() as dg:
            return "local stand-in", ws_check(f"{dg.url}?{query}",
                                              [f"Authorization: Token {dg.api_key}"], close,
                                              lambda m: m.get("type") == "Metadata")
    url = env("DEEPGRAM_URL", "wss://api.deepgram.com/v1/listen")
    return url, ws_check(f"{url}?{query}", [f"Authorization: Token {key}"], close,
                         lambda m: m.get("type") == "Metadata")


def check_chat() -> tuple[str, str]:
    model = env("OPENAI_CHAT_MODEL", DEFAULT_CHAT_MODEL)
    key = env("OPENAI_API_KEY")
    if not key:
        with LocalChat().start() as chat:
            return "local stand-in", _get_model(chat.base_url, chat.api_key, model)
    base = env("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    return f"{base} model {model}", _get_model(base, key, model)


def _get_model(base: str, key: str, model: str) -> str:
    request = urllib.request.Request(f"{base}/models/{model}",
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return f"HTTP {response.status}, model {json.loads(response.read())['id']}"
    except urllib.error.HTTPError as exc:
        try:
            code = json.loads(exc.read())["error"].get("code")
        except (ValueError, KeyError, AttributeError):
            code = None
        raise RuntimeError(f"HTTP {exc.code} {code or ''}".strip()) from None


def check_elevenlabs() -> tuple[str, str]:
    query = {"model_id": env("ELEVENLABS_MODEL", "eleven_flash_v2_5"),
             "output_format": "ulaw_8000", "sync_alignment": "true"}
    close = json.dumps({"close_socket": True})
    key = env("ELEVENLABS_API_KEY")
    if not key:
        with LocalElevenLabs().start() as tts:
            return "local stand-in", ws_check(tts.url("local-voice", **query),
                                              [f"xi-api-key: {tts.api_key}"], close,
                                              lambda m: False)
    voice = env("ELEVENLABS_VOICE_ID")
    if not voice:
        raise RuntimeError("ELEVENLABS_VOICE_ID is not set")
    base = env("ELEVENLABS_URL", "wss://api.elevenlabs.io").rstrip("/")
    url = f"{base}/v1/text-to-speech/{voice}/multi-stream-input?{urlencode(query)}"
    return url.split("?")[0], ws_check(url, [f"xi-api-key: {key}"], close, lambda m: False)


CHECKS: dict[str, Callable[[], tuple[str, str]]] = {
    "realtime": check_realtime, "deepgram": check_deepgram, "chat": check_chat,
    "elevenlabs": check_elevenlabs,
}


def main() -> int:
    """Run every check, print one line per service, return the exit status."""
    failed = 0
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            where, result = check()
            line = f"{name:<11} OK    {where}: {result}"
        except websocket.WebSocketBadStatusException as exc:
            failed += 1
            line = f"{name:<11} FAIL  handshake refused: HTTP {exc.status_code}"
        except Exception as exc:  # one line per service, whatever went wrong
            failed += 1
            line = f"{name:<11} FAIL  {type(exc).__name__}: {exc}"
        elapsed_ms = (time.monotonic() - started) * 1000
        print(redact(f"{line} ({elapsed_ms:.0f} ms)"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
