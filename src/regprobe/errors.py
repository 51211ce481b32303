"""Every error regprobe raises derives from :class:`RegprobeError`.

    RegprobeError
    ├── ConfigError          bad configuration or command line (exit 2); names the file and key
    ├── ParseError           input that does not follow its grammar (digest, reference, manifest)
    │   ├── DigestError
    │   ├── InvalidReferenceError
    │   └── ManifestError    a manifest body that cannot be used (an ``invalid`` finding)
    └── RegistryError        the registry cannot be read (listing failed, token service down)
        ├── AuthError        401/403: an access problem, never a finding
        ├── PaginationError  a listing that cannot be read to its end (a Link to nowhere, a cycle)
        ├── RedirectError    a redirect regprobe will not follow (downgrade, internal address, loop)
        ├── BlockedAddressError a host the registry named resolves where it may not send us
        ├── RateLimitError   the registry's rate limit is (nearly) spent: the run stops, incomplete
        └── NotRegistryError an answer that is not the registry API (an HTML page): never a finding

Whether an exchange is retried is decided from its :class:`regprobe.facts.Reply` (``temporary``), not
from exceptions: a broken object is an answer to record, not an error to raise.
"""

from __future__ import annotations


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
    """A manifest body that cannot be used: unparseable, unsupported, or malformed."""


class RegistryError(RegprobeError):
    """The registry cannot be read; carries what an operator needs to find the exchange again."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """Credentials refused (or required and absent): the probe cannot see, so it must not judge."""


class PaginationError(RegistryError):
    """A listing whose pages cannot be followed to the end: a Link that answers an error, pages that
    repeat, no end within the bound. The registry is incomplete; it never means "no such repository"."""


class RedirectError(RegistryError):
    """A redirect refused: https to http, to a private, loopback or link-local address the registry does
    not live on, a loop or too long a chain. Nothing was learnt about the object, so never a finding."""


class BlockedAddressError(RegistryError):
    """A connection not made: the host a registry named (a token realm, a redirect target) resolves to a
    private, loopback or link-local address the registry does not live on. The client reports it as the
    refused realm or redirect it is."""

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host


class RateLimitError(RegistryError):
    """The registry answered 429 after the retries, or says it has almost no pulls left for us: going on
    would spend the pulls of everyone behind the same address or account."""


class NotRegistryError(RegistryError):
    """A 2xx answer that is not the registry API - an HTML login portal, a wrong URL - where a registry
    document was expected: the probe is not talking to a registry, so it must not judge images."""
