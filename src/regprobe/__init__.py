"""regprobe: checks that everything a container registry lists can actually be pulled."""

from .digest import Digest
from .errors import AuthError, ConfigError, ManifestError, ParseError, RegistryError, RegprobeError
from .model import Finding, Kind, Problem, RegistryResult
from .reference import Reference

__all__ = [
    "AuthError",
    "ConfigError",
    "Digest",
    "Finding",
    "Kind",
    "ManifestError",
    "ParseError",
    "Problem",
    "Reference",
    "RegistryError",
    "RegistryResult",
    "RegprobeError",
]
