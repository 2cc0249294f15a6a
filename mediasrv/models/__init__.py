"""Machine-learned models: the model files (with their licences) and the code that runs them.

Layer: models. Each wrapper loads its model file from this folder once and runs it on
numpy arrays; no threads, sockets or time. Models are shipped here (taken from PyPI
wheels, source and version beside each file), never downloaded at run time. Modules here
may import the base modules (audio, clock, errors) and each other.
"""

import os

# onnxruntime (1.31 on Linux) starts a telemetry client when it is imported, unless this
# variable is set by then: it opens a SQLite queue under ~/.cache/Microsoft/DeveloperTools
# (three file descriptors, opened lazily -- the soak's fd check saw one appear after 40
# calls), adds a thread and would send events to Microsoft from a call server. Off unless
# the operator sets the variable; this package is where the server first imports it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
