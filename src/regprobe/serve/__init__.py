"""``regprobe serve``: for monitoring stacks without a pushgateway. Probes on a schedule and serves the
contract's metrics for Prometheus to scrape, on-demand probes of single images, and a status page."""

from __future__ import annotations

import logging

from .. import config as config_mod
from .. import shard
from ..errors import ConfigError
from ..runner import open_cache, run_async
from .app import Server

log = logging.getLogger(__name__)


def serve_command(path: str, listen: str | None, interval: str | None, shard_text: str | None = None) -> int:
    """Exit 0 after SIGTERM/SIGINT; configuration errors raise ConfigError (exit 2), before anything is
    probed or served. ``shard_text``: ``--shard I/N``; without it the environment decides (regprobe.shard)."""
    cfg = config_mod.load(path)
    config_mod.check_events_secret(cfg, path)
    selected_shard = shard.selected(shard_text)
    address = listen or cfg.serve.listen
    try:
        host, port = config_mod.parse_listen(address)
    except ValueError as exc:
        raise ConfigError(f"--listen: {exc}") from None
    try:
        seconds = config_mod.parse_duration(interval) if interval else cfg.serve.interval_seconds
    except ValueError as exc:
        raise ConfigError(f"--interval: {exc}") from None
    cache = open_cache(cfg, path)
    if cfg.pushgateway is not None:
        log.info("serve pushes nothing: the pushgateway in %s is left to `regprobe run`", path)

    source = f"--listen {address}" if listen else f"{path}: serve.listen {address}"
    run_async(Server(cfg, seconds, cache, selected_shard).run(host, port, source))
    return 0


__all__ = ["serve_command"]
