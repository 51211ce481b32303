"""Real registries behind htpasswd basic auth and behind TLS with a private CA."""

from __future__ import annotations

import base64
import io
import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from .registry import BASIC_PASSWORD, Registry
from .servers import Pushgateway

PASSWORD = BASIC_PASSWORD


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[Registry]:
    work = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(work / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    reg = Registry(work, tls=(work / "cert.pem", work / "key.pem"))
    reg.start()
    yield reg
    reg.stop()


@pytest.mark.each_registry
def test_basic_auth_password_file(
    basic_registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    image = basic_registry.push_image(f"{ns}/app", "v1")
    basic_registry.push_image(f"{ns}/app", "v2")
    basic_registry.remove_revision_link(f"{ns}/app", image.digest)
    basic_registry.evict_revisions()
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    cfg = {
        "name": "basic",
        "url": basic_registry.url,
        "auth": {"username": "ci", "password_file": str(secret)},
        "repositories": {"include": [f"{ns}/*"]},
    }

    result = regprobe("run", "-c", probe_config(cfg), "--format", "json", "-vv")

    assert result.code == 1
    assert [(f["tags"], f["problem"]) for f in result.findings()] == [(["v1"], "missing")]
    assert PASSWORD not in result.out + result.err


@pytest.mark.each_registry
def test_basic_auth_env_and_refused(
    basic_registry: Registry, ns: str, regprobe: Any, probe_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    basic_registry.push_image(f"{ns}/app", "v1")
    monkeypatch.setenv("REG_PASSWORD", PASSWORD)
    monkeypatch.setenv("WRONG_PASSWORD", "nope-" + PASSWORD)
    good: dict[str, Any] = {
        "name": "good",
        "url": basic_registry.url,
        "auth": {"username": "ci", "password_env": "REG_PASSWORD"},
    }
    bad: dict[str, Any] = {
        "name": "bad",
        "url": basic_registry.url,
        "auth": {"username": "ci", "password_env": "WRONG_PASSWORD"},
    }
    anonymous: dict[str, Any] = {"name": "anon", "url": basic_registry.url}
    for cfg in (good, bad, anonymous):
        cfg["repositories"] = {"include": [f"{ns}/*"]}

    result = regprobe("run", "-c", probe_config(good, bad, anonymous), "--format", "json")

    assert result.code == 3  # refused credentials are an access problem, never findings
    ok, refused, anon = result.report["registries"]
    assert ok["complete"] and ok["images_checked"] == 1 and ok["findings"] == []
    assert refused["findings"] == [] and not refused["catalog_accessible"]
    assert "refused the credentials: 401" in refused["errors"][0]
    assert "requires credentials (none configured)" in anon["errors"][0]
    assert PASSWORD not in result.out + result.err


@pytest.mark.each_registry
def test_check_with_password_stdin_and_docker_config(
    basic_registry: Registry, ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, regprobe: Any
) -> None:
    basic_registry.push_image(f"{ns}/app", "v1")
    ref = f"{basic_registry.host}/{ns}/app:v1"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert regprobe("check", "--plain-http", "--username", "ci", "--password-stdin", ref).code == 0

    docker = tmp_path / "docker"
    docker.mkdir()
    token = base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {basic_registry.host: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    result = regprobe("check", "--plain-http", ref)
    assert result.code == 0, result.out + result.err


def test_tls_with_private_ca(
    tls_registry: Registry, ca: trustme.CA, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    tls_registry.push_image(f"{ns}/app", "v1")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    base = {"url": tls_registry.url, "repositories": {"include": [f"{ns}/*"]}, "timeout": 5}
    trusted = {**base, "name": "trusted", "tls": {"ca_file": str(bundle)}}
    untrusted = {**base, "name": "untrusted"}
    skipped = {**base, "name": "skip", "tls": {"insecure_skip_verify": True}}

    result = regprobe("run", "-c", probe_config(trusted, untrusted, skipped), "--format", "json")

    good, bad, skip = result.report["registries"]
    assert good["complete"] and good["images_checked"] == 1
    assert skip["complete"] and skip["images_checked"] == 1
    assert not bad["catalog_accessible"] and "CERTIFICATE_VERIFY_FAILED" in bad["errors"][0]
    assert result.code == 3


def test_run_and_check_share_one_trust_path(
    tls_registry: Registry,
    ca: trustme.CA,
    ns: str,
    regprobe: Any,
    probe_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The system store, extended the way OpenSSL reads SSL_CERT_FILE, for run and check alike; and
    check --ca-file like the config's tls.ca_file."""
    tls_registry.push_image(f"{ns}/app", "v1")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    ref = f"{tls_registry.host}/{ns}/app:v1"
    config = probe_config({"name": "tls", "url": tls_registry.url, "repositories": {"include": [f"{ns}/*"]}})

    untrusted = regprobe("check", "--timeout", "5", "--format", "json", ref)
    assert untrusted.code == 3 and "CERTIFICATE_VERIFY_FAILED" in untrusted.report["registries"][0]["errors"][0]
    assert regprobe("check", "--ca-file", str(bundle), ref).code == 0

    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert regprobe("check", ref).code == 0
    assert regprobe("run", "-c", config).code == 0

    # A directory of hashed certificates (as update-ca-certificates makes), the other way OpenSSL reads.
    monkeypatch.delenv("SSL_CERT_FILE")
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(bundle, certs / "private-ca.pem")
    subprocess.run(["openssl", "rehash", str(certs)], check=True)
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    assert regprobe("check", ref).code == 0
    assert regprobe("run", "-c", config).code == 0


def test_mutual_tls(
    tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA, ns: str, regprobe: Any, probe_config: Any
) -> None:
    work = tmp_path_factory.mktemp("mtls")
    server = ca.issue_cert("127.0.0.1")
    server.private_key_pem.write_to_path(str(work / "key.pem"))
    server.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    client = ca.issue_cert("regprobe-client")
    client.cert_chain_pems[0].write_to_path(str(work / "client.pem"))
    client.private_key_pem.write_to_path(str(work / "client-key.pem"))
    reg = Registry(work, tls=(work / "cert.pem", work / "key.pem"))
    reg.config["http"]["tls"]["clientcas"] = [str(work / "ca.pem")]
    harness = ssl.create_default_context(cafile=str(work / "ca.pem"))
    harness.load_cert_chain(str(work / "client.pem"), str(work / "client-key.pem"))
    reg.http = httpx.Client(verify=harness)
    reg.start()
    try:
        reg.push_image(f"{ns}/app", "v1")
        tls = {
            "ca_file": str(work / "ca.pem"),
            "cert_file": str(work / "client.pem"),
            "key_file": str(work / "client-key.pem"),
        }
        base = {"url": reg.url, "repositories": {"include": [f"{ns}/*"]}, "timeout": 5}
        with_cert = {**base, "name": "with-cert", "tls": tls}
        without = {**base, "name": "without-cert", "tls": {"ca_file": str(work / "ca.pem")}}
        result = regprobe("run", "-c", probe_config(with_cert, without), "--format", "json")
        good, bad = result.report["registries"]
        assert good["complete"] and good["images_checked"] == 1
        assert not bad["catalog_accessible"] and bad["findings"] == []
        assert result.code == 3

        ref = f"{reg.host}/{ns}/app:v1"
        cert = ["--cert-file", str(work / "client.pem"), "--key-file", str(work / "client-key.pem")]
        assert regprobe("check", "--ca-file", str(work / "ca.pem"), *cert, ref).code == 0
        assert regprobe("check", "--ca-file", str(work / "ca.pem"), ref).code == 3
    finally:
        reg.stop()


def test_credential_helper_for_check_and_run(
    basic_registry: Registry,
    ns: str,
    regprobe: Any,
    probe_config: Any,
    docker_config: Any,
    credential_helper: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    basic_registry.push_image(f"{ns}/app", "v1")
    helper = credential_helper("vault").keeps("ci", PASSWORD)
    docker_config({"credHelpers": {basic_registry.host: "vault"}})
    ref = f"{basic_registry.host}/{ns}/app:v1"

    assert regprobe("check", "--plain-http", ref).code == 0
    cfg = {"name": "basic", "url": basic_registry.url, "repositories": {"include": [f"{ns}/*"]}}
    result = regprobe("run", "-c", probe_config(cfg), "-vv")
    assert result.code == 0, result.out + result.err
    assert [call["stdin"] for call in helper.received()] == [basic_registry.host] * 2
    assert PASSWORD not in result.out + result.err

    # A helper that is not installed: like a secret not mounted, that registry is not probed (exit 3),
    # and the error names the helper and where config.json asks for it.
    path = docker_config({"credHelpers": {basic_registry.host: "absent"}})
    other = {**cfg, "name": "other", "auth": {"username": "ci", "password_env": "PW"}}
    monkeypatch.setenv("PW", PASSWORD)
    for argv in (["check", "--plain-http", ref], ["run", "-c", probe_config(cfg, other)]):
        missing = regprobe(*argv, "--format", "json")
        assert missing.code == 3, missing.err
        entry = missing.report["registries"][0]
        assert entry["errors"] == [
            f"{path}: credHelpers['{basic_registry.host}']: credential helper docker-credential-absent "
            "not found on PATH"
        ]
        assert entry["requests"]["ok"] == 0 and entry["findings"] == []
    assert missing.report["registries"][1]["complete"]  # the registry with its own credentials is probed


def _tls_files(ca: trustme.CA, work: Path) -> dict[str, str]:
    """A CA bundle, a client certificate and its key, another key, an empty file and a text file."""
    client, other = ca.issue_cert("regprobe-client"), ca.issue_cert("someone-else")
    files = {name: work / f"{name}.pem" for name in ("ca", "client", "client_key", "other_key", "empty", "notes")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["client"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    other.private_key_pem.write_to_path(str(files["other_key"]))
    files["empty"].write_text("")
    files["notes"].write_text("ask the platform team for the CA\n")
    return {name: str(path) for name, path in files.items()}


@pytest.mark.parametrize(
    ("tls", "error"),
    [
        ({"ca_file": "empty"}, "registries[1].tls.ca_file: {empty} holds no PEM certificate"),
        ({"ca_file": "notes"}, "registries[1].tls.ca_file: {notes} holds no PEM certificate"),
        (
            {"cert_file": "notes", "key_file": "client_key"},
            "registries[1].tls.cert_file: {notes} holds no PEM certificate",
        ),
        (
            {"cert_file": "client", "key_file": "other_key"},
            "registries[1].tls.key_file: {other_key} is not the key of cert_file",
        ),
        (
            {"cert_file": "client", "key_file": "client"},
            "registries[1].tls.key_file: {client} holds no PEM private key",
        ),
        ({"cert_file": "client"}, "registries[1].tls.cert_file: {client} holds no private key; give key_file"),
        ({"key_file": "client_key"}, "registries[1].tls.key_file: given without cert_file"),
    ],
    ids=[
        "ca-empty",
        "ca-not-pem",
        "cert-not-pem",
        "key-mismatch",
        "key-not-pem",
        "cert-without-key",
        "key-without-cert",
    ],
)
def test_unusable_tls_files_are_config_errors(
    tls_registry: Registry,
    ca: trustme.CA,
    ns: str,
    regprobe: Any,
    probe_config: Any,
    tmp_path: Path,
    tls: dict[str, str],
    error: str,
) -> None:
    # Once a traceback and exit 1 ("findings"), with the healthy registry beside it never probed.
    files = _tls_files(ca, tmp_path)
    healthy = {"name": "healthy", "url": tls_registry.url, "tls": {"ca_file": files["ca"]}}
    broken = {"name": "broken", "url": tls_registry.url, "tls": {key: files[name] for key, name in tls.items()}}
    path = probe_config(healthy, broken)

    result = regprobe("run", "-c", path)

    assert result.code == 2 and result.out == ""
    assert result.err == f"regprobe: {path}: {error.format(**files)}\n"


def test_client_certificate_file_holding_its_key_is_fine(
    tls_registry: Registry, ca: trustme.CA, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    files = _tls_files(ca, tmp_path)
    combined = tmp_path / "combined.pem"
    combined.write_text(Path(files["client"]).read_text() + Path(files["client_key"]).read_text())
    tls_registry.push_image(f"{ns}/app", "v1")
    cfg = {
        "name": "combined",
        "url": tls_registry.url,
        "tls": {"ca_file": files["ca"], "cert_file": str(combined)},
        "repositories": {"include": [f"{ns}/*"]},
    }
    assert regprobe("run", "-c", probe_config(cfg)).code == 0


def test_missing_secret_file_fails_only_its_registry(
    basic_registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path, pushgateway: Pushgateway
) -> None:
    # A Secret not mounted (yet) is a runtime condition of one registry, not a bad config for all.
    basic_registry.push_image(f"{ns}/app", "v1")
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    missing = tmp_path / "not-mounted" / "password"
    selection = {"include": [f"{ns}/*"]}
    good = {"name": f"good-{ns}", "url": basic_registry.url, "repositories": selection}
    bad = {"name": f"bad-{ns}", "url": basic_registry.url, "repositories": selection}
    good["auth"] = {"username": "ci", "password_file": str(secret)}
    bad["auth"] = {"username": "ci", "password_file": str(missing)}
    path = probe_config(bad, good, pushgateway={"url": pushgateway.url})

    result = regprobe("run", "-c", path, "--format", "json")
    text = regprobe("run", "-c", path, "--no-push")

    assert result.code == 3
    not_probed, probed = result.report["registries"]
    error = f"auth.password_file: cannot read {missing}: No such file or directory"
    assert (not_probed["complete"], not_probed["errors"], not_probed["requests"]["ok"]) == (False, [error], 0)
    assert (probed["complete"], probed["images_checked"]) == (True, 1)
    assert f"! {error}" in text.out
    assert pushgateway.value("regprobe_run_complete", registry=f"bad-{ns}") == 0
    last_run = pushgateway.value("regprobe_last_run_timestamp_seconds", registry=f"bad-{ns}")
    assert last_run is not None and last_run > 1.7e9  # this run's time, not the epoch
    assert pushgateway.value("regprobe_run_complete", registry=f"good-{ns}") == 1


def test_empty_password_env_is_a_config_error(
    basic_registry: Registry, regprobe: Any, probe_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sent as is, it would end as a 401 (exit 3, a warning in CI): an unset CI secret must fail loudly.
    monkeypatch.setenv("REG_PASSWORD", "")
    cfg = {"name": "basic", "url": basic_registry.url, "auth": {"username": "ci", "password_env": "REG_PASSWORD"}}
    path = probe_config(cfg)
    result = regprobe("run", "-c", path)
    assert result.code == 2 and result.out == ""
    assert (
        result.err == f"regprobe: {path}: registries[0].auth.password_env: environment variable REG_PASSWORD is empty\n"
    )
