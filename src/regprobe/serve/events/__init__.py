"""``POST /events``: registry webhooks re-check what they touched within seconds, beside the scheduled walk
(docs/design/events.md). GC and damage in storage announce nothing: events complement walks, never replace
them.

:mod:`.formats` reads the payloads, :mod:`.auth` checks the shared secret, :mod:`.receiver` takes events
in, :mod:`.pending` coalesces them per repository, :mod:`.recheck` verifies what they touched and
:mod:`.worker` runs the re-checks and says what each changed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ...cache import ManifestCache
from ...config import Config
from ...config import Events as EventsConfig
from .auth import SecretFile
from .metrics import EventMetrics
from .pending import Pending
from .receiver import BrokenTags, EventReceiver
from .worker import Publish, Rechecker


class Events:
    """The receiver and the re-checks behind it, wired to one server."""

    def __init__(
        self,
        cfg: Config,
        settings: EventsConfig,
        metrics: CollectorRegistry,
        cache: ManifestCache | None,
        broken_tags: BrokenTags,
        publish: Publish,
    ) -> None:
        self.pending = Pending(settings.max_pending, settings.settle_seconds)
        self.metrics = EventMetrics(metrics, lambda: self.pending.depth)
        self.receiver = EventReceiver(cfg, SecretFile(settings.secret_file), self.pending, self.metrics, broken_tags)
        self.rechecker = Rechecker(cfg, cache, self.pending, self.metrics, publish)


__all__ = ["Events"]
