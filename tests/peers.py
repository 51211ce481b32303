"""The pinned Go peers (helm, kubeconform, crane, ...) for the tests that need one.

A test asks ``peer(name)`` for the binary's path. Without it the test is skipped with the reason - a
machine without Go still runs everything else - unless ``REGPROBE_REQUIRE_PEERS=1`` (CI), where a
missing peer fails the test instead of hiding it.
"""

from __future__ import annotations

import os

import pytest

from .registry import PEERS


def peer(name: str) -> str:
    """The path of the peer binary ``name``; skips the test (fails it under REGPROBE_REQUIRE_PEERS=1)
    when it is not installed."""
    path = PEERS / name
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    reason = f"{name} is not installed at {path} (the pinned Go peers; see README, 'Peers')"
    if os.environ.get("REGPROBE_REQUIRE_PEERS") == "1":
        pytest.fail(f"{reason}, and REGPROBE_REQUIRE_PEERS=1 requires it")
    pytest.skip(reason)
