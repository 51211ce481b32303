"""Who may send events: whoever presents the shared secret of ``serve.events.secret_file``.

The secret is re-read when the file changes (a rotated Kubernetes Secret is swapped in place), and
compared in constant time. Senders present it as ``Authorization: Bearer <secret>`` (distribution,
GitLab, Harbor, zot, ACR and EventBridge connections can all send that header), or as the password of
``Authorization: Basic`` - what an HTTP client sends for ``https://user:<secret>@host/events``, for the
senders that take a URL and no header (Quay, Docker Hub).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os

from ...config import read_secret_file

log = logging.getLogger(__name__)

#: The challenge sent with a 401 (RFC 6750).
CHALLENGE = 'Bearer realm="regprobe events"'


class SecretFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int, int] | None = None
        self._secret: bytes | None = None
        self._problem: str | None = None

    def current(self) -> bytes | None:
        """The secret as the file holds it now; None (every sender refused) while it cannot be read or is
        empty - a removed secret revokes, it is never replaced by the last one read."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._unusable(f"cannot read {self.path}: {exc.strerror}")
            return None
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                secret = read_secret_file(self.path).encode()
            except OSError as exc:
                self._unusable(f"cannot read {self.path}: {exc.strerror}")
                return None
            except ValueError as exc:
                self._unusable(str(exc))
                return None
            if self._stamp is not None:
                log.info("events: the secret in %s changed; senders must present the new one", self.path)
            self._stamp, self._secret, self._problem = stamp, secret, None
        return self._secret

    def _unusable(self, problem: str) -> None:
        if problem != self._problem:
            log.error(
                "events: serve.events.secret_file: %s; every event is refused (401) until it is readable", problem
            )
        self._stamp, self._secret, self._problem = None, None, problem

    def accepts(self, authorization: str | None) -> bool:
        secret = self.current()
        offered = _offered(authorization)
        if secret is None or offered is None:
            return False
        return hmac.compare_digest(offered, secret)


def _offered(authorization: str | None) -> bytes | None:
    """The secret a sender presents in its Authorization header, if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value.encode()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        _, sep, password = decoded.partition(b":")
        return password if sep and password else None
    return None
