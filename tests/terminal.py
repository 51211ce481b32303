"""Runs ``python -m regprobe`` on a real pseudo-terminal, as a person at a shell does."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios


def run_on_terminal(
    argv: list[str], *, env: dict[str, str] | None = None, stdout_too: bool = False
) -> tuple[int, str, str]:
    """(exit code, stdout, what the terminal received). stderr is the terminal; stdout too with
    ``stdout_too`` (then the returned stdout is empty), else a pipe."""
    environment = {**os.environ, **(env or {})}
    parent, child = pty.openpty()
    # 160 columns: tqdm sizes its line to the terminal.
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "regprobe", *argv],
        stdout=child if stdout_too else subprocess.PIPE,
        stderr=child,
        stdin=subprocess.DEVNULL,
        env=environment,
    )
    os.close(child)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(parent, 65536)
        except OSError:  # EIO: every process holding the terminal has closed it
            break
        if not data:
            break
        chunks.append(data)
    os.close(parent)
    out = proc.stdout.read().decode() if proc.stdout is not None else ""
    code = proc.wait(timeout=120)
    return code, out, b"".join(chunks).decode(errors="replace")
