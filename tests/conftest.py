from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from regprobe.cli import main

from .peers import peer
from .personalities import FakeRegistry, Personality
from .registry import BASIC_PASSWORD, BASIC_USER, FLAVOUR_NAMES, FLAVOURS, Registry
from .servers import Pushgateway

# Hypothesis' default 200 ms deadline per example fails properties, not code, on a loaded 2-core machine
# running registries beside the tests; the pytest-timeout still bounds every test.
settings.register_profile("regprobe", deadline=None)
settings.load_profile("regprobe")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "each_registry: run the test once on each distribution the suite knows (2.8.2 and v3): the"
        " registry fixtures it uses start that flavour",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("each_registry"):
        metafunc.parametrize("flavour", FLAVOURS, indirect=True, ids=[FLAVOUR_NAMES[f] for f in FLAVOURS])


@pytest.fixture(scope="session")
def flavour(request: pytest.FixtureRequest) -> str:
    """Which distribution the registry fixtures run: 2.8.2, unless the test is marked ``each_registry``.
    v3 comes from the pinned peers: without it, its half of the tests is skipped (failed in CI)."""
    chosen: str = getattr(request, "param", "2")
    if chosen == "3":
        peer("registry")
    return chosen


class Registries:
    """The session's shared registries, one per (flavour, variant), started when first asked for: a test
    on 2.8.2 gets the same process whether or not it is also parametrised over v3."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.started: dict[tuple[str, str], Registry] = {}

    def get(self, flavour: str, variant: str, start: Callable[[Path], Registry]) -> Registry:
        key = (flavour, variant)
        if key not in self.started:
            self.started[key] = start(self.tmp.mktemp(f"{variant}-{FLAVOUR_NAMES[flavour]}"))
        return self.started[key]

    def stop(self) -> None:
        for reg in self.started.values():
            reg.stop()


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    pool = Registries(tmp_path_factory)
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def registry(registries: Registries, flavour: str) -> Registry:
    """The registry:2 default: in-memory blob descriptor cache."""
    return registries.get(flavour, "registry", lambda work: Registry(work, flavour=flavour).start())


@pytest.fixture(scope="session")
def registry_nocache(registries: Registries, flavour: str) -> Registry:
    return registries.get(flavour, "nocache", lambda work: Registry(work, cache=False, flavour=flavour).start())


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    """A real pushgateway; tests keep apart by registry names of their own (``ns``)."""
    gateway = Pushgateway(tmp_path_factory.mktemp("pushgateway"))
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session")
def basic_registry(registries: Registries, flavour: str) -> Registry:
    """Behind htpasswd basic auth (BASIC_USER, BASIC_PASSWORD)."""
    return registries.get(
        flavour, "basic", lambda work: Registry.with_basic_auth(work, BASIC_USER, BASIC_PASSWORD, flavour=flavour)
    )


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(personality)``: a fake registry of that personality (tests/personalities.py), stopped after."""
    started: list[FakeRegistry] = []

    def start(personality: Personality) -> FakeRegistry:
        fake = FakeRegistry(personality).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def ns() -> str:
    """A repository namespace of this test's own: tests share one registry and must not see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.out)  # type: ignore[no-any-return]

    def findings(self, registry: int = 0) -> list[dict[str, Any]]:
        return self.report["registries"][registry]["findings"]  # type: ignore[no-any-return]


@pytest.fixture
def regprobe(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def probe_config(tmp_path: Path) -> Any:
    """Write a config for the given registries and return its path."""

    def write(*registries: dict[str, Any], **top: Any) -> str:
        path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump({"registries": list(registries), **top}))
        return str(path)

    return write


class CredentialHelper:
    """A real ``docker-credential-NAME`` program on PATH, written per test; it records each call."""

    def __init__(self, bin_dir: Path, name: str) -> None:
        self.path = bin_dir / f"docker-credential-{name}"
        self.calls = bin_dir / f"{name}.calls"

    def answers(self, stdout: str, exit_code: int = 0, sleep: float = 0) -> CredentialHelper:
        self.path.write_text(
            f"#!{sys.executable}\n"
            "import json, os, sys, time\n"
            "call = {'argv': sys.argv[1:], 'stdin': sys.stdin.read(), 'pid': os.getpid()}\n"
            f"with open({str(self.calls)!r}, 'a') as log:\n"
            "    log.write(json.dumps(call) + '\\n')\n"
            f"time.sleep({sleep})\n"
            f"sys.stdout.write({stdout!r})\n"
            f"sys.exit({exit_code})\n"
        )
        self.path.chmod(0o755)
        return self

    def keeps(self, username: str, secret: str) -> CredentialHelper:
        return self.answers(json.dumps({"ServerURL": "", "Username": username, "Secret": secret}))

    def received(self) -> list[dict[str, Any]]:
        """Each call: its ``argv`` and ``stdin``."""
        return [{"argv": call["argv"], "stdin": call["stdin"]} for call in self._calls()]

    def running(self) -> list[int]:
        """The helper processes called so far that are still running (not exited, nor a zombie)."""
        return [call["pid"] for call in self._calls() if _running(call["pid"])]

    def _calls(self) -> list[dict[str, Any]]:
        if not self.calls.exists():
            return []
        return [json.loads(line) for line in self.calls.read_text().splitlines()]


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.fixture
def credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``credential_helper(name)``: a helper program on PATH (see :class:`CredentialHelper`)."""
    bin_dir = tmp_path / "helpers"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return lambda name: CredentialHelper(bin_dir, name)


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``docker_config(doc)``: writes config.json into a fresh $DOCKER_CONFIG and returns its path."""

    def write(doc: dict[str, Any]) -> Path:
        directory = tmp_path / "docker"
        directory.mkdir(exist_ok=True)
        path = directory / "config.json"
        path.write_text(json.dumps(doc))
        monkeypatch.setenv("DOCKER_CONFIG", str(directory))
        return path

    return write


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A hosts file for this process: ``hosts["registry.example"] = "127.0.0.1"`` makes the system's
    resolver answer that name with that address (asyncio's loop resolves through socket.getaddrinfo);
    every other name resolves as usual."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real(table.get(host, host) if isinstance(host, str) else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table
