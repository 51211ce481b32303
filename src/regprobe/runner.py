"""Runs configured probes: how to reach each registry of the config (URL, limits, TLS, credentials),
one registry's probe guarded so that nothing in it stops the others, and all registries at once.

Shared by the commands that probe - ``run``, ``check`` and ``serve`` - so each builds clients, reports
a registry it cannot probe, and contains a bug the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from . import credentials, outcome, shard
from .auth import RegistryAuth
from .budget import Budget
from .cache import ManifestCache
from .client import ClientSettings, RegistryClient, ssl_context
from .config import BlobCheck, Config, RegistryConfig
from .counters import Counters
from .credhelper import CredentialHelperError
from .errors import ConfigError
from .ledger import Ledger, LedgerError, ledger_path
from .model import RegistryResult
from .plan import Clock, LedgerPlan, Plan, RotationPlan
from .probe import Pinned, Selection, probe_registry
from .pullthrough import CacheStorage
from .scrub import Scrubber, scrub
from .stop import Stopped, StopRequest, unless_stopped
from .walk import WalkPolicy

log = logging.getLogger("regprobe")
T = TypeVar("T")


class NotProbed(Exception):  # noqa: N818 - a verdict, not a failure of regprobe's
    """A registry that cannot be probed this time (a secret not mounted, a credential helper failing,
    TLS files replaced since the config was loaded): its problem, reported as its error, never the run's."""


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it is installed: with it a walk took about 8% less CPU than on asyncio's own
    loop, CPU the registry's host would otherwise lose (docs/performance.md)."""
    try:
        import uvloop
    except ImportError:  # platforms without uvloop wheels (Windows)
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def user_agent_version() -> str:
    try:
        return version("regprobe")
    except PackageNotFoundError:
        return "unknown"


def open_cache(cfg: Config, path: str) -> ManifestCache | None:
    if cfg.cache_dir is None:
        return None
    try:
        return ManifestCache(cfg.cache_dir)
    except OSError as exc:
        raise ConfigError(f"{path}: cache_dir: cannot create {cfg.cache_dir}: {exc.strerror}") from None


#: What becomes of one registry's result as soon as its walk ends: ``run`` pushes it, ``serve`` holds it.
Publish = Callable[[RegistryResult], Awaitable[object]]


async def run_config(
    cfg: Config,
    cache: ManifestCache | None = None,
    selected_shard: shard.Shard | None = None,
    stop: StopRequest | None = None,
    counters: Sequence[Counters] | None = None,
    publish: Publish | None = None,
    now: float | None = None,
) -> list[RegistryResult]:
    """Probe every registry of ``cfg`` at once; ``counters`` (one per registry, in order) follow them.
    Each registry's result is published and its outcome logged as soon as its own walk ends: a registry
    that never answers must not hold back the others' (issue 21). ``now`` is the run's start in unix
    time (default: the clock's; tests turn the rotation with it)."""
    deadline = time.monotonic() + cfg.deadline
    counters = counters or [Counters(r.name) for r in cfg.registries]

    async def probe(registry: RegistryConfig, counter: Counters) -> RegistryResult:
        result = await probe_configured(cfg, registry, deadline, cache, selected_shard, stop, counter, now)
        if publish is not None:
            try:
                await publish(result)
            except Exception:  # a bug in publishing one registry must not lose the others
                log.exception("internal error publishing the result of %s", registry.name)
        outcome.report(result)
        return result

    return list(await asyncio.gather(*(probe(r, c) for r, c in zip(cfg.registries, counters, strict=True))))


async def probe_configured(
    cfg: Config,
    registry: RegistryConfig,
    deadline: float,
    cache: ManifestCache | None,
    selected_shard: shard.Shard | None,
    stop: StopRequest | None = None,
    counters: Counters | None = None,
    now: float | None = None,
) -> RegistryResult:
    clock = Clock(now)
    policy = walk_policy(cfg, registry)
    selection = Selection.configured(registry, selected_shard)
    try:
        with verification(cfg, registry, selected_shard, clock) as (plan, scrubber):
            settings = configured_settings(cfg, registry)
            budget = Budget.of(
                deadline, cfg.deadline, cfg.timeout_for(registry), cfg.budget.requests, scrub=scrubber is not None
            )
            return await guarded(
                registry.name,
                registry.url,
                settings,
                policy,
                deadline,
                selection=selection,
                cache=cache,
                stop=stop,
                counters=counters,
                plan=plan,
                budget=budget,
                clock=clock,
                scrubber=scrubber,
            )
    except LedgerError as exc:
        # Busy (another run holds it), or a state_dir that cannot be written: this registry's run fails.
        log.error("registry %s: %s", registry.name, exc)
        return not_probed(registry.name, registry.url, str(exc), clock.start)


@contextlib.contextmanager
def verification(
    cfg: Config, registry: RegistryConfig, selected_shard: shard.Shard | None, clock: Clock
) -> Iterator[tuple[Plan, Scrubber | None]]:
    """The run's plan - the registry's ledger when ``state_dir`` is set (locked for the run), else this
    run's own rotation - and the scrub, when it is on. Raises :class:`LedgerError`."""
    window = cfg.coverage.window_seconds
    if cfg.state_dir is None:
        yield RotationPlan(clock, window), None
        return
    path = ledger_path(cfg.state_dir, registry.name, str(selected_shard) if selected_shard else None)
    with Ledger.open(path, identity=f"{registry.name} {registry.url}", now=clock.start) as ledger:
        scrubber: Scrubber | None = None
        if cfg.scrub.bytes:
            scrubber = functools.partial(scrub, ledger=ledger, byte_budget=cfg.scrub.bytes, clock=clock)
        yield LedgerPlan(ledger, clock, window), scrubber


def walk_policy(cfg: Config, registry: RegistryConfig, blob_check: BlobCheck | None = None) -> WalkPolicy:
    """How a configured registry is walked (``blob_check`` overrides its own, for ``/probe``). A
    pull-through cache is asked only for what its storage holds, so a child it lacks is never a finding."""
    storage = CacheStorage(registry.storage_root) if registry.pull_through and registry.storage_root else None
    return WalkPolicy(
        blob_check or registry.blob_check,
        registry.index_children and storage is None,
        cfg.max_manifest_bytes,
        pull_through=storage,
        referrers=registry.referrers,
    )


async def configured_settings(cfg: Config, registry: RegistryConfig) -> ClientSettings:
    """How to talk to a configured registry: its URL, limits, TLS and credentials. Raises
    :class:`NotProbed` when the registry cannot be reached as configured right now."""
    auth = registry.auth
    if auth is not None and auth.unavailable is not None:
        raise NotProbed(auth.unavailable)  # a secret not mounted (yet): this registry, not the others
    tls = registry.tls
    try:
        verify = ssl_context(tls.ca_file, tls.cert_file, tls.key_file, tls.insecure_skip_verify)
    except (OSError, ssl.SSLError) as exc:  # checked at load; a file replaced since is this registry's problem
        raise NotProbed(f"tls: cannot load: {exc}") from None
    login = None
    if auth is not None and auth.password is not None:
        login = (auth.username, auth.password.get_secret_value())
    return await client_settings(registry.url, cfg.concurrency_for(registry), cfg.timeout_for(registry), verify, login)


async def client_settings(
    url: str, concurrency: int, request_timeout: float, verify: ssl.SSLContext | bool, login: tuple[str, str] | None
) -> ClientSettings:
    """How to talk to the registry at ``url``, for ``run``, ``check`` and ``serve`` alike: with ``login``
    (user, password) when given, else with what docker's config.json keeps for its host - maybe from a
    credential helper program, which is why this is a coroutine: cancelled, it kills the helper. Raises
    :class:`NotProbed` when the helper fails."""
    if login is not None:
        auth = RegistryAuth(*login)
    else:
        try:
            auth = await docker_auth(url)
        except CredentialHelperError as exc:
            raise NotProbed(str(exc)) from None
    return ClientSettings(
        url=url,
        concurrency=concurrency,
        timeout=request_timeout,
        auth=auth,
        verify=verify,
        user_agent=f"regprobe/{user_agent_version()}",
    )


def not_probed(name: str, url: str, error: str, started_at: float | None = None) -> RegistryResult:
    """A registry that could not be probed at all: incomplete, and pushed with this run's time."""
    started = time.time() if started_at is None else started_at
    return RegistryResult(name=name, url=url, errors=[error], started_at=started, stopped="error")


async def docker_auth(host_or_url: str) -> RegistryAuth:
    """Credentials for a host from docker's config.json, the fallback when the config gives none;
    anonymous (which still fetches anonymous pull tokens) when it has none."""
    found = await credentials.lookup(host_or_url.split("://", 1)[-1])
    if found is None:
        return RegistryAuth()
    return RegistryAuth(found.username, found.password, identity_token=found.identity_token)


async def guarded(
    name: str,
    url: str,
    settings: Awaitable[ClientSettings],
    policy: WalkPolicy,
    deadline: float,
    *,
    selection: Selection | None = None,
    pinned: Sequence[Pinned] = (),
    cache: ManifestCache | None = None,
    stop: StopRequest | None = None,
    counters: Counters | None = None,
    plan: Plan | None = None,
    budget: Budget | None = None,
    clock: Clock | None = None,
    scrubber: Scrubber | None = None,
) -> RegistryResult:
    """One registry's probe, from finding how to reach it (``settings``, e.g. :func:`configured_settings`)
    to its result; whatever goes wrong in it, the others are still probed and reported. A stop cuts it
    short at any point - a credential helper still running is killed (issue 22)."""
    try:
        ready = await unless_stopped(stop, settings)
    except NotProbed as exc:
        log.error("registry %s: %s", name, exc)
        return not_probed(name, url, str(exc))
    except Stopped as exc:
        return not_probed(name, url, f"stopped by {exc.reason} before it was probed; the run is incomplete")
    try:
        async with RegistryClient(ready) as client:
            if counters is not None:
                counters.requests = client.requests
            return await probe_registry(
                name,
                client,
                policy,
                selection=selection,
                pinned=pinned,
                deadline=deadline,
                cache=cache,
                stop=stop,
                progress=counters,
                plan=plan,
                budget=budget,
                clock=clock,
                scrubber=scrubber,
            )
    except Exception as exc:
        log.exception("internal error probing %s", name)
        return not_probed(name, url, f"internal error {type(exc).__name__}; see the log")
