"""The cascade's part of scripts/bench.py: its three stand-ins as processes, its pipeline log.

    python scripts/bench.py --backend cascade --no-floor --calls 25

Each stand-in runs as its own process (`python -m mediasrv.localservices ...`), so its
CPU is not the server's and is reported beside it: Deepgram with canned transcripts
(pocketsphinx costs ~0.3 s of CPU per second of speech: 25 callers would need several
cores), the chat model at its default pace (0.2 s to the first token, 50 tokens/s),
ElevenLabs with espeak-ng. The server is pointed at them through the same settings an
operator would set. Its `[PIPELINE]` log lines give the cascade's own added latency.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTING = {"deepgram": ("DEEPGRAM_URL", "DEEPGRAM_API_KEY"),
           "chat": ("OPENAI_BASE_URL", "OPENAI_API_KEY"),
           "elevenlabs": ("ELEVENLABS_URL", "ELEVENLABS_API_KEY")}
_PIPELINE = re.compile(r"\[PIPELINE\] \S+: transcript->chat_sent_ms=([\d.]+) "
                       r"first_token->tts_text_ms=([\d.]+)")


def start_standins(out: Path) -> tuple[list[subprocess.Popen[str]], dict[str, str]]:
    """Start the three stand-ins; return them and the server settings pointing at them."""
    procs: list[subprocess.Popen[str]] = []
    env = {"AGENT_BACKEND": "cascade", "ELEVENLABS_VOICE_ID": "bench-voice"}
    for service in SETTING:
        extra = ["--recognizer", "canned"] if service == "deepgram" else []
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediasrv.localservices", service, "--port", "0",
             "--log-level", "warning", *extra],
            stdout=subprocess.PIPE, stderr=(out / f"{service}.log").open("w"), text=True,
            cwd=ROOT)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "<service> stand-in: <url> key=<key>"
        match = re.match(rf"{service} stand-in: (\S+) key=(\S+)", line)
        if match is None:
            raise SystemExit(f"bench: the {service} stand-in did not start (see {out})")
        url_name, key_name = SETTING[service]
        env.update({url_name: match[1], key_name: match[2]})  # deepgram's: /v1/listen too
    return procs, env


def pipeline_latency(log: Path | None) -> dict[str, Any]:
    """Return p50/p99 of the cascade's own two in-server latencies from `[PIPELINE]` lines."""
    import numpy as np

    if log is None or not log.exists():
        return {}
    sent, text = [], []
    for line in log.read_text(errors="replace").splitlines():
        m = _PIPELINE.search(line)
        if m:
            sent.append(float(m[1]))
            text.append(float(m[2]))
    if not sent:
        return {}

    def q(v: list[float]) -> dict[str, float]:
        return {"p50": round(float(np.percentile(v, 50)), 2),
                "p99": round(float(np.percentile(v, 99)), 2)}

    return {"n": len(sent), "transcript_to_chat_sent_ms": q(sent),
            "first_token_to_tts_text_ms": q(text)}
