"""``POST /events``: who may send (the shared secret), how much (a bounded body), what (a known format), for
which registry and repository (configured and selected, as ``/probe`` decides), and each event taken once.

Answers: 401 without the secret, 413 past the size bound, 400 for a body with nothing readable in it -
each before anything else happens. Otherwise 202 when something was queued, 200 when nothing was
(pulls, events for registries not configured here, duplicates, a full queue), with a JSON summary.
Refusing a well-formed event with an error would not help: distribution retries an event it sees
refused for ever, holding back every later event behind it (notifications/sinks.go, a retrying sink),
so refused events are counted (``regprobe_events_rejected``), listed on the status page and logged.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable

from aiohttp import web

from ...config import Config, RegistryConfig
from ...probe import Selection
from ...reference import hub_repository
from ..ondemand import serving
from .auth import CHALLENGE, SecretFile
from .event import Action, Event, ParseError
from .formats import parse
from .metrics import EventMetrics, Reason
from .pending import MAX_RECORDS, Pending, Record

log = logging.getLogger(__name__)

#: Largest body read. A distribution envelope of one event is under 1 KiB; a registry's batch of
#: hundreds stays far below this.
MAX_BODY = 1 << 20
#: Event ids remembered to drop a re-delivery (distribution retries what it thinks was not delivered).
MAX_SEEN = 10_000
#: Events listed on the status page (each re-check keeps as many of its own: every one listed gets its
#: outcome).
MAX_RECENT = MAX_RECORDS
#: A refusal of each kind is logged at most this often (with the count since): a flood of bad requests
#: must not flood the log.
LOG_EVERY = 60.0

#: Tags of a repository held broken because of an object: (registry, repository, digest) -> tags.
BrokenTags = Callable[[str, str, str], list[str]]


class EventReceiver:
    def __init__(
        self, cfg: Config, secret: SecretFile, pending: Pending, metrics: EventMetrics, broken_tags: BrokenTags
    ) -> None:
        self.cfg = cfg
        self.secret = secret
        self.pending = pending
        self.metrics = metrics
        self._broken_tags = broken_tags
        self._selections = {r.name: Selection.configured(r) for r in cfg.registries}
        self._seen: OrderedDict[str, None] = OrderedDict()
        #: The last events, newest first, with what their re-checks changed.
        self.recent: deque[Record] = deque(maxlen=MAX_RECENT)
        self._refusals: dict[Reason, tuple[float, int]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        if not self.secret.accepts(request.headers.get("Authorization")):
            self._refuse("auth", "no or a wrong secret (Authorization: Bearer <serve.events.secret_file>)")
            return web.Response(
                status=401, text="events need the shared secret\n", headers={"WWW-Authenticate": CHALLENGE}
            )
        body = await _read(request, MAX_BODY)
        if body is None:
            self._refuse("too_large", f"a body over {MAX_BODY} bytes")
            return web.Response(status=413, text=f"the body is over {MAX_BODY} bytes\n")
        headers = {name.lower(): value for name, value in request.headers.items() if name.lower().startswith("ce-")}
        try:
            parsed = parse(body, headers)
        except ParseError as exc:
            self._refuse("parse", str(exc))
            return web.Response(status=400, text=f"{exc}\n")
        for problem in parsed.invalid:
            self._refuse("parse", problem)
        for source, action in parsed.ignored:
            self.metrics.ignored.labels(source, action).inc()
        if parsed.validation_code is not None:
            return web.json_response({"validationResponse": parsed.validation_code})
        named = request.query.get("registry")
        outcomes = Counter(self._take(event, named) for event in parsed.events)
        summary = {"accepted": outcomes.pop("accepted", 0), "ignored": len(parsed.ignored) + outcomes.pop("ignored", 0)}
        summary["refused"] = sum(outcomes.values()) + len(parsed.invalid)
        return web.json_response(summary, status=202 if summary["accepted"] else 200)

    def _take(self, event: Event, named: str | None) -> str:
        """Queue one event for its repository's re-check; what became of it."""
        found, detail = self._registry(event, named)
        if isinstance(found, str):
            return self._refused(event, found, detail)
        registry, repository = found, detail
        seen = f"{event.source}:{event.key}"[:300]
        if seen in self._seen:
            return self._refused(event, "duplicate", registry.name)
        mended: list[str] = []
        if event.action is Action.PUSH and event.tag is None:
            # By digest (an index child, a blob): it changes nothing unless it brings back an object a
            # broken tag is missing.
            mended = self._broken_tags(registry.name, repository, str(event.digest))
            if not mended:
                self.metrics.ignored.labels(event.source, "push").inc()
                return "ignored"
        batch = self.pending.batch_for(registry.name, repository)
        if batch is None:
            return self._refused(event, "queue_full", registry.name)
        self._seen[seen] = None
        if len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)
        record = Record(time.time(), registry.name, event.source, event.describe())
        self.recent.appendleft(record)
        batch.add(event, record, mended)
        self.metrics.received.labels(registry.name, event.source, event.action.value).inc()
        return "accepted"

    def _registry(self, event: Event, named: str | None) -> tuple[RegistryConfig, str] | tuple[Reason, str]:
        """The configured registry the event is for and its repository there; else why not, and whom
        the refusal names (quoted when the sender chose it: it reaches the log and the page)."""
        if named is not None:
            candidates = [r for r in self.cfg.registries if r.name == named]
            asked = f"?registry={named[:60]!r}"
        else:
            candidates = serving(self.cfg, event.host) if event.host else []
            asked = repr(event.host[:80]) if event.host else "named by neither the event nor ?registry="
        if not candidates:
            return "unknown_registry", asked
        repository = hub_repository(event.host or "", event.repository)
        registry = next((r for r in candidates if self._selections[r.name].wants(repository)), None)
        if registry is None:
            return "unselected", ", ".join(r.name for r in candidates)
        if registry.pull_through:
            # A cache holds what was pulled; its own walks verify it without making it fetch upstream.
            return "pull_through", registry.name
        return registry, repository

    def _refused(self, event: Event, reason: Reason, where: str) -> str:
        why = {
            "unknown_registry": f"no configured registry is {where} (docs/operator-guide.md, Events)",
            "unselected": f"{event.repository} is not selected by the repositories of {where}",
            "pull_through": f"{where} is a pull-through cache: its walks verify it",
            "duplicate": "already taken (the sender delivered it again)",
            "queue_full": f"{self.pending.max_pending} repositories already wait for a re-check",
        }.get(reason, reason)
        record = Record(time.time(), where[:100], event.source, event.describe(), f"refused: {why}")
        self.recent.appendleft(record)
        self._refuse(reason, f"{event.source} event {event.describe()}: {why}")
        return reason

    def _refuse(self, reason: Reason, detail: str) -> None:
        self.metrics.reject(reason)
        last, count = self._refusals.get(reason, (0.0, 0))
        now = time.monotonic()
        if last and now - last < LOG_EVERY:
            self._refusals[reason] = (last, count + 1)
            return
        more = f" ({count} more refused for the same reason since the last such line)" if count else ""
        log.warning("events: refused (%s): %s%s", reason, detail[:300], more)
        self._refusals[reason] = (now, 0)


async def _read(request: web.Request, limit: int) -> bytes | None:
    """The body, or None past ``limit`` bytes (refused before reading when Content-Length says so)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 << 10):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
