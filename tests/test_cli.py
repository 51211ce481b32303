"""`regprobe run` and `regprobe check` end to end: exit codes, isolation between registries, output."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from regprobe.cli import _parse_ref, build_parser, main

from .registry import Registry, free_port


def test_unreachable_registry_does_not_stop_the_others(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    dead = {"name": "dead", "url": f"http://127.0.0.1:{free_port()}", "timeout": 2}
    alive = {"name": "alive", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}

    result = regprobe("run", "-c", probe_config(dead, alive), "--format", "json")

    assert result.code == 3
    down, up = result.report["registries"]
    assert (down["name"], down["catalog_accessible"], down["complete"], down["findings"]) == ("dead", False, False, [])
    assert down["errors"] and "catalog" in down["errors"][0]
    assert (up["name"], up["complete"], up["images_checked"]) == ("alive", True, 1)


def test_findings_win_over_incomplete(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    image = registry.push_image(f"{ns}/app", "v1")
    registry.remove_revision_link(f"{ns}/app", image.digest)
    dead = {"name": "dead", "url": f"http://127.0.0.1:{free_port()}", "timeout": 2}
    broken = {"name": "broken", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}

    assert regprobe("run", "-c", probe_config(dead, broken), "--format", "json").code == 1


def test_bad_config_exits_2_and_probes_nothing(tmp_path: Path, regprobe: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("registries:\n  - name: x\n    url: http://127.0.0.1:1\n    blob_chek: head\n")
    result = regprobe("run", "-c", str(path))
    assert result.code == 2
    assert result.out == ""
    assert f"{path}: registries[0].blob_chek: unknown key" in result.err


def test_config_from_environment(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    monkeypatch.setenv(
        "REGPROBE_CONFIG", probe_config({"name": "env", "url": registry.url, "repositories": {"list": [f"{ns}/app"]}})
    )
    result = regprobe("run", "--format", "json")
    assert result.code == 0 and result.report["registries"][0]["name"] == "env"


def test_usage_errors_exit_2(regprobe: Any) -> None:
    with pytest.raises(SystemExit) as caught:
        regprobe("run", "--format", "yaml")
    assert caught.value.code == 2


def test_check_usage_errors_show_checks_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["Bad/Name:tag"], "reference 'Bad/Name:tag': repository name 'Bad/Name'"),
        (["--all-tags", "127.0.0.1:5000/app:v1"], "reference '127.0.0.1:5000/app:v1': --all-tags walks every tag"),
        (["--key-file", "k.pem", "127.0.0.1:5000/app"], "--key-file goes with --cert-file"),
        (["--ca-file", "/nonexistent/ca.pem", "127.0.0.1:5000/app"], "--ca-file: cannot load: No such file"),
    ):
        with pytest.raises(SystemExit) as caught:
            main(["check", *argv])
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("usage: regprobe check "), err
        assert f"regprobe check: error: {message}" in err
        assert err.count("reference '") <= 1  # named once, not once per layer the error passed through


def test_text_report_is_readable(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    index = registry.push_index(f"{ns}/api", "v1")
    registry.remove_revision_link(f"{ns}/api", index.children[0].digest)
    result = regprobe(
        "run", "-c", probe_config({"name": "local", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}})
    )
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0] == f"local {registry.url}  BROKEN"
    assert lines[1].startswith("  1 repository, 1 tag walked, 1 broken object in 1 tag, ")
    assert lines[2] == f"  {ns}/api  tags: v1"
    child = index.children[0].digest[:19]
    assert lines[3].split() == ["manifest", child, "missing", "linux/amd64", "under", index.digest[:19]]
    assert "\033[" not in result.out  # no colour when stdout is not a terminal


def test_json_report_matches_the_contract(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    image = registry.push_image(f"{ns}/app", "v1")
    registry.remove_revision_link(f"{ns}/app", image.digest)
    result = regprobe(
        "run",
        "-c",
        probe_config({"name": "local", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}),
        "--format",
        "json",
    )
    entry = result.report["registries"][0]
    assert {"name", "url", "catalog_accessible", "complete", "repositories", "images_checked", "findings"} <= set(entry)
    assert set(entry["findings"][0]) == {
        "repository",
        "digest",
        "kind",
        "problem",
        "status",
        "tags",
        "parent",
        "detail",
    }


def test_check_ci_step(registry: Registry, ns: str, regprobe: Any) -> None:
    good = registry.push_index(f"{ns}/app", "v1")
    bad = registry.push_image(f"{ns}/app", "v2")
    registry.remove_revision_link(f"{ns}/app", bad.digest)
    host = registry.host

    ok = regprobe("check", "--plain-http", "--format", "json", f"{host}/{ns}/app:v1", f"{host}/{ns}/app@{good.digest}")
    assert ok.code == 0, ok.out
    entry = ok.report["registries"][0]
    assert (entry["name"], entry["images_checked"], entry["findings"]) == (host, 2, [])

    broken = regprobe("check", "--plain-http", "--format", "json", f"{host}/{ns}/app:v2")
    assert broken.code == 1
    assert [(f["kind"], f["problem"], f["tags"]) for f in broken.findings()] == [("manifest", "missing", ["v2"])]


def test_check_all_tags_of_a_repository(registry: Registry, ns: str, regprobe: Any) -> None:
    registry.push_image(f"{ns}/app", "v1")
    registry.push_index(f"{ns}/app", "v2")
    bad = registry.push_image(f"{ns}/app", "v3")
    registry.push_image(f"{ns}/other", "v1")
    registry.remove_revision_link(f"{ns}/app", bad.digest)

    result = regprobe("check", "--plain-http", "--all-tags", "--format", "json", f"{registry.host}/{ns}/app")

    assert result.code == 1
    entry = result.report["registries"][0]
    assert (entry["repositories"], entry["images_checked"], entry["complete"]) == (1, 3, True)
    assert [(f["repository"], f["tags"]) for f in result.findings()] == [(f"{ns}/app", ["v3"])]


def test_check_text_names_the_registry_once(registry: Registry, ns: str, regprobe: Any) -> None:
    registry.push_image(f"{ns}/app", "v1")
    result = regprobe("check", "--plain-http", f"{registry.host}/{ns}/app:v1")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == f"{registry.url}  OK"
    assert lines[1].startswith("  1 repository, 1 tag walked, 0 broken objects in 0 tags, ")


def test_check_never_speaks_of_the_catalog(regprobe: Any) -> None:
    """check reads no catalog: an unreachable registry is said to be unreachable, not its catalog."""
    host = f"127.0.0.1:{free_port()}"
    result = regprobe("check", "--plain-http", "--timeout", "2", f"{host}/app:v1")
    assert result.code == 3
    assert "registry unreachable" in result.out
    assert "catalog" not in result.out


def test_check_over_https_without_tls_is_unreachable(registry: Registry, ns: str, regprobe: Any) -> None:
    registry.push_image(f"{ns}/app", "v1")
    result = regprobe("check", "--timeout", "5", "--format", "json", f"{registry.host}/{ns}/app:v1")
    # Talking TLS to a plain-HTTP port: the registry can't be reached - an incomplete probe, not a finding.
    assert result.code == 3
    entry = result.report["registries"][0]
    assert entry["findings"] == [] and entry["complete"] is False
    assert "registry unreachable" in entry["errors"][0]
    assert entry["errors"][0].endswith("the server speaks plain HTTP, not TLS: add --plain-http to talk http:// to it")


def test_https_url_to_a_plain_http_registry_says_to_use_http(
    registry: Registry, regprobe: Any, probe_config: Any
) -> None:
    result = regprobe("run", "-c", probe_config({"name": "tls", "url": f"https://{registry.host}", "timeout": 5}))
    assert result.code == 3
    assert "the server speaks plain HTTP, not TLS: give the registry an http:// url in the config" in result.out


def test_python_dash_m_entry_point(registry: Registry, ns: str) -> None:
    registry.push_image(f"{ns}/app", "v1")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "regprobe", "check", "--plain-http", "--format", "json", f"{registry.host}/{ns}/app:v1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["registries"][0]["images_checked"] == 1


def test_deadline_makes_the_run_incomplete(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    for i in range(3):
        registry.push_image(f"{ns}/app{i}", "v1")
    cfg = probe_config({"name": "local", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}, deadline=0.001)
    result = regprobe("run", "-c", cfg, "--format", "json")
    entry = result.report["registries"][0]
    assert result.code == 3
    assert entry["complete"] is False and "deadline" in entry["errors"][0]


def test_check_says_how_a_bare_host_port_is_read(caplog: pytest.LogCaptureFixture) -> None:
    """Docker's grammar makes `127.0.0.1:5000` the Hub image library/127.0.0.1:5000; say so, and what
    was probably meant. (Parsed only: the Hub is not contacted from the tests.)"""
    parser = build_parser()
    ref = _parse_ref("127.0.0.1:5000", False, parser)
    assert str(ref) == "docker.io/library/127.0.0.1:5000"
    assert "did you mean 127.0.0.1:5000/REPO?" in caplog.text
    caplog.clear()
    _parse_ref("127.0.0.1:5000/app", False, parser)
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("flag", "value", "error"),
    [
        ("--timeout", "nan", "argument --timeout: must be above 0 and at most 86400 seconds"),
        ("--timeout", "inf", "argument --timeout: must be above 0 and at most 86400 seconds"),
        ("--timeout", "0", "argument --timeout: must be above 0 and at most 86400 seconds"),
        ("--timeout", "soon", "argument --timeout: must be a number of seconds"),
        ("--concurrency", "1000000", "argument --concurrency: must be from 1 to 1024"),
        ("--concurrency", "0", "argument --concurrency: must be from 1 to 1024"),
        ("--concurrency", "1.5", "argument --concurrency: must be an integer"),
    ],
)
def test_numeric_flags_are_bounded(
    regprobe: Any, capsys: pytest.CaptureFixture[str], flag: str, value: str, error: str
) -> None:
    # The same bounds as the config's: a flag must not start 2M tasks or wait forever.
    with pytest.raises(SystemExit) as caught:
        regprobe("check", flag, value, "127.0.0.1:1/app:v1")
    assert caught.value.code == 2
    assert error in capsys.readouterr().err


def test_password_stdin_with_nothing_on_stdin_is_a_usage_error(
    regprobe: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unset CI secret piped in as nothing would end as a 401, exit 3 - which CI treats as a warning.
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    with pytest.raises(SystemExit) as caught:
        regprobe("check", "--username", "ci", "--password-stdin", "127.0.0.1:1/app:v1")
    assert caught.value.code == 2
    assert "--password-stdin: standard input held no password" in capsys.readouterr().err
