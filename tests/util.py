"""Small helpers shared by the test modules."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .peers import peer


def only(findings: list[dict[str, Any]]) -> dict[str, Any]:
    """The one finding there must be."""
    assert len(findings) == 1, findings
    return findings[0]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 45, interval: float = 0.5) -> Any:
    """Poll until ``condition`` returns something truthy, and return it; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build DIRECTORY`` renders, with the pinned kustomize peer (kubectl's
    built-in one is not on every machine, nor pinned)."""
    proc = subprocess.run(
        [peer("kustomize"), "build", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"kustomize build {directory}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
