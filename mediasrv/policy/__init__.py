"""Decisions of a call, as pure code: no threads, sockets, Flask or `time` here.

Layer: policy. Every input comes in as an argument (audio frames, events, counts) and
time as `now: float`; every output is a value the caller acts on (a decision, an
action, a plan). Objects that wait for time report `next_deadline()` and are moved with
`tick(now, ...)`. The thread shells in mediasrv.call move bytes and carry out what these
return. Modules here may import the base modules, mediasrv.models and each other.
"""
