"""Pushes each registry's run to a Prometheus pushgateway, one group per registry (grouping key ``job``,
``registry``, and ``shard`` for a sharded run), with the semantics the alerts need:

* A run that completed is pushed with **PUT**: the group is replaced whole, so the
  ``regprobe_image_broken`` series of an image fixed since the last run disappear, and
  ``regprobe_last_success_timestamp_seconds`` advances.
* A run that did not complete never pushes ``last_success`` (the previous success time stays, so the
  stale alert can fire), and clears only what it looked at again: its broken images are merged with the
  group's earlier verdict (regprobe.carryover), read back from the pushgateway (``GET /api/v1/metrics``;
  the pushgateway is the only state ``run`` has). The group is then PUT whole - its own families, the
  merged integrity families, and the earlier gauge families it does not carry (``last_success``) copied
  over - so that the series of an image it re-checked and found intact, or found deleted, disappear.
  When it has no verdict to publish (nothing earlier, nothing found) or the earlier one cannot be read,
  it is POSTed without the integrity families: POST replaces only the names it carries, so the group's
  verdict stays as it was.
* Each push, reading included, is bounded by the configured ``timeout`` in wall time: a pushgateway
  that accepts and never answers costs that long and no more, and never keeps the process alive.

Group URLs use the pushgateway's ``@base64`` form for any value that is not a plain word, so registry
names with ``/`` (which the config accepts) address their group (docs/runbooks/README.md shows the
DELETE recipe).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import ssl
import threading
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from . import outcome
from .carryover import BrokenImages, carry
from .config import Config, Pushgateway
from .metrics import Families, families
from .model import Kind, PushOutcome, RegistryResult

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The most of GET /api/v1/metrics read (it holds every group of every job on the pushgateway).
MAX_READ = 64 << 20
#: Families the pushgateway adds to each group itself.
_OWN_FAMILIES = frozenset({"push_time_seconds", "push_failure_time_seconds"})
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]+")


def grouping_key(result: RegistryResult) -> dict[str, str]:
    grouping = {"registry": result.name}
    if result.shard is not None:
        # One group per shard: shards must not overwrite each other. The alerts aggregate over them.
        grouping["shard"] = result.shard.split("/", 1)[0]
    return grouping


def group_path(job: str, grouping: Mapping[str, str]) -> str:
    """``/metrics/job/JOB/registry/NAME...``: a value that is not a plain word (``team/registry``)
    goes base64url-encoded under ``LABEL@base64``, the only form the pushgateway accepts for a ``/``."""
    parts = [("job", job), *grouping.items()]
    return "/metrics" + "".join(_segment(label, value) for label, value in parts)


def _segment(label: str, value: str) -> str:
    if _PLAIN.fullmatch(value):
        return f"/{label}/{value}"
    # The pushgateway reads "=" as the empty value (an empty segment would end the path).
    return f"/{label}@base64/{base64.urlsafe_b64encode(value.encode()).decode() or '='}"


@dataclass(frozen=True, slots=True)
class Gateway:
    """The configured pushgateway: its URL, job, and how to reach it (Basic credentials, TLS trust)."""

    url: str
    job: str
    opener: urllib.request.OpenerDirector
    headers: Mapping[str, str]

    @classmethod
    def of(cls, config: Pushgateway) -> Gateway:
        headers: dict[str, str] = {}
        if config.auth is not None and config.auth.password is not None:
            pair = f"{config.auth.username}:{config.auth.password.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        tls = config.tls
        handlers: list[urllib.request.BaseHandler] = []
        if urlsplit(config.url).scheme == "https" and (tls.ca_file or tls.cert_file or tls.insecure_skip_verify):
            context = ssl.create_default_context(cafile=tls.ca_file)
            if tls.cert_file:
                context.load_cert_chain(tls.cert_file, tls.key_file)
            if tls.insecure_skip_verify:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        return cls(config.url, config.job, urllib.request.build_opener(*handlers), headers)

    def send(self, method: str, path: str, fams: Sequence[Metric], timeout: float) -> None:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(Families(fams))
        self._request(method, path, timeout, generate_latest(registry))

    def group(self, grouping: Mapping[str, str], timeout: float) -> dict[str, Any] | None:
        """The group's families as the pushgateway's API lists them (name -> family), None if it has
        no such group. Raises OSError or ValueError when the answer cannot be had or read."""
        body = self._request("GET", "/api/v1/metrics", timeout)
        if len(body) > MAX_READ:
            raise ValueError(f"GET /api/v1/metrics: answer over {MAX_READ} bytes")
        labels = {"job": self.job, **grouping}
        document = json.loads(body)
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, list):
            raise ValueError("GET /api/v1/metrics: no data list in the answer")
        for group in data:
            if isinstance(group, dict) and group.get("labels") == labels:
                return group
        return None

    def _request(self, method: str, path: str, timeout: float, body: bytes | None = None) -> bytes:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)  # noqa: S310 - http(s) only (config)
        with self.opener.open(request, timeout=timeout) as response:  # raises HTTPError on 4xx/5xx
            return response.read(MAX_READ + 1)  # type: ignore[no-any-return]


def push(gateway: Gateway, result: RegistryResult, max_broken_series: int, timeout: float) -> BrokenImages | None:
    """Push ``result``'s group (module docstring); the verdict pushed, None if none was. Raises on failure."""
    grouping = grouping_key(result)
    path = group_path(gateway.job, grouping)
    if result.complete:
        verdict = carry(None, result)
        gateway.send("PUT", path, families(result, max_broken_series, verdict), timeout)
        return verdict
    try:
        earlier = gateway.group(grouping, timeout)
    except (OSError, ValueError) as exc:  # unreachable, refused, or not the API's JSON
        log.warning(
            "pushgateway %s: cannot read the earlier verdict of registry %s (%s); its broken-image metrics"
            " are left as they are",
            _safe(gateway.url),
            result.name,
            _reason(exc),
        )
        # POST replaces only the names it carries: without a ledger, the group's verdict stays as it was;
        # with one, the ledger's verdict replaces it (it needs nothing from the group).
        verdict = carry(None, result) if result.known_broken is not None else None
        gateway.send("POST", path, families(result, max_broken_series, verdict), timeout)
        return verdict
    verdict = carry(_verdict(earlier), result)
    fams = families(result, max_broken_series, verdict)
    if verdict is None:
        gateway.send("POST", path, fams, timeout)
        return None
    carried = {family.name for family in fams}
    gateway.send("PUT", path, fams + _gauges(earlier, carried), timeout)
    return verdict


def _verdict(group: Mapping[str, Any] | None) -> BrokenImages | None:
    """The broken images a group holds, as pushed: None when it holds no verdict."""
    if group is None or "regprobe_broken_images" not in group:
        return None
    samples = _samples(group, "regprobe_broken_images")
    count = int(samples[0][1]) if samples else 0
    named = [
        (labels.get("repository", ""), labels.get("tag", "")) for labels, _ in _samples(group, "regprobe_image_broken")
    ]
    kinds = {kind.value: kind for kind in Kind}
    objects = {
        kinds[labels["kind"]]: int(value)
        for labels, value in _samples(group, "regprobe_broken_objects")
        if labels.get("kind") in kinds
    }
    return BrokenImages.published(count, named, objects)


def _samples(group: Mapping[str, Any], name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of a gauge family in the API's JSON; what does not have that shape is skipped."""
    family = group.get(name)
    metrics = family.get("metrics") if isinstance(family, dict) else None
    out = []
    for metric in metrics if isinstance(metrics, list) else []:
        labels = metric.get("labels") if isinstance(metric, dict) else None
        if not isinstance(labels, dict):
            continue
        try:
            value = float(metric["value"])
        except (KeyError, TypeError, ValueError):
            continue
        out.append(({str(k): str(v) for k, v in labels.items()}, value))
    return out


def _gauges(group: Mapping[str, Any] | None, carried: set[str]) -> list[Metric]:
    """The group's gauge families this push does not carry, as they are (POST's semantics, kept by a
    PUT): ``last_success`` above all. The pushgateway's own families and labels are left to it."""
    out: list[Metric] = []
    for name, family in (group or {}).items():
        if name in carried or name in _OWN_FAMILIES or not isinstance(family, dict) or family.get("type") != "GAUGE":
            continue
        metric = Metric(name, str(family.get("help", "")), "gauge")
        for labels, value in _samples(group or {}, name):
            labels = {k: v for k, v in labels.items() if k not in ("job", "instance")}
            metric.add_sample(name, labels, value)
        out.append(metric)
    return out


async def publish(config: Config, result: RegistryResult, seconds: float) -> bool:
    """Push ``result`` within ``seconds``, recording the outcome in ``result.push``; False (after
    logging why) if the push failed."""
    gateway_config = config.pushgateway
    assert gateway_config is not None
    try:
        gateway = Gateway.of(gateway_config)
        verdict = await _within(seconds, lambda: push(gateway, result, config.max_broken_series, seconds))
    except Exception as exc:  # urllib raises URLError, HTTPError, OSError, ValueError...; TimeoutError
        result.push = PushOutcome(ok=False, error=f"pushgateway {_safe(gateway_config.url)}: {_reason(exc)}")
        log.error(
            "pushgateway %s: push for registry %s failed: %s", _safe(gateway_config.url), result.name, _reason(exc)
        )
        return False
    result.push = PushOutcome(ok=True)
    outcome.kept(result, verdict)
    return True


async def _within(seconds: float, work: Callable[[], T]) -> T:
    """``work()`` on a daemon thread, waited for at most ``seconds``: urllib's timeout bounds each socket
    operation, not the exchange, and a thread of the default executor would hold up the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(outcome: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(outcome)

    def fail(exc: BaseException) -> None:
        if not future.done():
            future.set_exception(exc)

    def succeed(value: T) -> None:
        if not future.done():
            future.set_result(value)

    def run() -> None:
        try:
            value = work()
        except BaseException as exc:  # delivered to the waiter, which re-raises it
            error = exc
            deliver(lambda: fail(error))
        else:
            deliver(lambda: succeed(value))

    threading.Thread(target=run, name="regprobe-push", daemon=True).start()
    try:
        async with asyncio.timeout(seconds):
            return await future
    except TimeoutError:
        raise TimeoutError(f"no answer within {seconds:g}s") from None


def exposition(config: Config, results: Sequence[RegistryResult], job: str) -> str:
    """What a push sends, group by group, in the text format (``run --format metrics``), like
    blackbox_exporter's debug output: a probe that can show exactly what it reports."""
    out = []
    for result in results:
        method = (
            "PUT, replacing the group"
            if result.complete
            else "incomplete: merged with the group's earlier verdict before it is pushed"
        )
        grouping = grouping_key(result)
        labels = ", ".join(f'{k}="{v}"' for k, v in {"job": job, **grouping}.items())
        out.append(f"# pushgateway group {{{labels}}} at {group_path(job, grouping)} ({method})\n")
        registry = CollectorRegistry(auto_describe=True)
        registry.register(Families(families(result, config.max_broken_series, carry(None, result))))
        out.append(generate_latest(registry).decode())
    return "".join(out)


def _safe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    status = getattr(exc, "code", None)  # urllib's HTTPError: the status the gateway (or its proxy) answered
    return f"{type(exc).__name__}: {f'{status} ' if isinstance(status, int) else ''}{str(reason)[:200]}"


__all__ = ["Gateway", "exposition", "group_path", "grouping_key", "publish", "push"]
