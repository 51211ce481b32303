"""What a release relies on, checked on every commit (docs/releasing.md): one version everywhere it is
written down, a changelog that knows it, the licence, and lock files that hold what pyproject.toml asks
for. The build itself (the wheel from a clean checkout, its licence, the lock installed, `--version`
against the image label) is carried out in tests/test_dockerfile.py.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PROJECT["project"]["version"]
IMAGE = "ghcr.io/regprobe/regprobe"
#: How docs/releasing.md writes any version.
PLACEHOLDER = "X.Y.Z"


def _tracked_text() -> dict[str, str]:
    """Every file git tracks that reads as text, by path."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    out = {}
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        try:
            out[name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return out


def test_version_is_a_release_version() -> None:
    assert str(Version(VERSION)) == VERSION, "pyproject.toml: write the version in its normalised form"


def test_every_image_reference_names_this_version() -> None:
    """Docs, manifests and the Dockerfile name the image by the version being released: a user copying any
    of them runs what this tree builds, and a release bumps them all (docs/releasing.md)."""
    wrong = []
    for name, text in _tracked_text().items():
        for match in re.finditer(re.escape(IMAGE) + r":([\w.-]+)", text):
            if match[1] not in (VERSION, PLACEHOLDER):
                line = text.count("\n", 0, match.start()) + 1
                wrong.append(f"{name}:{line}: {match[0]}")
    assert not wrong, f"image references not at {VERSION} (pyproject.toml):\n" + "\n".join(wrong)


def test_kustomize_image_tags_name_this_version() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text(encoding="utf-8"))
    assert [i["newTag"] for i in kustomization["images"] if i["name"] == IMAGE] == [VERSION]
    for name, text in _tracked_text().items():
        for tag in re.findall(r"^\s*newTag:\s*(\S+)", text, flags=re.MULTILINE):
            assert tag in (VERSION, PLACEHOLDER), f"{name}: newTag {tag}, the release is {VERSION}"


def test_dockerfile_label_default_is_this_version() -> None:
    args = re.findall(r"^ARG VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert args == [VERSION]


def test_changelog_knows_this_version() -> None:
    """Keep a Changelog: an Unreleased section on top; the newest released version is this one (just
    released) or older (then this one is being prepared, and Unreleased says what it brings)."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\](.*)$", text, flags=re.MULTILINE)
    assert headings and headings[0][0] == "Unreleased", "the first section is [Unreleased]"
    released = [(Version(v), rest) for v, rest in headings[1:]]
    for version, rest in released:
        assert re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest), f"## [{version}]{rest}: a release carries its date"
    assert [v for v, _ in released] == sorted((v for v, _ in released), reverse=True), "newest first"
    if released:
        assert released[0][0] <= Version(VERSION), f"CHANGELOG has {released[0][0]}, pyproject.toml {VERSION}"
    if not released or released[0][0] < Version(VERSION):
        unreleased = text.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
        assert re.search(r"^- ", unreleased, flags=re.MULTILINE), f"{VERSION} is unreleased: say what it brings"
    for version, _ in headings:
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, flags=re.MULTILINE), f"no link for [{version}]"


def test_licence_is_the_apache_2_text() -> None:
    assert PROJECT["project"]["license"] == "Apache-2.0"
    assert PROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    assert "LICENSE" in _tracked_text(), "LICENSE must be committed: a clone (and the image build) needs it"


def _lock(name: str) -> dict[str, tuple[str, Requirement]]:
    """name -> (version, line) of every requirement in a lock, whatever its markers; each one hashed."""
    text = re.sub(r"\\\n", " ", (ROOT / name).read_text(encoding="utf-8"))
    out: dict[str, tuple[str, Requirement]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()  # "# via ...": uv's notes
        if not line:
            continue
        hashes = re.findall(r"--hash=sha256:[0-9a-f]{64}", line)
        requirement = Requirement(re.sub(r"\s--hash=\S+", "", line).strip())
        assert hashes, f"{name}: {requirement.name} has no hash"
        (pin,) = requirement.specifier
        assert pin.operator == "==", f"{name}: {requirement} is not pinned"
        out[canonicalize_name(requirement.name)] = (pin.version, requirement)
    return out


@pytest.mark.parametrize(
    ("lock", "wanted"),
    [
        ("requirements.lock", PROJECT["project"]["dependencies"]),
        ("requirements-build.lock", PROJECT["build-system"]["requires"]),
    ],
)
def test_lock_holds_what_pyproject_asks_for(lock: str, wanted: list[str]) -> None:
    """Each requirement of pyproject.toml is pinned in the lock at a version it allows; a lock that falls
    behind pyproject.toml fails here (regenerate: python scripts/lock-requirements.py)."""
    pinned = _lock(lock)
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{lock} lacks {requirement.name}: run python scripts/lock-requirements.py"
        version, line = pinned[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, pyproject.toml asks {requirement.specifier}: "
            "run python scripts/lock-requirements.py"
        )
        if requirement.marker is not None:
            assert line.marker is not None, f"{lock}: {name} is pinned for every platform, pyproject.toml says when"
