"""Running the emulator against the real server: for the end-to-end tests and scripts.

Layer: testing (a tool, above web). `harness.py` starts the real WSGI app on loopback,
the recording local backends, captures the server's log lines and reads each call's
outcome; `targets.py` turns outcomes into the issue-9 targets table. Without a server,
frame by frame against the real `TurnPolicy` (scripts/bargein_eval.py's sections and the
tests that need the whole line): `frames.py` the line and the loop, `callers.py` a caller
placed over the bot and the tally, `breath.py`, `moves.py`, `after_caller.py` and
`repeated.py` the other sections' runs. Nothing in the server imports this package.
"""
