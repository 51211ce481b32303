"""The registry client: one pooled HTTP client per registry, in layers that can each be read and tested
alone.

- :mod:`.api` - :class:`RegistryClient`, the API's verbs: ping, manifest, manifest_head, blob,
  cache_upstream, pages, referrers.
- :mod:`.listing` - catalog and tag lists, page by page to their end (Link, cursors, tag filtering), and
  a manifest's referrers, a page at a time.
- :mod:`.exchange` - one exchange: sent, read, classified, counted by outcome; retried by :mod:`.retry`
  (backoff, Retry-After, a cap), which knows nothing of HTTP.
- :mod:`.redirects` - redirects followed after checking each target (SSRF, downgrade, loops), without
  the registry's Authorization.
- :mod:`.reading` - an answer into a :class:`Reply`: headers, bounded bodies, error bodies, refusals.
- :mod:`.ratelimit` - the gate that stops a run before it spends a registry's rate limit.

Each method performs one logical exchange and returns a :class:`Reply` stating what arrived - status,
lengths, bytes received, the hash of what was read. It never decides whether an object is broken;
:mod:`regprobe.judge` does.

What talks to the network: this package's :mod:`.exchange` and :mod:`.redirects`, which send through
httpx over :mod:`regprobe.transport` (aiohttp's pool, each address judged by
:class:`regprobe.addresses.Guard` at connect time); :mod:`regprobe.auth`, whose flow fetches tokens
through the same client. Outside registries: :mod:`regprobe.pushgateway` pushes metrics, and
:mod:`regprobe.serve.app` listens.
"""

from __future__ import annotations

from ..facts import BlobMode, Reply
from .api import RegistryClient
from .ratelimit import RateLimitStop, StopReason
from .settings import ClientSettings, RetryPolicy, ssl_context

__all__ = [
    "BlobMode",
    "ClientSettings",
    "RateLimitStop",
    "RegistryClient",
    "Reply",
    "RetryPolicy",
    "StopReason",
    "ssl_context",
]
