"""Container hooks: the HEALTHCHECK command, and the preStop drain that stops new calls
while the listener stays open (reserved streams still connect), returning once the
calls are over, so the SIGTERM after it finds an idle server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from hardening_live import RawTwilio, backend, connector, live_server, settings

from mediasrv.emulator import wire
from mediasrv.lifecycle import children, parse_ppid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from soak import server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BOUND = 15.0


def lifecycle(*args: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mediasrv.lifecycle", *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=BOUND)
    return proc.returncode, out


def test_parent_pid_is_read_past_a_process_name_with_spaces_and_parens() -> None:
    assert parse_ppid("4242 (gunicorn: (worker) x) S 17 4242 4242 0 -1") == 17


def test_children_finds_a_spawned_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        assert child.pid in children(os.getpid())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(BOUND)


def test_health_command_passes_while_serving_and_fails_readiness_while_draining() -> None:
    with backend() as b, live_server(settings(), connector(b)) as live:
        env = {"HOST": "127.0.0.1", "PORT": live.base.rsplit(":", 1)[1]}
        assert finished(lifecycle("health", env=env))[0] == 0
        assert finished(lifecycle("health", "--ready", env=env))[0] == 0
        live.registry().draining.set()
        assert finished(lifecycle("health", env=env))[0] == 0  # alive: never restart it
        code, out = finished(lifecycle("health", "--ready", env=env))
    assert code == 1 and "draining" in out


def test_health_command_fails_when_nothing_listens() -> None:
    code, out = finished(lifecycle("health", env={"HOST": "127.0.0.1", "PORT": "1"}))
    assert code == 1 and out.startswith("unhealthy:")


def status_of(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return int(exc.code), json.loads(exc.read())
        finally:
            exc.close()


def test_prestop_drain_serves_a_reserved_stream_and_returns_when_it_ends() -> None:
    sid = "CA" + "7" * 32
    env = {"GREETING": "", "SILENCE_TIMEOUT_S": "3600", "GRACEFUL_TIMEOUT_S": "20"}
    with server(env) as srv:
        assert "<Stream" in wire.post_voice(srv.base + "/voice", {"CallSid": sid},
                                            signed_url="", token=None, timeout=5.0)
        assert srv.proc is not None
        drain = lifecycle("drain", "--master", str(srv.proc.pid), env=srv.env)
        deadline = time.monotonic() + BOUND
        while not srv.get("/healthz")["draining"]:  # the listener still answers
            assert time.monotonic() < deadline, "never draining"
            time.sleep(0.05)
        assert status_of(srv.base + "/healthz?ready=1")[0] == 503
        busy = wire.post_voice(srv.base + "/voice", {"CallSid": "CA" + "8" * 32},
                               signed_url="", token=None, timeout=5.0)
        assert '<Reject reason="busy"' in busy
        caller = RawTwilio(srv.base.replace("http://", "ws://") + "/media", call_sid=sid).start()
        while srv.get("/healthz")["active_calls"] != 1:
            assert time.monotonic() < deadline, "the reserved call never started"
            time.sleep(0.05)
        assert drain.poll() is None  # a call is up: the hook is still waiting
        caller.stop()
        caller.wait_closed()
        caller.close()
        code, out = finished(drain)
        srv.sigterm()
        assert srv.proc.wait(BOUND) == 0
        log = srv.log()
    assert code == 0 and "no calls and no reservations left" in out
    assert "call cut" not in log
    assert "reason=caller hung up (stop)" in log
