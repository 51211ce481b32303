"""The real Prometheus pushgateway and Prometheus, started on free loopback ports for the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .registry import free_port, stop_process


class Service:
    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
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
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log)
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


class Pushgateway(Service):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "pushgateway")

    def command(self) -> list[str]:
        return ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file="]

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every regprobe sample the gateway holds: (name, labels) -> value."""
        text = self.get("/metrics").text
        out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("regprobe_"):
                    out[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return out

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample of ``name`` whose labels include ``labels``."""
        matches = [v for (n, ls), v in self.samples().items() if n == name and set(labels.items()) <= ls]
        assert len(matches) <= 1, matches
        return matches[0] if matches else None


class Prometheus(Service):
    def __init__(self, workdir: Path, scrape: str, rule_files: list[Path]) -> None:
        super().__init__(workdir, "prometheus")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "pushgateway",
                    # Keep the pushed job/registry labels instead of the scrape target's.
                    "honor_labels": True,
                    "static_configs": [{"targets": [scrape]}],
                }
            ],
        }
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

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        return response.json()["data"]["result"]  # type: ignore[no-any-return]
