"""INSTANCE_PATH and BUSY_REDIRECTS: parsed, built into the stream URL, one worker only."""

from __future__ import annotations

import pytest

from mediasrv.errors import ConfigError
from mediasrv.web.settings import load_settings


def test_the_stream_url_carries_the_instance_path_under_the_public_host() -> None:
    s = load_settings({"PUBLIC_URL": "https://bridge.example.com", "INSTANCE_PATH": "/i/a"})
    assert s.stream_url("internal:5050") == "wss://bridge.example.com/i/a/media"


def test_without_an_instance_path_the_stream_url_is_unchanged() -> None:
    s = load_settings({"PUBLIC_URL": "https://bridge.example.com"})
    assert s.stream_url("internal:5050") == "wss://bridge.example.com/media"


@pytest.mark.parametrize("raw", ["i/a", "/i/a/", "/i a", "/i/a?x=1", "//", "/i/\u00e9"])
def test_an_instance_path_that_is_not_a_plain_path_is_refused_in_words(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"INSTANCE_PATH: .* is not a path like /i/a"):
        load_settings({"INSTANCE_PATH": raw})


def test_an_instance_path_needs_a_single_worker() -> None:
    with pytest.raises(ConfigError, match=r"INSTANCE_PATH needs WEB_CONCURRENCY=1 \(is 2\)"):
        load_settings({"INSTANCE_PATH": "/i/a", "WEB_CONCURRENCY": "2"})
    assert load_settings({"WEB_CONCURRENCY": "2"}).web_concurrency == 2  # alone: as before


def test_busy_redirects_default_and_range() -> None:
    assert load_settings({}).busy_redirects == 2
    with pytest.raises(ConfigError, match=r"BUSY_REDIRECTS: '11' is out of range \(0 to 10\)"):
        load_settings({"BUSY_REDIRECTS": "11"})
