"""Every error regprobe raises derives from :class:`RegprobeError`.

    RegprobeError
    ├── ConfigError          bad configuration or command line (exit 2); names the file and key
    ├── ParseError           input that does not follow its grammar (digest, reference, manifest)
    │   ├── DigestError
    │   ├── InvalidReferenceError
    │   └── ManifestError    carries the finding ``problem`` it maps to
    └── RegistryError        an HTTP exchange with a registry went wrong
        ├── AuthError        401/403 after credentials were offered: an access problem, never a finding
        ├── NotRegistryError an answer that is not the registry API (an HTML page): never a finding
        └── TransportError   no HTTP answer at all (connect/read failure, timeout)

``RegistryError.temporary`` decides whether an exchange is retried.
"""

from __future__ import annotations

from typing import Final

#: Statuses worth another try: the registry or a proxy in front of it is overloaded or flapping.
TEMPORARY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


class RegprobeError(Exception):
    """Base of every error regprobe raises on purpose."""


class ConfigError(RegprobeError):
    """Configuration or usage error; the message names the file and the key path."""


class ParseError(RegprobeError):
    """Input that does not follow its grammar."""


class DigestError(ParseError):
    """A string that is not an OCI digest regprobe can verify."""


class InvalidReferenceError(ParseError):
    """An image reference that cannot be parsed."""


class ManifestError(ParseError):
    """A manifest body that cannot be used; ``problem`` is the finding problem it becomes."""

    def __init__(self, message: str, problem: str = "invalid") -> None:
        super().__init__(message)
        self.problem = problem


class RegistryError(RegprobeError):
    """An HTTP exchange failed; carries what an operator needs to find it again."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def temporary(self) -> bool:
        return self.status in TEMPORARY_STATUSES


class AuthError(RegistryError):
    """Credentials refused (or required and absent): the probe cannot see, so it must not judge."""

    @property
    def temporary(self) -> bool:
        return False


class NotRegistryError(RegistryError):
    """A 2xx answer that is not the registry API - an HTML login portal, a wrong URL - where a registry
    document was expected: the probe is not talking to a registry, so it must not judge images."""


class TransportError(RegistryError):
    """No usable HTTP answer: connection refused or reset, timeout, body cut short."""

    def __init__(self, message: str, *, url: str = "", timeout: bool = False, truncated: bool = False) -> None:
        super().__init__(message, url=url)
        self.timeout = timeout
        self.truncated = truncated

    @property
    def temporary(self) -> bool:
        return True
