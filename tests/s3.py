"""registry:2 on S3, for real: moto's S3 server (a subprocess on a loopback port of its own choosing)
and a bucket the Debian docker-registry's s3 driver stores into (REGISTRY-FACTS.md, "registry:2 on S3").

moto records every request it serves (its recorder), so a test can see exactly what reached the
storage host - which headers a presigned GET carried - rather than trusting the client's word.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from mypy_boto3_s3 import S3Client

from .registry import listening_port, stop_process

_KEY = "test"


class MotoS3:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.recording = workdir / "moto-requests.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        assert self.port, "moto has not started yet"
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(self.recording)}
        log = open(self.workdir / "moto.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"], stdout=log, stderr=log, env=env
        )
        deadline = time.monotonic() + 30
        while not self.port:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_process(self.proc)
                raise RuntimeError(f"moto did not start: {(self.workdir / 'moto.log').read_text()[-2000:]}")
            self.port = listening_port(self.proc.pid) or 0
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def client(self) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=_KEY,
            aws_secret_access_key=_KEY,
        )

    def bucket(self, name: str) -> S3Storage:
        s3 = self.client()
        s3.create_bucket(Bucket=name)
        return S3Storage(self, s3, name)

    def requests(self) -> list[dict[str, Any]]:
        """Every request moto served so far: ``{"method", "url", "headers", ...}``."""
        if not self.recording.exists():
            return []
        return [json.loads(line) for line in self.recording.read_text().splitlines() if line.strip()]


class S3Storage:
    """A bucket as a registry's storage (the :class:`tests.registry.Storage` protocol): the driver config
    and the faults, made with boto3 the way lifecycle rules, clean-up jobs and interrupted copies make
    them."""

    def __init__(self, server: MotoS3, s3: S3Client, bucket: str) -> None:
        self.server, self.s3, self.bucket = server, s3, bucket

    def driver(self) -> dict[str, Any]:
        return {
            "s3": {
                "accesskey": _KEY,
                "secretkey": _KEY,
                "region": "us-east-1",
                "regionendpoint": self.server.url,
                "bucket": self.bucket,
                "secure": False,
                "v4auth": True,
                # Bucket in the path, not the host name: v3 defaults to virtual-hosted URLs
                # (registry3.127.0.0.1), which do not resolve. 2.8.2 always uses the path.
                "forcepathstyle": True,
            }
        }

    def _key(self, path: str) -> str:
        return f"docker/registry/v2/{path}"

    def read(self, path: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()

    def write(self, path: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._key(path), Body=data)

    def remove_tree(self, path: str) -> None:
        prefix = self._key(path)
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        keys = [o["Key"] for o in listed.get("Contents", []) if o["Key"] == prefix or o["Key"].startswith(prefix + "/")]
        assert keys, f"nothing stored under {prefix}"
        for key in keys:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
