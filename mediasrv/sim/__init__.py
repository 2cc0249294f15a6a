"""A Twilio Media Streams caller emulator: the phone side of a call, for tests and benchmarks.

    script = CallerScript.build([Placement(Path("hello.wav"), 3.0)], duration=15)
    result = EmulatedCall("http://127.0.0.1:5050", script, CallOptions()).run()
    print(result.summary())

playout.py and metrics.py are pure; call.py is the thread shell (two threads per call).
"""

from mediasrv.sim.call import CallOptions, EmulatedCall, Progress
from mediasrv.sim.metrics import CallResult, TimelineEvent
from mediasrv.sim.playout import PlayoutModel
from mediasrv.sim.script import CallerScript, EchoPath, Placement

__all__ = [
    "CallOptions",
    "CallResult",
    "CallerScript",
    "EchoPath",
    "EmulatedCall",
    "Placement",
    "PlayoutModel",
    "Progress",
    "TimelineEvent",
]
