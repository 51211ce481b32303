"""The status page at ``/``: plain HTML, no JavaScript, every value escaped."""

from __future__ import annotations

import time
from html import escape

from ..mediatypes import artifact_name
from ..model import Dangling, Finding, RegistryResult
from ..render import verdict
from .events.pending import Record
from .state import RegistryHistory, RunLog

#: Findings listed per registry; the rest are counted. Keeps the page small when a whole registry breaks.
MAX_FINDINGS = 100

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
.ok{color:#176f2c}.broken{color:#b00020}.incomplete{color:#8a5a00}
code{font-size:90%}
"""


def _when(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix))


def _platform(finding: Finding) -> str:
    return f" ({escape(finding.platform)})" if finding.platform else ""


def render(log: RunLog, configured: list[tuple[str, str]], interval: float, events: list[Record] | None = None) -> str:
    """``configured``: (name, url) of every registry, so one not yet probed still shows; ``events``: the
    last events received, newest first (None: events are off)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>regprobe</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>regprobe</h1>",
        f"<p>Runs every {interval:g}s. "
        + (
            f"A run is in progress since {_when(log.running_since)}."
            if log.running_since
            else "Waiting for the next run."
        )
        + ' <a href="/metrics">metrics</a></p>',
    ]
    for name, url in configured:
        history = log.registries.get(name)
        out.append(f"<h2>{escape(name)} <small><code>{escape(url)}</code></small></h2>")
        if history is None:
            out.append("<p>Not probed yet.</p>")
            continue
        out.extend(_registry(history))
    if events is not None:
        out.extend(_events(events))
    out.append("</body></html>")
    return "\n".join(out)


def _registry(history: RegistryHistory) -> list[str]:
    result = history.last
    # The published verdict: an incomplete run keeps earlier broken images it did not re-check.
    published = history.verdict.count if history.verdict else len(result.broken_images)
    label = verdict(bool(result.findings) or published > 0, result.complete)
    out = [
        f'<p class="{label.lower()}"><strong>{label}</strong></p>',
        "<table>",
        f"<tr><th>last run</th><td>{_when(result.started_at)}</td></tr>",
        f"<tr><th>duration</th><td>{result.duration_seconds:.1f}s</td></tr>",
        f"<tr><th>complete</th><td>{'yes' if result.complete else 'no'}</td></tr>",
        f"<tr><th>catalog accessible</th><td>{'yes' if result.catalog_accessible else 'no'}</td></tr>",
        f"<tr><th>tags walked</th><td>{result.images_checked}</td></tr>",
        f"<tr><th>broken images</th><td>{published}</td></tr>",
        f"<tr><th>dangling referrers</th><td>{_dangling_count(result)}"
        " <small>(subject gone: clutter, pages no one)</small></td></tr>",
        "</table>",
    ]
    if result.errors:
        out.append("<h3>Why the run is incomplete</h3><ul>")
        out.extend(f"<li>{escape(error)}</li>" for error in result.errors)
        out.append("</ul>")
    if result.findings:
        out.append("<h3>Broken images</h3>")
        out.append("<table><tr><th>repository</th><th>tags</th><th>object</th><th>problem</th><th>detail</th></tr>")
        for finding in result.findings[:MAX_FINDINGS]:
            digest = str(finding.digest) if finding.digest else "(tag unresolved)"
            out.append(
                f"<tr><td>{escape(finding.repository)}</td><td>{escape(', '.join(finding.tags))}</td>"
                f"<td>{finding.kind.value} <code>{escape(digest)}</code>{_platform(finding)}</td>"
                f"<td>{finding.problem.value}</td><td>{escape(finding.detail)}</td></tr>"
            )
        out.append("</table>")
        if len(result.findings) > MAX_FINDINGS:
            out.append(
                f"<p>{len(result.findings) - MAX_FINDINGS} more not listed here; "
                "<code>regprobe run --no-push --format json</code> lists them all.</p>"
            )
    out.extend(_dangling(result))
    out.extend(_kept(history))
    out.extend(_event_broken(history))
    out.append("<h3>Recent runs</h3>")
    out.append(
        "<table><tr><th>started</th><th>duration</th><th>complete</th><th>tags walked</th><th>broken images</th></tr>"
    )
    for run in history.runs:
        out.append(
            f"<tr><td>{_when(run.started_at)}</td><td>{run.duration_seconds:.1f}s</td>"
            f"<td>{'yes' if run.complete else 'no'}</td><td>{run.images_checked}</td><td>{run.broken_images}</td></tr>"
        )
    out.append("</table>")
    return out


def _events(events: list[Record]) -> list[str]:
    out = ["<h2>Recent events</h2>"]
    if not events:
        return [*out, "<p>None received since serve started.</p>"]
    out.append("<table><tr><th>received</th><th>registry</th><th>from</th><th>event</th><th>outcome</th></tr>")
    out.extend(
        f"<tr><td>{_when(e.received_at)}</td><td>{escape(e.registry)}</td><td>{escape(e.source)}</td>"
        f"<td><code>{escape(e.description)}</code></td><td>{escape(e.outcome)}</td></tr>"
        for e in events
    )
    out.append("</table>")
    return out


def _event_broken(history: RegistryHistory) -> list[str]:
    if history.verdict is None or not history.by_events:
        return []
    names = ", ".join(f"<code>{escape(f'{r}:{t}')}</code>" for r, t in sorted(history.by_events)[:MAX_FINDINGS])
    more = len(history.by_events) - MAX_FINDINGS
    return [
        "<h3>Broken since, found by an event's re-check</h3>",
        f"<p>{names}{f' and {more} more' if more > 0 else ''} (see Recent events).</p>",
    ]


def _kept(history: RegistryHistory) -> list[str]:
    if history.verdict is None or not history.verdict.kept:
        return []
    kept = sorted(history.verdict.named - set(history.last.broken_images) - history.by_events)
    names = ", ".join(f"<code>{escape(f'{repository}:{tag}')}</code>" for repository, tag in kept[:MAX_FINDINGS])
    more = f" and {len(kept) - MAX_FINDINGS} more" if len(kept) > MAX_FINDINGS else ""
    return [
        "<h3>Broken at an earlier run, not re-checked by this one</h3>",
        f"<p>This run did not reach them, so their earlier verdict stands: {names}{more}.</p>",
    ]


def _dangling_count(result: RegistryResult) -> str:
    return "not looked at by this run" if result.dangling is None else str(len(result.dangling))


def _dangling(result: RegistryResult) -> list[str]:
    if not result.dangling:
        return []
    out = ["<h3>Dangling referrers</h3>", "<table><tr><th>repository</th><th>object</th><th>subject (gone)</th></tr>"]
    for d in sorted(result.dangling, key=Dangling.order)[:MAX_FINDINGS]:
        what = "fallback tag " + d.tag if d.reason == "orphaned_fallback_tag" else artifact_name(d.artifact_type)
        digest = f" <code>{escape(str(d.digest))}</code>" if d.digest else ""
        out.append(
            f"<tr><td>{escape(d.repository)}</td><td>{escape(what)}{digest}</td>"
            f"<td><code>{escape(str(d.subject))}</code></td></tr>"
        )
    out.append("</table>")
    return out
