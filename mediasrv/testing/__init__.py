"""Running the emulator against the real server: for the end-to-end tests and scripts.

Layer: testing (a tool, above web). `harness.py` starts the real WSGI app on loopback,
the recording local backends, captures the server's log lines and reads each call's
outcome; `targets.py` turns outcomes into the issue-9 targets table. Nothing in the
server imports this package.
"""
