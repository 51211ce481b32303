"""Splitting one registry's repositories across several pods: a Kubernetes Indexed Job (``regprobe run``)
or a StatefulSet (``regprobe serve``, one shard and one ledger volume per replica).

A repository belongs to shard ``sha256(name) mod N``: stable across runs and processes (Python's
``hash()`` is salted per process), and every repository lands in exactly one shard.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

#: The shard count when --shard is not given; the shard index comes from the Indexed Job, or from the
#: StatefulSet pod's ordinal when FROM_HOSTNAME_ENV is "true".
SHARDS_ENV = "REGPROBE_SHARDS"
INDEX_ENV = "JOB_COMPLETION_INDEX"
FROM_HOSTNAME_ENV = "REGPROBE_SHARD_FROM_HOSTNAME"
#: A StatefulSet names its pods ``<name>-<ordinal>`` and makes that the hostname; with
#: ``setHostnameAsFQDN`` the hostname is the pod's FQDN, whose first label is the pod name.
_ORDINAL = re.compile(r"[^.]+-(\d{1,4})(?:\..*)?")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def owns(self, repository: str) -> bool:
        bucket = int.from_bytes(hashlib.sha256(repository.encode()).digest()[:8], "big") % self.count
        return bucket == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str, source: str = "--shard") -> Shard:
    match = re.fullmatch(r"(\d{1,4})/(\d{1,4})", text.strip())
    if not match:
        raise ConfigError(f"{source}: {text[:40]!r} is not I/N (e.g. 0/4)")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ConfigError(f"{source}: shard {index}/{count}: need 0 <= I < N")
    return Shard(index, count)


def selected(text: str | None) -> Shard | None:
    """``--shard I/N`` when given, else what the environment says (below)."""
    return parse(text) if text else from_environment()


def from_environment(environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of ``REGPROBE_SHARDS`` this pod is: ``JOB_COMPLETION_INDEX`` (set by an Indexed Job), else,
    with ``REGPROBE_SHARD_FROM_HOSTNAME=true``, the ordinal a StatefulSet ends its pod's name - and so
    the hostname - with (``$HOSTNAME``, else the system's). None when unsharded.

    The ordinal is opt-in: a Deployment's pod name ends in random characters that may all be digits."""
    env = os.environ if environ is None else environ
    count = env.get(SHARDS_ENV)
    if not count:
        return None
    index = env.get(INDEX_ENV)
    if index is not None:
        return parse(f"{index}/{count}", f"{INDEX_ENV}/{SHARDS_ENV}")
    from_hostname = env.get(FROM_HOSTNAME_ENV, "").strip().lower()
    if from_hostname not in ("", "true", "false"):
        raise ConfigError(f"{FROM_HOSTNAME_ENV}: {from_hostname[:20]!r} is not true or false")
    if from_hostname != "true":
        raise ConfigError(
            f"{SHARDS_ENV}={count} is set but {INDEX_ENV} is not (run as an Indexed Job), "
            f"nor {FROM_HOSTNAME_ENV}=true (a StatefulSet: the pod's ordinal is the shard)"
        )
    name = env.get("HOSTNAME") or socket.gethostname()
    match = _ORDINAL.fullmatch(name)
    if match is None:
        raise ConfigError(
            f"{FROM_HOSTNAME_ENV}: the hostname {name[:80]!r} does not end in a StatefulSet pod's ordinal "
            "(NAME-0, NAME-1, ...)"
        )
    try:
        return parse(f"{match[1]}/{count}", f"the pod's ordinal (hostname {name[:80]!r}) of {SHARDS_ENV}")
    except ConfigError as exc:
        raise ConfigError(f"{exc} (the StatefulSet's replicas and {SHARDS_ENV} must be equal)") from None
