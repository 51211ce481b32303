"""`regprobe run` publishes each registry as soon as its walk ends, says per registry what happened at the
default log level, bounds each push by the configured timeout, and addresses every group - names with a
`/` included - the way the pushgateway (and the runbook's DELETE recipe) does."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .hostile import port_that_accepts_and_never_answers
from .registry import Registry
from .servers import Pushgateway
from .util import wait_for

ROOT = Path(__file__).resolve().parents[1]
JOB = "registry-integrity-probe"


def start_run(config: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "regprobe", "run", "-c", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_each_registry_is_pushed_when_its_walk_ends(
    registry: Registry, ns: str, probe_config: Any, pushgateway: Pushgateway
) -> None:
    """Issue 21 item 4: with one healthy registry and one that never answers, the healthy one's group is
    on the pushgateway while the other still walks; SIGTERM then reports and pushes the other."""
    registry.push_image(f"{ns}/app", "v1")
    healthy, mute = f"healthy-{ns}", f"mute-{ns}"
    sock, port = port_that_accepts_and_never_answers()
    proc = None
    try:
        config = probe_config(
            {"name": mute, "url": f"http://127.0.0.1:{port}", "timeout": 120},
            {"name": healthy, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}},
            pushgateway={"url": pushgateway.url},
        )
        proc = start_run(config)
        wait_for(lambda: pushgateway.value("regprobe_run_complete", registry=healthy) == 1, "the healthy group")
        assert proc.poll() is None, "the run is still walking the registry that never answers"
        assert pushgateway.value("regprobe_run_complete", registry=mute) is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        sock.close()
        if proc is not None:
            proc.kill()
    assert proc.returncode == 3
    assert "SIGTERM: stopping; the run is reported and pushed as incomplete" in err
    # One line per registry at the default level: what `kubectl logs` shows without -v.
    assert re.search(rf"regprobe: INFO: registry {healthy}: OK: 1 tag walked in \d+\.\ds\n", err), err
    assert re.search(rf"regprobe: WARNING: registry {mute}: INCOMPLETE: stopped by SIGTERM after \d+s", err), err
    assert pushgateway.value("regprobe_run_complete", registry=mute) == 0


def test_sigterm_without_a_pushgateway_does_not_claim_a_push(probe_config: Any) -> None:
    sock, port = port_that_accepts_and_never_answers()
    proc = None
    try:
        proc = start_run(probe_config({"name": "mute", "url": f"http://127.0.0.1:{port}", "timeout": 120}))
        wait_for(lambda: _connected(sock), "the run to reach the registry")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        sock.close()
        if proc is not None:
            proc.kill()
    assert proc.returncode == 3
    assert "SIGTERM: stopping; the run is reported as incomplete" in err
    assert "pushed" not in err


def _connected(listener: socket.socket) -> bool:
    """True once a client has connected (the connection is accepted and dropped)."""
    listener.settimeout(0)
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.fixture
def trickling_gateway() -> Iterator[str]:
    """A pushgateway that answers its status line, then one byte of a header every 0.2 s for hours:
    urllib's timeout bounds each read, so without a bound of its own a push would not end."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stopped = threading.Event()

    def trickle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
                while not stopped.wait(0.2):
                    conn.sendall(b"a")
            except OSError:
                pass

    def accept() -> None:
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stopped.set()
    listener.close()


def test_a_push_is_bounded_by_the_configured_timeout(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, trickling_gateway: str
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    cfg = {"name": f"slow-{ns}", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    result = regprobe("run", "-c", probe_config(cfg, pushgateway={"url": trickling_gateway}, timeout=1))
    assert result.code == 3
    assert f"push for registry slow-{ns} failed: TimeoutError: no answer within 1s" in result.err
    assert "OK  NOT PUSHED" in result.out


def test_a_registry_name_with_a_slash_is_pushed_and_deleted_as_the_runbook_says(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, pushgateway: Pushgateway
) -> None:
    """The config accepts `/` in names; the group URL needs the pushgateway's `@base64` form, in the code
    and in the runbook's DELETE recipe (run here as written, with bash and curl)."""
    registry.push_image(f"{ns}/app", "v1")
    name = f"team/{ns}"
    cfg = {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    config = probe_config(cfg, pushgateway={"url": pushgateway.url})
    shown = regprobe("run", "-c", config, "--no-push", "--format", "metrics").out.splitlines()[0]
    assert f" at /metrics/job/{JOB}/registry@base64/" in shown
    assert regprobe("run", "-c", config).code == 0
    assert pushgateway.value("regprobe_run_complete", registry=name) == 1

    recipe = _delete_recipe(ROOT / "docs" / "runbooks" / "README.md")
    env = {"PATH": "/usr/bin:/bin", "PUSHGATEWAY": pushgateway.url, "NAME": name}
    proc = subprocess.run(["bash", "-c", recipe], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert pushgateway.value("regprobe_run_complete", registry=name) is None


def _delete_recipe(page: Path) -> str:
    """The shell block of the page that deletes a group (the lines from NAME= to the curl)."""
    blocks = re.findall(r"```sh\n(.*?)```", page.read_text(), re.S)
    (block,) = [b for b in blocks if "curl -fsS -X DELETE" in b]
    lines = [line for line in block.splitlines() if not line.startswith(("PUSHGATEWAY=", "NAME="))]
    return "\n".join(lines)


def test_outcome_lines_at_the_default_level(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    """BROKEN with counts, and for a run that could not finish, why - without -v."""
    index = registry.push_index(f"{ns}/app", "v1")
    registry.remove_revision_link(f"{ns}/app", index.children[0].digest)
    registry.push_image(f"{ns}/app", "v2")
    broken = {"name": f"b-{ns}", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    unknown = {"name": f"u-{ns}", "url": registry.url, "repositories": {"list": [f"{ns}/nothing-here"]}}
    result = regprobe("run", "-c", probe_config(broken, unknown))
    assert result.code == 1
    assert re.search(
        rf"regprobe: WARNING: registry b-{ns}: BROKEN: 1 broken image \(1 broken object\), 2 tags walked in \d+\.\ds\n",
        result.err,
    ), result.err
    assert re.search(
        rf"regprobe: WARNING: registry u-{ns}: INCOMPLETE: {ns}/nothing-here: repositories.list names it, but the"
        r" registry does not know it .*; 0 tags walked in \d+\.\ds\n",
        result.err,
    ), result.err
