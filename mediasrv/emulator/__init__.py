"""A Twilio Media Streams emulator: the phone side of a call, for tests and benchmarks.

    script = CallerScript.build([Placement(Path("hello.wav"), 3.0)], duration=15,
                                echo=Line(echo=HANDSET))
    result = EmulatedCall("http://127.0.0.1:5050", script, CallOptions()).run()
    print(result.summary())

Layer: emulator (a tool). It judges the server from the outside, so it must not depend
on it: modules here import only the base modules (audio, clock, errors) and
mediasrv.protocol, and speak to the server over real sockets. Running scenarios against
the real server in-process is mediasrv.testing's job.

Pure parts: line.py (echo, saturation, hiss, mu-law), network.py (transit each way),
playout.py (Twilio's buffer, marks, clear), phone.py (all of Twilio's end as one event
machine), metrics.py and truth.py (what happened, judged independently of the server),
levels.py (P.56 speech levels). call.py is the thread shell (two threads per call).
scenarios.py and catalogue.py name the scenarios that mediasrv.testing runs
(tests/test_e2e_*.py, scripts/scenarios.py).
"""

from mediasrv.emulator.call import CallOptions, EmulatedCall, Progress
from mediasrv.emulator.line import BAD_LINE, HANDSET, EchoPath, Line, PathChange, Reflection
from mediasrv.emulator.metrics import CallResult, TimelineEvent
from mediasrv.emulator.network import NetworkTiming
from mediasrv.emulator.playout import PlayoutModel
from mediasrv.emulator.script import CallerScript, Placement

__all__ = [
    "BAD_LINE",
    "HANDSET",
    "CallOptions",
    "CallResult",
    "CallerScript",
    "EchoPath",
    "EmulatedCall",
    "Line",
    "NetworkTiming",
    "PathChange",
    "Placement",
    "PlayoutModel",
    "Progress",
    "Reflection",
    "TimelineEvent",
]
