"""The pinned Go peers (distribution v3, crane, oras, helm, kubeconform, kustomize, cosign) that
scripts/install-peers.sh builds into ``PEERS``. Without Go a test that needs one is skipped, saying why; CI sets
``REGPROBE_REQUIRE_PEERS=1`` so a missing peer fails instead."""

from __future__ import annotations

import os

import pytest

from .registry import PEERS


def peer(name: str) -> str:
    """The path of peer ``name``; skips the test (fails it under REGPROBE_REQUIRE_PEERS=1) without it."""
    path = PEERS / name
    if os.access(path, os.X_OK):
        return str(path)
    why = f"peer {name!r} is not in {PEERS}: scripts/install-peers.sh builds the pinned peers (it needs go)"
    if os.environ.get("REGPROBE_REQUIRE_PEERS") == "1":
        pytest.fail(why)
    pytest.skip(why)
