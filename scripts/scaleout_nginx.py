"""Manual check: the compose topology with a real nginx on loopback (needs `nginx` on PATH).

    PYTHONPATH=. .venv/bin/python scripts/scaleout_nginx.py

Starts two `gunicorn -c gunicorn.conf.py` instances (a: MAX_CALLS=1, b: MAX_CALLS=2,
INSTANCE_PATH=/i/a and /i/b, signatures on) and nginx with deploy/nginx/nginx.conf,
its upstream names and paths rewritten to loopback; `nginx -t` first. Then places
calls through nginx with the Twilio emulator: three fit (the third handed off from a
to b), the fourth is busy after the handoffs. CI cannot run this (no nginx there:
tests/test_deploy.py parses the same file with crossplane and tests/test_scale_out.py
runs the scenario behind a Python proxy); it is how the file was checked for real.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from soak import ServerProcess, free_port  # noqa: E402

from mediasrv.emulator.call import CallOptions, EmulatedCall  # noqa: E402
from mediasrv.emulator.script import CallerScript  # noqa: E402

PUBLIC_URL = "https://bridge.test"
TOKEN = "manual-check-token"  # a test value, not a credential
ENV = {"SILENCE_TIMEOUT_S": "3600", "PUBLIC_URL": PUBLIC_URL, "TWILIO_AUTH_TOKEN": TOKEN,
       "BUSY_REDIRECTS": "3"}


def render(conf: str, ports: dict[str, int], listen: int, tmp: Path) -> str:
    """The compose config with loopback upstreams and every file under `tmp`."""
    for name, port in ports.items():
        conf = conf.replace(f"mediasrv-{name}:5050", f"127.0.0.1:{port}")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    conf = conf.replace("/tmp/", f"{tmp}/")
    return conf.replace("/dev/stdout", f"{tmp}/access.log").replace("/dev/stderr",
                                                                     f"{tmp}/error.log")


def place(base: str, seconds: float) -> EmulatedCall:
    call = EmulatedCall(base, CallerScript(b"\xff" * int(8000 * seconds)),
                        CallOptions(auth_token=TOKEN, public_url=PUBLIC_URL))
    call.start()
    return call


def settled(servers: dict[str, ServerProcess], bound: float = 5.0) -> dict[str, dict]:
    """/healthz of each instance once every reservation is claimed (or `bound` passed).

    A stream counts from the moment its handler runs, a little after the emulator's
    handshake returns (the call's VAD model is set up first).
    """
    deadline = time.monotonic() + bound
    while True:
        health = {n: s.get("/healthz") for n, s in servers.items()}
        if time.monotonic() > deadline or not any(h["reserved_calls"] for h in health.values()):
            return health
        time.sleep(0.1)


def main() -> int:
    servers = {"a": ServerProcess({**ENV, "INSTANCE_PATH": "/i/a", "MAX_CALLS": "1"}),
               "b": ServerProcess({**ENV, "INSTANCE_PATH": "/i/b", "MAX_CALLS": "2"})}
    with tempfile.TemporaryDirectory(prefix="mediasrv-nginx-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o777)  # nginx's workers drop root: they write temp files here
        listen = free_port()
        conf = tmp / "nginx.conf"
        ports = {name: srv.port for name, srv in servers.items()}
        conf.write_text(render((ROOT / "deploy/nginx/nginx.conf").read_text(), ports, listen,
                               tmp))
        subprocess.run(["nginx", "-t", "-p", str(tmp), "-c", str(conf)], check=True)
        nginx = None
        try:
            for srv in servers.values():
                srv.start()
            nginx = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf),
                                      "-g", "daemon off;"])
            time.sleep(0.5)  # a manual check: nginx has no readiness signal to wait on
            base = f"http://127.0.0.1:{listen}"
            calls = [place(base, 12.0) for _ in range(3)]
            busy = place(base, 1.0)
            health = settled(servers)
            results = []
            for call in [*calls, busy]:
                call.wait(30.0)
                results.append(call.result())
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
            for srv in servers.values():
                srv.close()
    for n, h in health.items():
        print(f"instance {n}: active_calls={h['active_calls']} reserved={h['reserved_calls']} "
              f"free_slots={h['free_slots']}")
    for i, r in enumerate(results, 1):
        hops = sum(1 for e in r.timeline if e.event == "redirect")
        print(f"call {i}: {'connected' if r.connected else 'refused'} stream={r.stream_url or '-'}"
              f" redirects={hops} media_frames_received={len(r.media_arrivals)}"
              f" hangup={r.hangup_by} error={r.error}")
    ok = ([r.stream_url.rsplit("/", 2)[1] for r in results[:3]] == ["a", "b", "b"]
          and results[3].error == "call rejected: busy"
          and all(len(r.media_arrivals) > 0 and r.hangup_by == "caller" for r in results[:3]))
    print("OK" if ok else "UNEXPECTED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
