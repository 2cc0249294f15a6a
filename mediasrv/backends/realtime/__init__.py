"""The OpenAI Realtime API backend: the socket and its reader thread, and the adapter.

Layer: backends. `client.py` dials the socket and runs the reader thread; the adapter
maps Realtime events to the seam's events and the seam's commands to Realtime client
events.
"""
