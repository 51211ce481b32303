"""The real Prometheus pushgateway, Prometheus, Alertmanager and `regprobe serve`, started on free loopback
ports for the tests, and a webhook receiver for Alertmanager's notifications."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .registry import free_port, stop_process
from .wire import LoopbackServer


class Service:
    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        #: Environment variables set for the process on top of the tests' own.
        self.env: dict[str, str] = {}
        workdir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        raise NotImplementedError

    ready_path = "/-/ready"

    def get(self, path: str) -> httpx.Response:
        """GET from the service as the tests' own client (a secured service adds its trust and credentials)."""
        return httpx.get(self.url + path, timeout=5)

    def start(self) -> Service:
        binary = self.command()[0]
        if shutil.which(binary) is None:
            raise RuntimeError(f"{binary} is not installed (make deps)")
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {(self.workdir / f'{self.name}.log').read_text()[-2000:]}")
            try:
                if self.get(self.ready_path).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready within 30s")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every regprobe sample at /metrics (the pushgateway's, or serve's own): (name, labels) -> value."""
        text = self.get("/metrics").text
        out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("regprobe_"):
                    out[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return out

    def broken_tags(self, registry: str) -> set[tuple[str, str]]:
        """(repository, tag) of the registry's regprobe_image_broken series."""
        return {
            (labels["repository"], labels["tag"])
            for (name, label_set) in self.samples()
            if name == "regprobe_image_broken"
            for labels in [dict(label_set)]
            if labels["registry"] == registry
        }

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample of ``name`` whose labels include ``labels``."""
        matches = [v for (n, ls), v in self.samples().items() if n == name and set(labels.items()) <= ls]
        assert len(matches) <= 1, matches
        return matches[0] if matches else None


class Pushgateway(Service):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "pushgateway")

    def command(self) -> list[str]:
        return ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file="]


#: The scrape job for `regprobe serve`, named like the pushed job: the stale alert's absent branch
#: matches job="registry-integrity-probe" (docs/operator-guide.md, "Push or scrape?").
SERVE_SCRAPE_JOB = {"job_name": "registry-integrity-probe"}
#: The pushgateway's scrape job: keep the pushed job/registry labels instead of the scrape target's.
PUSHGATEWAY_SCRAPE_JOB = {"job_name": "pushgateway", "honor_labels": True}


class Prometheus(Service):
    def __init__(
        self,
        workdir: Path,
        scrape: str,
        rule_files: list[Path],
        *,
        job: dict[str, Any] = PUSHGATEWAY_SCRAPE_JOB,
        alertmanager: str | None = None,
    ) -> None:
        """``scrape``: HOST:PORT of the target; ``alertmanager``: HOST:PORT to send alerts to."""
        super().__init__(workdir, "prometheus")
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{**job, "static_configs": [{"targets": [scrape]}]}],
        }
        if alertmanager is not None:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        self.config = workdir / "prometheus.yml"
        self.config.write_text(json.dumps(config))

    def command(self) -> list[str]:
        return [
            "prometheus",
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(self.url + "/api/v1/alerts", timeout=5)
        response.raise_for_status()
        return response.json()["data"]["alerts"]  # type: ignore[no-any-return]

    def evaluated_since(self, unix: float) -> bool:
        """Whether every rule group was evaluated after ``unix`` (so alerts reflect what was scraped by then)."""
        response = httpx.get(self.url + "/api/v1/rules", timeout=5)
        response.raise_for_status()
        groups = response.json()["data"]["groups"]
        # RFC 3339 with nanoseconds ("2026-12-06T14:23:01.983038524Z"): seconds are precise enough here.
        stamps = [datetime.fromisoformat(g["lastEvaluation"][:19] + "+00:00").timestamp() for g in groups]
        return bool(stamps) and min(stamps) > unix

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        return response.json()["data"]["result"]  # type: ignore[no-any-return]


class RegprobeServe(Service):
    """`regprobe serve` as its own process, so SIGTERM is real."""

    ready_path = "/healthz"

    def __init__(self, workdir: Path, config: str, interval: str = "1h") -> None:
        super().__init__(workdir, "regprobe-serve")
        self.config, self.interval = config, interval

    def command(self) -> list[str]:
        listen = f"127.0.0.1:{self.port}"
        return [
            sys.executable,
            "-m",
            "regprobe",
            "serve",
            "-c",
            self.config,
            "--listen",
            listen,
            "--interval",
            self.interval,
        ]

    def log(self) -> str:
        return (self.workdir / f"{self.name}.log").read_text(errors="replace")


class WebhookReceiver:
    """Alertmanager's webhook notifications, as they arrive, on a real socket."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = LoopbackServer(Handler)
        self.url = f"{self._server.url}/hook"
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def alerts(self, status: str, alertname: str, registry: str) -> list[dict[str, Any]]:
        """Alerts in notifications so far with this status ('firing', 'resolved') for this registry."""
        return [
            alert
            for note in list(self.notifications)
            for alert in note["alerts"]
            if alert["status"] == status
            and alert["labels"].get("alertname") == alertname
            and alert["labels"].get("registry") == registry
        ]


class Alertmanager(Service):
    """Short group_wait/group_interval so a test sees notifications in seconds. Production routes use the
    defaults (group_wait 30s, group_interval 5m, repeat_interval 4h; docs/operator-guide.md)."""

    def __init__(self, workdir: Path, webhook_url: str) -> None:
        super().__init__(workdir, "alertmanager")
        config = {
            "route": {
                "receiver": "test",
                "group_by": ["alertname", "registry"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "test", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        }
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(json.dumps(config))

    def command(self) -> list[str]:
        return [
            "prometheus-alertmanager",
            f"--config.file={self.config}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # A single instance: no gossip port to collide with other test runs.
            "--cluster.listen-address=",
        ]
