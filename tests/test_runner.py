"""Configured probes (runner.py) on the real registry: whatever befalls one registry - a bug in its
probe, TLS files replaced since the config was loaded, a stop that came before it started - is that
registry's error in the report, and the others are probed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from regprobe import config, probe, runner
from regprobe.model import RegistryResult
from regprobe.stop import StopRequest

from .registry import Registry


def load(tmp_path: Path, *registries: dict[str, Any]) -> config.Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"registries": list(registries)}))
    return config.load(path)


def sound(registry: Registry, ns: str, name: str = "sound") -> dict[str, Any]:
    return {"name": name, "url": registry.url, "repositories": {"list": [f"{ns}/app"]}}


def test_a_bug_in_one_registrys_probe_is_that_registrys_error(
    registry: Registry, ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    real = probe.probe_registry

    async def probe_with_a_bug(name: str, *args: Any, **kwargs: Any) -> RegistryResult:
        if name == "buggy":
            raise RuntimeError("a bug in the walk")
        return await real(name, *args, **kwargs)

    monkeypatch.setattr(runner, "probe_registry", probe_with_a_bug)
    cfg = load(tmp_path, sound(registry, ns, "buggy"), sound(registry, ns))
    with caplog.at_level(logging.ERROR):
        buggy, other = asyncio.run(runner.run_config(cfg))

    assert (buggy.complete, buggy.errors) == (False, ["internal error RuntimeError; see the log"])
    assert "a bug in the walk" in caplog.text  # the traceback goes to the log
    assert (other.complete, other.images_checked, other.errors) == (True, 1, [])


def test_tls_files_replaced_after_the_config_was_loaded(registry: Registry, ns: str, tmp_path: Path) -> None:
    """Checked at load, replaced since (a Secret rotated under a long-running serve, half-written): that
    registry is not probed and says why; the others are."""
    registry.push_image(f"{ns}/app", "v1")
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    cfg = load(tmp_path, {**sound(registry, ns, "rotated"), "tls": {"ca_file": str(bundle)}}, sound(registry, ns))
    bundle.write_text("-----BEGIN CERTIFICATE-----\nhalf written")

    rotated, other = asyncio.run(runner.run_config(cfg))

    assert not rotated.complete and rotated.requests.total() == 0
    [error] = rotated.errors
    assert error.startswith("tls: cannot load: ")
    assert (other.complete, other.images_checked) == (True, 1)


def test_a_stop_before_the_run_probes_nothing(registry: Registry, ns: str, tmp_path: Path) -> None:
    """A SIGTERM that lands before a registry's probe has subscribed (while the config loads, or between
    two registries' starts) still stops it: a late subscriber is told at once."""
    registry.push_image(f"{ns}/app", "v1")
    stop = StopRequest()
    stop.request("SIGTERM")

    [result] = asyncio.run(runner.run_config(load(tmp_path, sound(registry, ns)), stop=stop))

    assert (result.complete, result.images_checked) == (False, 0)
    assert result.errors[0].startswith("stopped by SIGTERM")
