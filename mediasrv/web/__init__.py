"""The process around the calls: the Flask app, settings, logging, metrics, health, shutdown.

Layer: web. This is the only layer that reads the environment (`settings.py`, where
every setting's range is checked once), configures logging and builds the parts of a
call from settings. It may import every layer below it and the built-in stand-ins
(mediasrv.localbackend); nothing below imports it. The WSGI entry point is
mediasrv/wsgi.py.
"""
