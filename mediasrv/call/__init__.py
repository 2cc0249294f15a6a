"""One phone call as threads: the rx loop, the backend's reader, the paced tx loop, a watcher.

Layer: call. Thread shells only: they move bytes, call the pure code of mediasrv.policy
and act on what it returns. Modules here may import the base, protocol, models, policy
and backends layers (the backend only through mediasrv.backends.base), never
mediasrv.web. Settings come in as a `CallConfig` built by the web layer.
"""

from mediasrv.call.call import Call, CallDeps

__all__ = ["Call", "CallDeps"]
