"""Command line: parses argv, runs the commands, and alone decides exit codes.

Exit codes: 0 all walked and intact; 1 integrity findings (wins over 3); 2 usage or configuration
error, nothing probed; 3 the probe could not complete.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import ssl
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import TypeVar

from . import config as config_mod
from . import exitcodes, progress, report, shard
from .cache import ManifestCache
from .client import ClientSettings, ssl_context
from .config import Config
from .counters import Counters
from .errors import ConfigError, ParseError
from .model import RegistryResult
from .probe import Pinned, Selection
from .reference import Reference
from .runner import client_settings, guarded, open_cache, run_async, run_config, user_agent_version
from .stop import StopRequest, on_signals
from .walk import WalkPolicy

#: Longest a push may take after SIGTERM: the report and the push must fit Kubernetes' 30 s grace period.
STOPPED_PUSH_TIMEOUT = 5.0
log = logging.getLogger("regprobe")
T = TypeVar("T")


async def _until_signalled(stop: StopRequest, work: Awaitable[T], then: str) -> T:
    """Run ``work`` with SIGTERM/SIGINT turned into ``stop`` (report, and push, what was walked);
    ``then`` is what the log says becomes of it."""
    with on_signals(stop, then):
        return await work


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if not 1 <= value <= config_mod.MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be from 1 to {config_mod.MAX_CONCURRENCY}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not 0 < value <= config_mod.MAX_SECONDS:  # false for nan and inf too
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {config_mod.MAX_SECONDS:g} seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regprobe", description="Check that what a registry lists can be pulled.")
    parser.add_argument("--version", action="version", version=f"regprobe {user_agent_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, formats: tuple[str, ...] = ("text", "json")) -> None:
        p.add_argument("--format", choices=formats, default="text", help="output format (default text)")
        p.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            help="-v: what is done and skipped (INFO); -vv: every retry and decision (DEBUG); logs go to stderr",
        )
        p.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="no progress (live on a terminal, else a log line per registry every 30 s)",
        )

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

    check = sub.add_parser(
        "check",
        help="walk the named images (CI, right after a push)",
        description="Walk the named images and check every object can be pulled. Exit 0 intact, "
        "1 broken, 2 usage error, 3 could not complete.",
    )
    check.add_argument(
        "refs",
        nargs="+",
        metavar="REF",
        help="host[:port]/repo[:tag][@digest] (docker's grammar: no host means Docker Hub); "
        "with --all-tags, host[:port]/repo",
    )
    check.add_argument("--all-tags", action="store_true", help="walk every tag of each REF's repository")
    check.add_argument("--plain-http", action="store_true", help="talk http:// to the registries")
    check.add_argument("--insecure", action="store_true", help="skip TLS certificate verification")
    check.add_argument(
        "--ca-file", metavar="FILE", help="trust this CA bundle (default: the system store, $SSL_CERT_FILE/DIR)"
    )
    check.add_argument("--cert-file", metavar="FILE", help="client certificate for mutual TLS")
    check.add_argument("--key-file", metavar="FILE", help="key of --cert-file (if not in the same file)")
    check.add_argument("--username", help="registry user (password read from stdin with --password-stdin)")
    check.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    check.add_argument(
        "--blob-check",
        choices=("head", "range", "digest"),
        default="range",
        help="how configs and layers are checked: range (default) reads each blob's last byte, which "
        "catches data deleted or cut short behind the registry's cache; head is cheapest and blind to that; "
        "digest downloads and hashes everything",
    )
    check.add_argument(
        "--referrers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="walk each image's OCI 1.1 referrers too - signatures, SBOMs, attestations (default: on)",
    )
    check.add_argument(
        "--concurrency",
        type=_concurrency,
        default=16,
        metavar="N",
        help="requests in flight per registry (1-1024, default 16)",
    )
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="bound on one whole exchange (connect, send, read the answer); transient failures are "
        "retried up to 3 times with backoff on top (default 30)",
    )
    common(check)
    check.set_defaults(command_parser=check)

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

    ledger = sub.add_parser(
        "ledger",
        help="list tags by last verification, from the verification ledger (read-only)",
        description="What the verification ledger (state_dir) says: tags by last verification, the least "
        "recently verified first, and how many are verified within coverage.window. Read-only: safe beside "
        "a run. Exit 0 read, 2 usage or config error, 3 a ledger missing or unreadable.",
    )
    ledger.add_argument("-c", "--config", help="config file (default $REGPROBE_CONFIG, then /etc/regprobe/config.yaml)")
    ledger.add_argument("--registry", metavar="NAME", help="only this registry of the config (default: every one)")
    ledger.add_argument(
        "--shard",
        metavar="I/N",
        help="the ledger of shard I of N (default: $JOB_COMPLETION_INDEX of $REGPROBE_SHARDS, as for run)",
    )
    which = ledger.add_mutually_exclusive_group()
    which.add_argument("--oldest", type=_count, metavar="N", help="only the N least recently verified tags")
    which.add_argument("--broken", action="store_true", help="only tags broken at the last look")
    ledger.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    ledger.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")

    gc = sub.add_parser("gc-check", help="would `registry garbage-collect` break tagged images? (reads its dry run)")
    gc.add_argument("root", metavar="ROOT", help="the storage rootdirectory (it holds docker/registry/v2)")
    gc.add_argument(
        "--plan", required=True, metavar="FILE", help="output of `registry garbage-collect --dry-run`; - for stdin"
    )
    common(gc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            # Buffered output meets a reader that went away here, not at interpreter exit (where Python
            # would print "Exception ignored ... BrokenPipeError", or exit 120); --help's SystemExit
            # included. stderr too: `regprobe run -v 2>&1 | head` leaves log lines in its buffer.
            sys.stdout.flush()
            sys.stderr.flush()
    except BrokenPipeError:
        # `regprobe fsck ROOT | head`: the reader has what it wanted. Quiet, with the status a shell
        # gives a program SIGPIPE ends; both streams go to /dev/null so nothing is flushed into the
        # pipe again.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            for stream in (sys.stdout, sys.stderr):
                os.dup2(devnull, stream.fileno())
        return exitcodes.BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
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
                quiet=args.quiet,
            )
        if args.command == "ledger":
            from .ledgerview import run_ledger

            path = args.config or os.environ.get("REGPROBE_CONFIG") or config_mod.DEFAULT_PATH
            selected_shard = shard.parse(args.shard) if args.shard else shard.from_environment()
            return run_ledger(
                path,
                registry=args.registry,
                selected_shard=selected_shard,
                oldest=args.oldest,
                broken=args.broken,
                fmt=args.format,
            )
        if args.command == "gc-check":
            from .gccheck import run_gc_check

            return run_gc_check(args.root, args.plan, fmt=args.format)
        return _check(args, args.command_parser)
    except ConfigError as exc:
        print(f"regprobe: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except KeyboardInterrupt:
        return 130


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="regprobe: %(levelname)s: %(message)s", force=True)
    # httpx logs every request URL at INFO; presigned blob URLs carry credentials in their query.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The periodic progress line is shown at the default verbosity: it is how a stuck CronJob shows.
    logging.getLogger("regprobe.progress").setLevel(logging.INFO)
    # Each registry's outcome per run, at every verbosity: `kubectl logs` tells what happened without -v.
    logging.getLogger("regprobe.outcome").setLevel(logging.INFO)


def _run(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get("REGPROBE_CONFIG") or config_mod.DEFAULT_PATH
    cfg = config_mod.load(path)
    selected_shard = shard.parse(args.shard) if args.shard else shard.from_environment()
    cache = open_cache(cfg, path)
    stop = StopRequest()
    push = cfg.pushgateway is not None and not args.no_push
    counters = [Counters(r.name) for r in cfg.registries]
    with progress.Display(counters, progress.mode_for(args.quiet)):
        probed = _probe_and_push(cfg, cache, selected_shard, stop, push, counters)
        then = "the run is reported and pushed as incomplete" if push else "the run is reported as incomplete"
        results, pushed = run_async(_until_signalled(stop, probed, then))
    if cache is not None:
        cache.prune()
    if args.format == "metrics":
        from . import pushgateway

        job = cfg.pushgateway.job if cfg.pushgateway else config_mod.DEFAULT_JOB
        print(pushgateway.exposition(cfg, results, job), end="")
    else:
        _emit(results, args.format)
    return exit_code(results, pushed)


async def _probe_and_push(
    cfg: Config,
    cache: ManifestCache | None,
    selected_shard: shard.Shard | None,
    stop: StopRequest,
    push: bool,
    counters: Sequence[Counters] | None = None,
) -> tuple[list[RegistryResult], bool]:
    """Probe, pushing each registry's group as soon as its walk ends - all while a signal only stops the
    probes: a SIGTERM arriving during a push must not kill the process before the pushes and the report
    are done. Each push is bounded by the config's ``timeout`` (after a signal, STOPPED_PUSH_TIMEOUT)."""
    if not push:
        return await run_config(cfg, cache, selected_shard, stop, counters), True
    from . import pushgateway

    async def publish(result: RegistryResult) -> bool:
        seconds = min(cfg.timeout, STOPPED_PUSH_TIMEOUT) if stop.reason else cfg.timeout
        return await pushgateway.publish(cfg, result, seconds)

    # Pushed before the report is printed, so the report can say whether each push failed.
    results = await run_config(cfg, cache, selected_shard, stop, counters, publish)
    return results, all(r.push is not None and r.push.ok for r in results)


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``parser`` is check's own: its usage is the one a usage error shows."""
    if args.password_stdin and not args.username:
        parser.error("--password-stdin needs --username")
    if args.username and not args.password_stdin:
        parser.error("--username needs --password-stdin (passwords are never taken on the command line)")
    if args.key_file and not args.cert_file:
        parser.error("--key-file goes with --cert-file")
    refs = [_parse_ref(text, args.all_tags, parser) for text in args.refs]
    try:
        verify = ssl_context(args.ca_file, args.cert_file, args.key_file, args.insecure)
    except (OSError, ssl.SSLError) as exc:
        flags = "/".join(f for f, v in (("--ca-file", args.ca_file), ("--cert-file", args.cert_file)) if v)
        parser.error(f"{flags}: cannot load: {getattr(exc, 'strerror', None) or exc}")
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            # Sent as is it would end as a 401 (exit 3, a CI warning): an unset CI secret must fail.
            parser.error("--password-stdin: standard input held no password")
    stop = StopRequest()
    counters = {ref.host: Counters(ref.host) for ref in refs}
    with progress.Display(list(counters.values()), progress.mode_for(args.quiet)):
        checked = _check_refs(refs, args, password, verify, stop, counters)
        results = run_async(_until_signalled(stop, checked, "what was walked is reported as incomplete"))
    _emit(results, args.format, catalog=False)  # check reads no catalog, --all-tags neither
    return exit_code(results, True)


def _parse_ref(text: str, all_tags: bool, parser: argparse.ArgumentParser) -> Reference:
    try:
        ref = Reference.parse(text, default_tag=None)
    except ParseError as exc:
        parser.error(str(exc))
    if all_tags and (ref.tag or ref.digest):
        parser.error(f"reference {text!r}: --all-tags walks every tag of a repository; give host[:port]/repo")
    if not all_tags and ref.tag is None and ref.digest is None:
        ref = Reference(ref.host, ref.repository, "latest")
    hint = ref.registry_lookalike(text)
    if hint:
        log.warning(
            "REF %r is read as the Docker Hub image %s, as docker reads it; did you mean %s/REPO?", text, ref, hint
        )
    return ref


async def _check_refs(
    refs: Sequence[Reference],
    args: argparse.Namespace,
    password: str | None,
    verify: ssl.SSLContext | bool,
    stop: StopRequest,
    counters: dict[str, Counters],
) -> list[RegistryResult]:
    deadline = time.monotonic() + 24 * 3600  # no schedule to overlap; each request still has its timeout
    by_host: dict[str, list[Reference]] = {}
    for ref in refs:
        by_host.setdefault(ref.host, []).append(ref)
    probes: list[Awaitable[RegistryResult]] = []
    for host, group in by_host.items():
        url = f"{'http' if args.plain_http else 'https'}://{group[0].api_host}"
        login = (args.username, password) if password is not None else None
        settings = _check_settings(client_settings(url, args.concurrency, args.timeout, verify, login))
        policy = WalkPolicy(args.blob_check, referrers=args.referrers)
        if args.all_tags:
            selection = Selection(names=tuple(dict.fromkeys(r.repository for r in group)))
            probe = guarded(
                host, url, settings, policy, deadline, selection=selection, stop=stop, counters=counters[host]
            )
        else:
            pinned = [Pinned(r.repository, r.tag, r.digest) for r in group]
            probe = guarded(host, url, settings, policy, deadline, pinned=pinned, stop=stop, counters=counters[host])
        probes.append(probe)
    return list(await asyncio.gather(*probes))


async def _check_settings(settings: Awaitable[ClientSettings]) -> ClientSettings:
    """``check`` names its registries on the command line: a TLS handshake answered in plain HTTP points
    to the flag, not to a config key."""
    return replace(await settings, plain_http_hint="add --plain-http to talk http:// to it")


def _emit(results: Sequence[RegistryResult], fmt: str, catalog: bool = True) -> None:
    """``catalog``: whether a catalog was to be read, so its state is worth a word in the text."""
    if fmt == "json":
        print(report.to_json(results))
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(report.to_text(results, colour=colour, catalog=catalog), end="")


def exit_code(results: Sequence[RegistryResult], pushed: bool) -> int:
    complete = pushed and all(r.complete and r.catalog_accessible for r in results)
    # With a ledger, a tag broken at the last look is broken until a run looks again, reached or not.
    return exitcodes.verdict(any(r.broken for r in results), complete)
