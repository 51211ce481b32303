"""`make demo`: a throwaway registry:2 on loopback with sample images, two of them broken the way the
incidents broke them, and `regprobe run` pointed at it. Everything is removed afterwards."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.registry import Registry  # the same harness the tests use


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="regprobe-demo-") as tmp:
        registry = Registry(Path(tmp) / "registry").start()
        try:
            print(f"registry:2 listening on {registry.url}, storage in {registry.root}\n")
            registry.push_image("platform/base", "bookworm")
            registry.push_image("platform/tools", "1.4", docker=True)
            app = registry.push_index("team/api", "v1.8.0")
            registry.tag("team/api", "latest", app.digest)
            worker = registry.push_image("team/worker", "2026.11")

            arm64 = app.children[1]
            print("breaking team/api the way a tag clean-up script did: the arm64 child's revision link")
            print(f"  rm -r .../repositories/team/api/_manifests/revisions/sha256/{arm64.digest[7:19]}...")
            registry.remove_revision_link("team/api", arm64.digest)
            print("breaking team/worker the way GC on a running registry did: a layer's data, link kept")
            print(f"  rm -r .../blobs/sha256/{worker.layers[0][7:9]}/{worker.layers[0][7:19]}...\n")
            registry.remove_blob_data(worker.layers[0])

            config = Path(tmp) / "config.yaml"
            config.write_text(f"registries:\n  - name: demo\n    url: {registry.url}\n")
            command = [sys.executable, "-m", "regprobe", "run", "-c", str(config)]
            print("$ regprobe run -c config.yaml\n")
            code = subprocess.call(command)
            print(f"\nexit code {code} (1 = integrity findings; the CronJob pushes these as metrics and alerts)")
            return 0 if code == 1 else 1
        finally:
            registry.stop()


if __name__ == "__main__":
    sys.exit(main())
