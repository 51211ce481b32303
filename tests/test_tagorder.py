"""Tags are listed in natural order everywhere: v2 before v10."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from regprobe.tagorder import natural_key, sorted_tags

from .registry import BINARY, Registry


def test_numbers_in_tags_sort_as_numbers() -> None:
    tags = ["v10", "v2", "latest", "1.10.0", "1.9.3", "1.9.10", "2026.11", "2026.2", "v1", "v01", "v1-rc1", "10", "9"]
    want = ["1.9.3", "1.9.10", "1.10.0", "9", "10", "2026.2", "2026.11", "latest", "v01", "v1", "v1-rc1", "v2", "v10"]
    assert sorted_tags(tags) == want
    assert sorted_tags(random.sample(tags, len(tags))) == want


def test_digit_runs_longer_than_int_allows_still_sort() -> None:
    huge = "9" * 5000  # past Python's int() digit limit
    assert sorted_tags([f"v{huge}", "v2"]) == ["v2", f"v{huge}"]


@given(st.lists(st.text(alphabet="av0123456789.-_", max_size=8), max_size=20))
def test_the_order_is_total_and_stable(tags: list[str]) -> None:
    once = sorted_tags(tags)
    assert sorted_tags(reversed(once)) == once
    assert [natural_key(t) for t in once] == sorted(natural_key(t) for t in tags)


def test_every_report_lists_tags_naturally(tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    """The HTTP walk (JSON and text), fsck and gc-check name an object's tags v1, v2, v10 - not v1, v10, v2."""
    reg = Registry(tmp_path / "registry", cache=False).start()
    try:
        index = reg.push_index("app", "v10", attestations=False)
        for tag in ("v2", "v1"):
            reg.tag("app", tag, index.digest)
        reg.remove_revision_link("app", index.children[1].digest)
        cfg = probe_config({"name": "local", "url": reg.url})
        run = regprobe("run", "-c", cfg, "--format", "json")
        run_text = regprobe("run", "-c", cfg)
        fsck = regprobe("fsck", str(reg.root), "--format", "json")
        fsck_text = regprobe("fsck", str(reg.root))
        reg.stop()
        plan = subprocess.run(
            [BINARY, "garbage-collect", "--dry-run", "--delete-untagged", str(reg.config_path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (tmp_path / "plan.txt").write_text(plan)
        gc = regprobe("gc-check", str(reg.root), "--plan", str(tmp_path / "plan.txt"), "--format", "json")
        gc_text = regprobe("gc-check", str(reg.root), "--plan", str(tmp_path / "plan.txt"))
    finally:
        reg.stop()

    natural = ["v1", "v2", "v10"]
    assert [f["tags"] for f in run.findings()] == [natural]
    assert [f["tags"] for f in fsck.report["findings"]] == [natural]
    assert [f["tags"] for f in gc.report["findings"]] == [natural]
    for text in (run_text.out, fsck_text.out, gc_text.out):
        assert "tags: v1, v2, v10" in text, text
