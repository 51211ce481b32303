"""Command line: parses argv, runs the commands, and alone decides exit codes.

Exit codes: 0 all walked and intact; 1 integrity findings (wins over 3); 2 usage or configuration
error, nothing probed; 3 the probe could not complete.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
import time
from collections.abc import Awaitable, Coroutine, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar
from urllib.parse import urlsplit

from . import config as config_mod
from . import credentials, report, shard
from .auth import RegistryAuth
from .cache import ManifestCache
from .client import ClientSettings, RegistryClient, ssl_context
from .config import Config, RegistryConfig
from .errors import ConfigError, ParseError
from .model import RegistryResult
from .probe import Pinned, Selection, probe_registry
from .reference import Reference, hub_repository
from .stop import StopRequest, on_signals
from .walk import WalkPolicy

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
#: Longest a push may take after SIGTERM: the report and the push must fit Kubernetes' 30 s grace period.
STOPPED_PUSH_TIMEOUT = 5.0
log = logging.getLogger("regprobe")
T = TypeVar("T")


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it is installed: with it a walk took about 8% less CPU than on asyncio's own
    loop, CPU the registry's host would otherwise lose (docs/performance.md)."""
    try:
        import uvloop
    except ImportError:  # platforms without uvloop wheels (Windows)
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def _until_signalled(stop: StopRequest, work: Awaitable[T]) -> T:
    """Run ``work`` with SIGTERM/SIGINT turned into ``stop`` (report and push what was walked)."""
    with on_signals(stop):
        return await work


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if not 1 <= value <= config_mod.MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be from 1 to {config_mod.MAX_CONCURRENCY}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not 0 < value <= config_mod.MAX_SECONDS:  # false for nan and inf too
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {config_mod.MAX_SECONDS:g} seconds")
    return value


def _version() -> str:
    try:
        return version("regprobe")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regprobe", description="Check that what a registry lists can be pulled.")
    parser.add_argument("--version", action="version", version=f"regprobe {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, formats: tuple[str, ...] = ("text", "json")) -> None:
        p.add_argument("--format", choices=formats, default="text", help="output format (default text)")
        p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")

    run = sub.add_parser("run", help="probe every registry in the config and push metrics")
    run.add_argument("-c", "--config", help="config file (default $REGPROBE_CONFIG, then /etc/regprobe/config.yaml)")
    run.add_argument("--no-push", action="store_true", help="do not push metrics even if a pushgateway is configured")
    run.add_argument(
        "--shard",
        metavar="I/N",
        help="probe only shard I of N of each registry's repositories "
        "(default: $JOB_COMPLETION_INDEX of $REGPROBE_SHARDS, for an Indexed Job)",
    )
    # metrics: exactly what would be pushed, group by group (with --no-push, nothing is sent)
    common(run, ("text", "json", "metrics"))

    check = sub.add_parser("check", help="walk the named images (CI, right after a push)")
    check.add_argument("refs", nargs="+", metavar="REF", help="host[:port]/repo[:tag][@digest]")
    check.add_argument("--plain-http", action="store_true", help="talk http:// to the registries")
    check.add_argument("--insecure", action="store_true", help="skip TLS certificate verification")
    check.add_argument("--username", help="registry user (password read from stdin with --password-stdin)")
    check.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    check.add_argument("--blob-check", choices=("head", "range", "digest"), default="range")
    check.add_argument("--concurrency", type=_concurrency, default=16, help="requests in flight (1-1024)")
    check.add_argument("--timeout", type=_seconds, default=30.0, help="seconds per request")
    common(check)

    serve = sub.add_parser("serve", help="probe on a schedule and serve /metrics, /probe and a status page")
    serve.add_argument("-c", "--config", help="config file (default $REGPROBE_CONFIG, then /etc/regprobe/config.yaml)")
    serve.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (default: serve.listen, :9839)")
    serve.add_argument("--interval", metavar="DURATION", help="time between runs, e.g. 15m (default: serve.interval)")
    serve.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")

    fsck = sub.add_parser("fsck", help="scan registry:2 filesystem storage offline (read-only unless --repair)")
    fsck.add_argument("root", metavar="ROOT", help="the storage rootdirectory (it holds docker/registry/v2)")
    fsck.add_argument(
        "--no-index-children",
        action="store_true",
        help="pull-through cache: index children and blobs never pulled may be absent",
    )
    fsck.add_argument("--repair", action="store_true", help="remove layer links whose data is missing or empty")
    fsck.add_argument("--dry-run", action="store_true", help="with --repair: say what it would remove, remove nothing")
    fsck.add_argument("--verify-digests", action="store_true", help="hash blob data (reads everything)")
    common(fsck)

    gc = sub.add_parser("gc-check", help="would `registry garbage-collect` break tagged images? (reads its dry run)")
    gc.add_argument("root", metavar="ROOT", help="the storage rootdirectory (it holds docker/registry/v2)")
    gc.add_argument(
        "--plan", required=True, metavar="FILE", help="output of `registry garbage-collect --dry-run`; - for stdin"
    )
    common(gc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "serve":
            from .serve import serve_command

            path = args.config or os.environ.get("REGPROBE_CONFIG") or config_mod.DEFAULT_PATH
            return serve_command(path, args.listen, args.interval)
        if args.command == "fsck":
            from .fsck import run_fsck

            return run_fsck(
                args.root,
                index_children=not args.no_index_children,
                repair=args.repair,
                dry_run=args.dry_run,
                verify_digests=args.verify_digests,
                fmt=args.format,
            )
        if args.command == "gc-check":
            from .gccheck import run_gc_check

            return run_gc_check(args.root, args.plan, fmt=args.format)
        return _check(args, parser)
    except ConfigError as exc:
        print(f"regprobe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="regprobe: %(levelname)s: %(message)s", force=True)
    # httpx logs every request URL at INFO; presigned blob URLs carry credentials in their query.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get("REGPROBE_CONFIG") or config_mod.DEFAULT_PATH
    cfg = config_mod.load(path)
    selected_shard = shard.parse(args.shard) if args.shard else shard.from_environment()
    cache = open_cache(cfg, path)
    stop = StopRequest()
    push = cfg.pushgateway is not None and not args.no_push
    results, pushed = _run_async(_until_signalled(stop, _probe_and_push(cfg, cache, selected_shard, stop, push)))
    if cache is not None:
        cache.prune()
    if args.format == "metrics":
        from . import metrics

        job = cfg.pushgateway.job if cfg.pushgateway else config_mod.DEFAULT_JOB
        print(metrics.exposition(cfg, results, job), end="")
    else:
        _emit(results, args.format)
    return exit_code(results, pushed)


async def _probe_and_push(
    cfg: Config, cache: ManifestCache | None, selected_shard: shard.Shard | None, stop: StopRequest, push: bool
) -> tuple[list[RegistryResult], bool]:
    """Probe, then push - both while a signal only stops the probes: a SIGTERM arriving during the push
    must not kill the process before the push and the report are done."""
    results = await run_config(cfg, cache, selected_shard, stop)
    if not push:
        return results, True
    from . import metrics

    # Pushed before the report is printed, so the report can say whether the push failed.
    timeout = STOPPED_PUSH_TIMEOUT if stop.reason else None
    pushed = await asyncio.to_thread(metrics.push_all, cfg, results, timeout)
    return results, pushed


def open_cache(cfg: Config, path: str) -> ManifestCache | None:
    if cfg.cache_dir is None:
        return None
    try:
        return ManifestCache(cfg.cache_dir)
    except OSError as exc:
        raise ConfigError(f"{path}: cache_dir: cannot create {cfg.cache_dir}: {exc.strerror}") from None


async def run_config(
    cfg: Config,
    cache: ManifestCache | None = None,
    selected_shard: shard.Shard | None = None,
    stop: StopRequest | None = None,
) -> list[RegistryResult]:
    deadline = time.monotonic() + cfg.deadline
    probes = (_probe_configured(cfg, r, deadline, cache, selected_shard, stop) for r in cfg.registries)
    return list(await asyncio.gather(*probes))


async def _probe_configured(
    cfg: Config,
    registry: RegistryConfig,
    deadline: float,
    cache: ManifestCache | None,
    selected_shard: shard.Shard | None,
    stop: StopRequest | None = None,
) -> RegistryResult:
    if registry.auth is not None and registry.auth.unavailable is not None:
        # A secret not mounted (yet): this registry cannot be probed; the others can.
        log.error("registry %s: %s", registry.name, registry.auth.unavailable)
        return _not_probed(registry.name, registry.url, registry.auth.unavailable)
    try:
        settings = configured_settings(cfg, registry)
    except (OSError, ssl.SSLError) as exc:  # checked at load; a file replaced since is this registry's problem
        return _not_probed(registry.name, registry.url, f"tls: cannot load: {exc}")
    policy = WalkPolicy(registry.blob_check, registry.index_children, cfg.max_manifest_bytes)
    repos = registry.repositories
    host = urlsplit(registry.url).hostname or ""
    names = tuple(hub_repository(host, name) for name in repos.list_)
    selection = Selection(tuple(repos.include), tuple(repos.exclude), names, selected_shard)
    return await _guarded(registry.name, settings, policy, deadline, selection=selection, cache=cache, stop=stop)


def configured_settings(cfg: Config, registry: RegistryConfig) -> ClientSettings:
    """How to talk to a configured registry: its URL, limits, TLS and credentials."""
    if registry.auth is not None and registry.auth.password is not None:
        auth = RegistryAuth(registry.auth.username, registry.auth.password.get_secret_value())
    else:
        auth = _docker_auth(registry.url)
    return ClientSettings(
        url=registry.url,
        concurrency=cfg.concurrency_for(registry),
        timeout=cfg.timeout_for(registry),
        auth=auth,
        verify=ssl_context(
            registry.tls.ca_file, registry.tls.cert_file, registry.tls.key_file, registry.tls.insecure_skip_verify
        ),
        user_agent=f"regprobe/{_version()}",
    )


def _not_probed(name: str, url: str, error: str) -> RegistryResult:
    """A registry that could not be probed at all: incomplete, and pushed with this run's time."""
    return RegistryResult(name=name, url=url, errors=[error], started_at=time.time())


def _docker_auth(host_or_url: str) -> RegistryAuth:
    """Credentials for a host from docker's config.json, the fallback when the config gives none;
    anonymous (which still fetches anonymous pull tokens) when it has none."""
    found = credentials.lookup(host_or_url.split("://", 1)[-1])
    return RegistryAuth(*found) if found else RegistryAuth()


async def _guarded(
    name: str,
    settings: ClientSettings,
    policy: WalkPolicy,
    deadline: float,
    *,
    selection: Selection | None = None,
    pinned: Sequence[Pinned] = (),
    cache: ManifestCache | None = None,
    stop: StopRequest | None = None,
) -> RegistryResult:
    """One registry's probe; whatever goes wrong in it, the others are still probed and reported."""
    try:
        async with RegistryClient(settings) as client:
            return await probe_registry(
                name, client, policy, selection=selection, pinned=pinned, deadline=deadline, cache=cache, stop=stop
            )
    except Exception as exc:
        log.exception("internal error probing %s", name)
        return _not_probed(name, settings.url, f"internal error {type(exc).__name__}; see the log")


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.password_stdin and not args.username:
        parser.error("--password-stdin needs --username")
    refs: list[Reference] = []
    for text in args.refs:
        try:
            refs.append(Reference.parse(text))
        except ParseError as exc:
            raise ConfigError(f"REF {text!r}: {exc}") from None
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            # Sent as is it would end as a 401 (exit 3, a CI warning): an unset CI secret must fail.
            parser.error("--password-stdin: standard input held no password")
    elif args.username:
        parser.error("--username needs --password-stdin (passwords are never taken on the command line)")
    stop = StopRequest()
    results = _run_async(_until_signalled(stop, _check_refs(refs, args, password, stop)))
    _emit(results, args.format)
    return exit_code(results, True)


async def _check_refs(
    refs: Sequence[Reference], args: argparse.Namespace, password: str | None, stop: StopRequest
) -> list[RegistryResult]:
    deadline = time.monotonic() + 24 * 3600  # no schedule to overlap; each request still has its timeout
    by_host: dict[str, list[Reference]] = {}
    for ref in refs:
        by_host.setdefault(ref.host, []).append(ref)
    probes = []
    for host, group in by_host.items():
        scheme = "http" if args.plain_http else "https"
        api_host = group[0].api_host
        explicit = args.username and password is not None
        auth = RegistryAuth(args.username, password) if explicit else _docker_auth(host)
        settings = ClientSettings(
            url=f"{scheme}://{api_host}",
            concurrency=args.concurrency,
            timeout=args.timeout,
            auth=auth,
            verify=not args.insecure,
            user_agent=f"regprobe/{_version()}",
        )
        pinned = [Pinned(r.repository, r.tag, r.digest) for r in group]
        probes.append(_guarded(host, settings, WalkPolicy(args.blob_check), deadline, pinned=pinned, stop=stop))
    return list(await asyncio.gather(*probes))


def _emit(results: Sequence[RegistryResult], fmt: str) -> None:
    if fmt == "json":
        print(report.to_json(results))
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(report.to_text(results, colour=colour), end="")


def exit_code(results: Sequence[RegistryResult], pushed: bool) -> int:
    if any(r.findings for r in results):
        return EXIT_FINDINGS
    if not pushed or not all(r.complete and r.catalog_accessible for r in results):
        return EXIT_INCOMPLETE
    return EXIT_OK
