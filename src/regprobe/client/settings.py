"""How a registry client is set up: where the registry is, how hard to press it, how to retry."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    #: Longest wait a Retry-After gets; a registry asking for more is retried after this long (and a 429
    #: that outlasts every retry stops the run: see RateLimitError).
    max_retry_after: float = 60.0


@dataclass(frozen=True, slots=True)
class ClientSettings:
    url: str
    concurrency: int = 16
    timeout: float = 30.0
    auth: httpx.Auth | None = None
    verify: ssl.SSLContext | bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = "regprobe"
    #: Pulls to leave unspent when the registry announces its limit (Docker Hub's
    #: ``ratelimit-remaining``); None: a tenth of the limit, at least ``concurrency`` (requests in
    #: flight when the reserve is reached must not spend the rest).
    rate_limit_reserve: int | None = None
    #: What to do when an https URL reaches a plain-HTTP registry (``check``: ``--plain-http``).
    plain_http_hint: str = "give the registry an http:// url in the config"


def ssl_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None, insecure: bool
) -> ssl.SSLContext | bool:
    if insecure:
        return False
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context
