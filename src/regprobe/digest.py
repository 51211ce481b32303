"""Content digests (OCI image-spec ``descriptor.md#digests``) as a validating value type."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from .errors import DigestError

# The OCI grammar, restricted to the algorithms we can verify. A digest is used in URLs and in storage
# paths (fsck), so anything outside the grammar must be rejected before it gets near either.
_ENCODED: Final = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, value: object) -> Digest:
        if not isinstance(value, str):
            raise DigestError(f"digest must be a string, got {type(value).__name__}")
        algorithm, sep, encoded = value.partition(":")
        if not sep:
            raise DigestError(f"digest {value[:100]!r} has no algorithm prefix")
        pattern = _ENCODED.get(algorithm)
        if pattern is None:
            raise DigestError(f"digest {value[:100]!r} uses unsupported algorithm {algorithm[:20]!r}")
        if not pattern.fullmatch(encoded):
            raise DigestError(f"digest {value[:100]!r} is not lowercase hex of the right length")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @property
    def short(self) -> str:
        """Enough of the digest for a person to match it against other output."""
        return f"{self.algorithm}:{self.encoded[:12]}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"
