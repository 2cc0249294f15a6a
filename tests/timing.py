"""One time unit for every wait in the tests: MEDIASRV_TEST_TIME_SCALE (default 1).

A wait in a test is a bound, never a speed: on a slow or loaded machine set the scale
(e.g. 3) and every bound grows with it. Nothing here makes a test pass sooner.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("MEDIASRV_TEST_TIME_SCALE", "1"))


def bound(seconds: float) -> float:
    """Return `seconds` scaled: how long a test may wait for something that must happen."""
    return seconds * SCALE
