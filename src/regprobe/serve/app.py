"""The long-running server: a scheduled probe of the configured registries, and the aiohttp application
serving its results (``/metrics``, ``/``), on-demand probes (``/probe``), registry events (``POST
/events``, re-checked between runs) and ``/healthz``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder, generate_latest

from .. import outcome
from ..cache import ManifestCache
from ..config import Config, RegistryConfig
from ..errors import ConfigError
from ..model import RegistryResult
from ..report import to_text
from ..runner import run_config
from ..shard import Shard
from . import ondemand, page
from .events import Events
from .events.recheck import Rechecked
from .state import HeldMetrics, RunLog

log = logging.getLogger(__name__)

#: On-demand walks at once; more are refused with 503 rather than queued behind a scrape timeout.
MAX_PROBES = 4
#: How long SIGTERM waits for requests in flight before closing their connections.
SHUTDOWN_GRACE = 2.0


class Server:
    def __init__(self, cfg: Config, interval: float, cache: ManifestCache | None, shard: Shard | None = None) -> None:
        self.cfg = cfg
        self.interval = interval
        self.cache = cache
        #: One StatefulSet replica's share of each registry (deploy/overlays/continuous); None: all of it.
        self.shard = shard
        self.held = HeldMetrics(cfg.max_broken_series)
        self.runs = RunLog()
        self.metrics = CollectorRegistry(auto_describe=True)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.metrics)
        self.metrics.register(self.held)
        self.finished = Counter("regprobe_serve_runs", "Scheduled runs finished", registry=self.metrics)
        self.overruns = Counter(
            "regprobe_serve_overruns",
            "Scheduled runs that outlasted the interval (the next one started late)",
            registry=self.metrics,
        )
        self.probes = Counter(
            "regprobe_serve_probe_requests", "/probe requests by answer", ["result"], registry=self.metrics
        )
        self._probe_slots = asyncio.Semaphore(MAX_PROBES)
        self._scheduler: asyncio.Task[None] | None = None
        self._rechecks: asyncio.Task[None] | None = None
        settings = cfg.serve.events
        self.events = (
            None if settings is None else Events(cfg, settings, self.metrics, cache, self.held.broken_tags, self.amend)
        )

    # --- the schedule --------------------------------------------------------------------------------

    async def schedule(self) -> None:
        """Run at start and every interval after; never two runs at once."""
        while True:
            started = time.monotonic()
            self.runs.running_since = time.time()
            try:
                # Each registry's results are served as soon as its own walk ends (issue 21).
                await run_config(self.cfg, self.cache, self.shard, publish=self.record)
                if self.cache is not None:
                    await asyncio.to_thread(self.cache.prune)
            except Exception:  # a bug must not end the schedule; the stale alert sees missing successes
                log.exception("internal error in a scheduled run")
            finally:
                self.runs.running_since = None
            self.finished.inc()
            elapsed = time.monotonic() - started
            if elapsed > self.interval:
                self.overruns.inc()
                log.warning(
                    "a run took %.0fs, longer than the interval of %.0fs; the next starts now", elapsed, self.interval
                )
            await asyncio.sleep(max(0.0, self.interval - elapsed))

    def start_schedule(self) -> asyncio.Task[None]:
        """The schedule as a task of its own; /healthz reports whether it is still alive."""
        self._scheduler = asyncio.create_task(self.schedule())
        return self._scheduler

    def start_rechecks(self) -> asyncio.Task[None] | None:
        """The events' re-checks as a task of their own (none when events are off); /healthz watches it."""
        if self.events is not None:
            self._rechecks = asyncio.create_task(self.events.rechecker.run())
        return self._rechecks

    async def record(self, result: RegistryResult) -> None:
        """Serve one registry's result: its metrics, and its place on the status page."""
        verdict = self.held.record(result)
        self.runs.record(result, verdict, self.held.by_events.get(result.name, frozenset()))
        outcome.kept(result, verdict)
        if self.events is not None:
            # The run has let go of the ledger: what re-checks found meanwhile goes in now.
            registry = next(r for r in self.cfg.registries if r.name == result.name)
            await self.events.rechecker.ledger.write(registry)

    def amend(self, registry: RegistryConfig, rechecked: Rechecked) -> None:
        """Serve what an event's re-check found: the verdict on the tags it looked at again (and, with
        ``state_dir``, the rechecker writes it to the ledger as a run would: serve/events/ledger.py)."""
        verdict = self.held.amend(registry.name, registry.url, rechecked.amendment)
        self.runs.amended(registry.name, verdict, self.held.by_events.get(registry.name, frozenset()))

    # --- HTTP ----------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/probe", self._probe)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/events", self._events)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.metrics), headers={"Content-Type": content_type})

    async def _status(self, request: web.Request) -> web.Response:
        configured = [(r.name, r.url) for r in self.cfg.registries]
        recent = list(self.events.receiver.recent) if self.events else None
        return web.Response(text=page.render(self.runs, configured, self.interval, recent), content_type="text/html")

    async def _events(self, request: web.Request) -> web.Response:
        if self.events is None:
            return web.Response(status=404, text="events are off: serve.events.secret_file is not set\n")
        return await self.events.receiver.handle(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        if self._scheduler is not None and self._scheduler.done():
            return web.Response(status=503, text="the probe schedule has stopped\n")
        if self._rechecks is not None and self._rechecks.done():
            return web.Response(status=503, text="the events' re-checks have stopped\n")
        return web.Response(text="ok\n")

    async def _probe(self, request: web.Request) -> web.Response:
        targets = request.query.getall("target", [])
        try:
            if len(targets) != 1:
                raise ondemand.TargetError("target: give exactly one target=HOST/REPO:TAG")
            registry, ref, check = ondemand.resolve(self.cfg, targets[0], request.query.get("blob_check"))
        except ondemand.TargetError as exc:
            self.probes.labels("refused").inc()
            return web.Response(status=400, text=f"{exc}\n")
        if self._probe_slots.locked():
            self.probes.labels("busy").inc()
            return web.Response(status=503, text=f"{MAX_PROBES} probes already in flight\n")
        seconds = ondemand.budget(request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
        async with self._probe_slots:
            result = await ondemand.walk(self.cfg, registry, ref, check, seconds)
        self.probes.labels("walked").inc()
        if not result.complete:
            log.info("probe of %s incomplete: %s", ref, "; ".join(result.errors))
        if request.query.get("debug") == "true":
            return web.Response(text=to_text([result]))
        body = generate_latest(ondemand.exposition(result))
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    # --- lifecycle -----------------------------------------------------------------------------------

    async def run(self, host: str, port: int, source: str) -> None:
        """Serve until SIGTERM or SIGINT, then stop the schedule (a run in flight is abandoned: nothing is
        pushed, so nothing half-done can be reported) and close the listener within SHUTDOWN_GRACE."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host or None, port)
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(f"{source}: cannot listen: {exc.strerror or exc}") from None
            where = f"{host or 'every interface'}, port {port}"
            print(f"regprobe: serving on {where}, a run every {self.interval:g}s", file=sys.stderr, flush=True)
            self.start_schedule()
            self.start_rechecks()
            await stop.wait()
        finally:
            # Events waiting for their re-check are lost: the next scheduled run covers what they touched.
            for task in (self._scheduler, self._rechecks):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await runner.cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
