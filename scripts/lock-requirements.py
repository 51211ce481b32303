#!/usr/bin/env python3
"""Regenerate the hashed lock files the Dockerfile installs from (docs/releasing.md).

  requirements.lock         pyproject.toml's [project] dependencies, every version pinned, every file hashed
  requirements-build.lock   its [build-system] requires (setuptools), for the image's wheel build

Both are resolved universally (every platform, every Python from requires-python up), so one lock
serves the python:3.12-slim image on amd64 and arm64 and the 3.11 venv the tests install it into.

It runs uv (`pip install uv`, or the `release` extra): pip-tools' pip-compile resolves for the running
interpreter only, which would drop the markers another Python or platform needs. uv is needed only here,
not by the tests: they check the locks against pyproject.toml and install them offline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python scripts/lock-requirements.py"


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        sys.exit("lock-requirements: uv not found: pip install -e '.[release]' (or pip install uv)")
    return found


def _compile(uv: str, source: str, output: str, stdin: str | None = None) -> None:
    argv = [
        uv, "pip", "compile", source,
        "--universal", "--generate-hashes", "--quiet",
        "--custom-compile-command", COMMAND,
        "--output-file", output,
    ]  # fmt: skip
    subprocess.run(argv, cwd=ROOT, input=stdin, text=True, check=True)


def main() -> None:
    uv = _uv()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    _compile(uv, "pyproject.toml", "requirements.lock")
    build_requires = "\n".join(project["build-system"]["requires"]) + "\n"
    _compile(uv, "-", "requirements-build.lock", stdin=build_requires)


if __name__ == "__main__":
    main()
