"""The AI side of a call, behind one seam (`base.py`): commands out, events in.

Layer: backends. A backend turns the call's commands (append caller audio, commit,
request a response, cancel, truncate at the heard ms, close) into its own wire protocol
and its own events into the seam's frozen event dataclasses, on its own threads. The
call never knows which backend it talks to. `realtime/` is the OpenAI Realtime API (and
compatible servers, such as mediasrv.localbackend). Modules here may import the base,
protocol, models and policy layers, never mediasrv.call or mediasrv.web.
"""
