"""``regprobe ledger``: what the verification ledger says, read-only - tags by last verification (the
least recently verified first), or only those broken at the last look, with where coverage stands.

It takes no lock and writes nothing, so it can run beside a run that is writing the ledger (SQLite
readers are safe beside the writer on a local volume). Exit 0 when every ledger asked for was read, 2 for
a bad config or a registry the config does not name, 3 when a ledger is missing or unreadable.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from . import config as config_mod
from . import exitcodes
from .config import Config, RegistryConfig
from .errors import ConfigError
from .ledger import LedgerError, LedgerView, TagState, ledger_path
from .shard import Shard


def run_ledger(
    config_path: str,
    *,
    registry: str | None = None,
    selected_shard: Shard | None = None,
    oldest: int | None = None,
    broken: bool = False,
    fmt: str = "text",
    out: TextIO | None = None,
) -> int:
    cfg = config_mod.load(config_path)
    if cfg.state_dir is None:
        raise ConfigError(f"{config_path}: state_dir: not set, so there is no ledger to read")
    chosen = _registries(cfg, registry, config_path)
    stream = out if out is not None else sys.stdout
    now = time.time()
    documents: list[dict[str, object]] = []
    failed = False
    for entry in chosen:
        path = ledger_path(cfg.state_dir, entry.name, str(selected_shard) if selected_shard else None)
        document: dict[str, object] = {"name": entry.name, "ledger": str(path)}
        try:
            with LedgerView.open(path) as view:
                coverage = view.coverage(cfg.coverage.window_seconds, now)
                tags = view.tags(broken_only=broken, limit=oldest)
        except LedgerError as exc:
            failed = True
            document["error"] = str(exc)
        else:
            document["coverage"] = {
                "window_seconds": cfg.coverage.window_seconds,
                "known": coverage.known,
                "verified_within_window": coverage.within_window,
                "oldest_age_seconds": round(coverage.oldest_age, 3),
            }
            document["tags"] = [_tag_json(t) for t in tags]
        documents.append(document)
    if fmt == "json":
        stream.write(json.dumps({"registries": documents}, indent=2) + "\n")
    else:
        stream.write(_text(documents, now))
    return exitcodes.INCOMPLETE if failed else exitcodes.OK


def _registries(cfg: Config, name: str | None, source: str) -> Sequence[RegistryConfig]:
    if name is None:
        return cfg.registries
    chosen = [r for r in cfg.registries if r.name == name]
    if not chosen:
        names = ", ".join(r.name for r in cfg.registries)
        raise ConfigError(f"--registry {name!r}: {source} names no such registry (it has: {names})")
    return chosen


def _tag_json(state: TagState) -> dict[str, object]:
    return {
        "repository": state.repository,
        "tag": state.tag,
        "digest": state.digest,
        "verified_at": state.verified_at,
        "verdict": state.verdict,
        "detail": state.detail or None,
    }


def _text(documents: Sequence[dict[str, object]], now: float) -> str:
    lines: list[str] = []
    for document in documents:
        lines.append(f"{document['name']}  {document['ledger']}")
        if "error" in document:
            lines.append(f"  ! {document['error']}")
            lines.append("")
            continue
        coverage = document["coverage"]
        assert isinstance(coverage, dict)
        lines.append(
            f"  {coverage['known']} tags known, {coverage['verified_within_window']} verified within"
            f" {_age(coverage['window_seconds'])}; the least recently verified {_age(coverage['oldest_age_seconds'])}"
            " ago"
        )
        tags = document["tags"]
        assert isinstance(tags, list)
        header = ("REPOSITORY", "TAG", "VERDICT", "VERIFIED", "DIGEST")
        rows = [_row(tag, now) for tag in tags]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        for row, tag in [(header, None), *zip(rows, tags, strict=True)]:
            padded = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
            lines.append("  " + "  ".join([*padded, row[4]]))
            if tag is not None and tag["verdict"] == "broken" and tag["detail"]:
                lines.append(f"      {tag['detail']}")
        lines.append("")
    return "\n".join(lines)


def _row(tag: dict[str, object], now: float) -> tuple[str, str, str, str, str]:
    when = tag["verified_at"]
    verified = "never" if not isinstance(when, float) else f"{_stamp(when)} ({_age(now - when)} ago)"
    return (str(tag["repository"]), str(tag["tag"]), str(tag["verdict"] or "-"), verified, str(tag["digest"] or "-"))


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _age(seconds: object) -> str:
    assert isinstance(seconds, int | float)
    total = max(0, int(seconds))  # a clock set back since
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
