"""WSGI entry point: `wsgi_app = "mediasrv.wsgi:app"` in gunicorn.conf.py.

Layer: entry point.
"""

from __future__ import annotations

from mediasrv.web.app import create_app
from mediasrv.web.settings import load_settings

app = create_app(load_settings())
