"""Each invalid-*.yml under testdata/config pins a bad configuration to its exact error (the first line
says which), in the blackbox_exporter manner."""

from __future__ import annotations

from pathlib import Path

import pytest

from regprobe import config
from regprobe.errors import ConfigError

TESTDATA = Path(__file__).parent / "testdata" / "config"
INVALID = sorted(TESTDATA.glob("invalid-*.yml"))


def expected_error(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# error: "), path
    return first.removeprefix("# error: ")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_names_file_and_key(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected_error(path) in message
    assert "hunter2" not in message  # values are never echoed: a misplaced password must not reach a log


def test_valid_full_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGPROBE_TEST_PASSWORD", "s3cret")
    cfg = config.load(TESTDATA / "valid-full.yml")
    private, hub, cache = cfg.registries
    assert private.auth is not None and private.auth.password is not None
    assert private.auth.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)
    assert (cfg.concurrency_for(private), cfg.timeout_for(private)) == (8, 10.0)
    assert (cfg.concurrency_for(hub), cfg.timeout_for(hub)) == (16, 30.0)
    assert hub.repositories.list_ == ["library/alpine"] and hub.index_children is False
    assert (cache.pull_through, cache.storage_root, hub.pull_through, hub.storage_root) == (
        True,
        "/var/lib/registry",
        False,
        None,
    )
    assert cfg.pushgateway is not None and cfg.pushgateway.job == "registry-integrity-probe"
    assert (cfg.state_dir, cfg.coverage.window_seconds, cfg.budget.requests) == ("/var/lib/regprobe", 86400.0, 20000)
    assert cfg.scrub.bytes == 10 << 30


def test_defaults() -> None:
    cfg = config.parse({"registries": [{"name": "r", "url": "http://127.0.0.1:5000/"}]}, "inline")
    registry = cfg.registries[0]
    assert registry.url == "http://127.0.0.1:5000"
    assert (registry.blob_check, registry.index_children, registry.repositories.include) == ("range", True, ["*"])
    assert (cfg.concurrency, cfg.timeout, cfg.deadline, cfg.max_broken_series) == (16, 30.0, 720.0, 50)
    assert cfg.deadline < 15 * 60  # a run must end before the next CronJob run starts
    assert (cfg.serve.listen, cfg.serve.interval_seconds) == (":9839", 900.0)  # the alerts assume 15 minutes
    # Continuous verification: no ledger, a day's window, only the deadline bounds a run, no scrub.
    assert (cfg.state_dir, cfg.coverage.window_seconds, cfg.budget.requests, cfg.scrub.bytes) == (None, 86400.0, 0, 0)


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400.0), ("7d", 604800.0), ("90m", 5400.0), ("1d12h", 129600.0), ("3600", 3600.0)]
)
def test_coverage_window_forms(text: str, seconds: float) -> None:
    cfg = config.parse(
        {"registries": [{"name": "r", "url": "http://127.0.0.1:5000"}], "coverage": {"window": text}}, "x"
    )
    assert cfg.coverage.window_seconds == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1 << 20), ("500MB", 500 * 10**6), ("10GiB", 10 << 30), ("2 TB", 2 * 10**12), ("1k", 1000)],
)
def test_scrub_sizes(text: str, size: int) -> None:
    data = {"registries": [{"name": "r", "url": "http://127.0.0.1:5000"}], "state_dir": "/s"}
    assert config.parse({**data, "scrub": {"bytes_per_run": text}}, "x").scrub.bytes == size


@pytest.mark.parametrize(
    ("text", "seconds"), [("900", 900.0), ("90s", 90.0), ("15m", 900.0), ("1h30m", 5400.0), ("2h", 7200.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert config.parse_duration(text) == seconds
    cfg = config.parse({"registries": [{"name": "r", "url": "http://r"}], "serve": {"interval": text}}, "inline")
    assert cfg.serve.interval_seconds == seconds


@pytest.mark.parametrize(
    ("text", "address"), [(":9839", ("", 9839)), ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:9839", ("::1", 9839))]
)
def test_listen_addresses(text: str, address: tuple[str, int]) -> None:
    assert config.parse_listen(text) == address


def test_password_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    cfg = config.parse(
        {"registries": [{"name": "r", "url": "http://x", "auth": {"username": "u", "password_file": str(secret)}}]},
        "inline",
    )
    auth = cfg.registries[0].auth
    assert auth is not None and auth.password is not None and auth.password.get_secret_value() == "from-file"


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        config.load(tmp_path / "absent.yaml")
