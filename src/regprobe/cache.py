"""Manifest bodies kept between runs (``cache_dir``), content-addressed so an entry is never stale.

With a cache, tags and known manifests are checked with ``HEAD`` and bodies are downloaded only when new:
Docker Hub counts manifest GETs, not HEADs, against its pull limits. Each entry is re-hashed when read
(a damaged file is dropped and fetched again), written atomically, and pruned when unused for a while.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path

from .digest import Digest

log = logging.getLogger(__name__)

#: Entries unused this long are removed at the end of a run.
MAX_AGE_SECONDS = 14 * 24 * 3600


class ManifestCache:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "manifests"
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: Digest) -> Path:
        # Digest is validated against the OCI grammar: its parts are safe as path components.
        return self.root / digest.algorithm / digest.encoded

    def get(self, digest: Digest) -> bytes | None:
        path = self._path(digest)
        try:
            body = path.read_bytes()
        except OSError:
            return None
        if Digest.of(body, digest.algorithm) != digest:
            log.warning("cache entry %s is damaged; fetching it again", path)
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # mark as used, for pruning
        return body

    def put(self, digest: Digest, body: bytes) -> None:
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
                tmp.write(body)
            os.replace(tmp.name, path)
        except OSError as exc:  # a full or read-only disk costs requests, not the run
            log.warning("cannot write cache entry %s: %s", path, exc.strerror)

    def prune(self, max_age: float = MAX_AGE_SECONDS) -> int:
        cutoff = time.time() - max_age
        removed = 0
        for path in self.root.glob("*/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed
