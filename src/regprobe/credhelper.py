"""Runs a docker credential helper (``docker-credential-NAME get``) the way docker does.

The protocol (docker/docker-credential-helpers): the server URL on stdin, ``{"ServerURL", "Username",
"Secret"}`` on stdout, exit 0; a helper that holds nothing for the URL exits non-zero and says
"credentials not found" on stdout. The helper's output is a secret or about one: it is never logged
nor put into an error message.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess

from .errors import ConfigError

log = logging.getLogger(__name__)


class CredentialHelperError(ConfigError):
    """A credential helper is missing, failed, hung or answered nonsense. For ``run`` this is the
    registry's problem (it is not probed; exit 3), like a password file not mounted yet."""


#: A helper may reach a cloud API (ECR, GCR) or unlock a keyring; one that hangs must not hang the run.
TIMEOUT = 30.0
_NOT_FOUND = "credentials not found"
_MAX_OUTPUT = 1 << 20


def get(name: str, server_url: str, where: str) -> tuple[str, str] | None:
    """(Username, Secret) the helper ``docker-credential-NAME`` keeps for ``server_url``; None when it
    keeps none. ``where`` (the config file and key naming the helper) prefixes every error."""
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise CredentialHelperError(f"{where}: credential helper {program} not found on PATH")
    try:
        done = subprocess.run(  # noqa: S603 - the program docker's own config names, run as docker runs it
            [path, "get"], input=server_url.encode(), capture_output=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise CredentialHelperError(
            f"{where}: credential helper {program} did not answer within {TIMEOUT:g}s"
        ) from None
    except OSError as exc:
        raise CredentialHelperError(f"{where}: credential helper {program} could not be run: {exc.strerror}") from None
    if done.returncode != 0:
        if _NOT_FOUND in done.stdout[:200].decode(errors="replace").lower():
            log.info("%s: credential helper %s holds nothing for %s", where, program, server_url)
            return None
        raise CredentialHelperError(
            f"{where}: credential helper {program} failed (exit {done.returncode}) for {server_url}"
        )
    try:
        doc = json.loads(done.stdout[:_MAX_OUTPUT])
        username, secret = doc["Username"], doc["Secret"]
    except (ValueError, TypeError, KeyError, RecursionError):
        raise CredentialHelperError(
            f"{where}: credential helper {program} answered no Username/Secret document"
        ) from None
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        raise CredentialHelperError(f"{where}: credential helper {program} answered no Username/Secret document")
    log.info("%s: credentials for %s from credential helper %s", where, server_url, program)
    return username, secret
