"""Runs a docker credential helper (``docker-credential-NAME get``) the way docker does.

The protocol (docker/docker-credential-helpers): the server URL on stdin, ``{"ServerURL", "Username",
"Secret"}`` on stdout, exit 0; a helper that holds nothing for the URL exits non-zero and says
"credentials not found" on stdout. The helper's output is a secret or about one: it is never logged
nor put into an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from asyncio.subprocess import DEVNULL, PIPE

from .errors import ConfigError

log = logging.getLogger(__name__)


class CredentialHelperError(ConfigError):
    """A credential helper is missing, failed, hung or answered nonsense. For ``run`` this is the
    registry's problem (it is not probed; exit 3), like a password file not mounted yet."""


#: A helper may reach a cloud API (ECR, GCR) or unlock a keyring; one that hangs must not hang the run.
TIMEOUT = 30.0
_NOT_FOUND = "credentials not found"
_MAX_OUTPUT = 1 << 20


async def get(name: str, server_url: str, where: str) -> tuple[str, str] | None:
    """(Username, Secret) the helper ``docker-credential-NAME`` keeps for ``server_url``; None when it
    keeps none. ``where`` (the config file and key naming the helper) prefixes every error.

    The helper runs as a child process of the event loop's, never in a thread: cancelled (a SIGTERM, a
    /probe past its scrape timeout) it is killed at once, where a thread would hold the process until the
    helper gave up by itself (issue 22: a hanging helper kept ``run`` 24 s past SIGTERM)."""
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise CredentialHelperError(f"{where}: credential helper {program} not found on PATH")
    try:
        # The program docker's own config names, run as docker runs it (its stderr is not read: docker
        # discards it too, and it may echo the secret).
        helper = await asyncio.create_subprocess_exec(path, "get", stdin=PIPE, stdout=PIPE, stderr=DEVNULL)
    except OSError as exc:
        raise CredentialHelperError(f"{where}: credential helper {program} could not be run: {exc.strerror}") from None
    try:
        async with asyncio.timeout(TIMEOUT):
            output = await _ask(helper, server_url.encode())
            if len(output) > _MAX_OUTPUT:
                raise CredentialHelperError(f"{where}: credential helper {program} answered over {_MAX_OUTPUT} bytes")
            code = await helper.wait()
    except TimeoutError:
        raise CredentialHelperError(
            f"{where}: credential helper {program} did not answer within {TIMEOUT:g}s"
        ) from None
    finally:
        if helper.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                helper.kill()
            await helper.wait()
    if code != 0:
        if _NOT_FOUND in output[:200].decode(errors="replace").lower():
            log.info("%s: credential helper %s holds nothing for %s", where, program, server_url)
            return None
        raise CredentialHelperError(f"{where}: credential helper {program} failed (exit {code}) for {server_url}")
    try:
        doc = json.loads(output)
        username, secret = doc["Username"], doc["Secret"]
    except (ValueError, TypeError, KeyError, RecursionError):
        raise CredentialHelperError(
            f"{where}: credential helper {program} answered no Username/Secret document"
        ) from None
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        raise CredentialHelperError(f"{where}: credential helper {program} answered no Username/Secret document")
    log.info("%s: credentials for %s from credential helper %s", where, server_url, program)
    return username, secret


async def _ask(helper: asyncio.subprocess.Process, question: bytes) -> bytes:
    """Write ``question`` to the helper's stdin and read its stdout to the end, or to one byte past
    _MAX_OUTPUT: a helper flooding its output is not read without end."""
    assert helper.stdin is not None and helper.stdout is not None
    helper.stdin.write(question)
    with contextlib.suppress(ConnectionError):  # a helper that exits without reading its input
        await helper.stdin.drain()
    helper.stdin.close()
    output = bytearray()
    while len(output) <= _MAX_OUTPUT:
        chunk = await helper.stdout.read(_MAX_OUTPUT + 1 - len(output))
        if not chunk:
            break
        output += chunk
    return bytes(output)
