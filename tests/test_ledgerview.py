"""``regprobe ledger``: what the ledger says, read-only, beside a run that holds it; usage and missing
ledgers named."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from regprobe.ledger import Ledger, ObjectVerdict, TagVerdict, ledger_path

ID = "private http://127.0.0.1:5000"


def config(probe_config: Any, tmp_path: Path, **top: Any) -> str:
    registries = [
        {"name": "private", "url": "http://127.0.0.1:5000"},
        {"name": "other", "url": "http://127.0.0.1:6000"},
    ]
    return probe_config(*registries, state_dir=str(tmp_path / "state"), **top)  # type: ignore[no-any-return]


def test_lists_tags_by_last_verification_while_a_run_holds_the_ledger(
    regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    cfg = config(probe_config, tmp_path, coverage={"window": "1h"})
    now = 1_700_000_000.0
    with Ledger.open(ledger_path(tmp_path / "state", "private"), identity=ID, now=now) as held:
        held.note_listed("team/api", ["v1", "v2", "v3"], now=now)
        held.record([TagVerdict("team/api", "v2", "sha256:" + "2" * 64, "ok")], [], now=now + 10)
        layer = ObjectVerdict("team/api", "sha256:" + "9" * 64, "layer", "broken", 5)
        broken = TagVerdict("team/api", "v3", "sha256:" + "3" * 64, "broken", "layer sha256:999 missing: 404")
        held.record([broken], [layer], now=now + 20)

        listed = regprobe("ledger", "-c", cfg, "--registry", "private", "--format", "json")
        oldest = regprobe("ledger", "-c", cfg, "--registry", "private", "--oldest", "2")
        only_broken = regprobe("ledger", "-c", cfg, "--registry", "private", "--broken", "--format", "json")

    assert listed.code == 0, listed.err
    (entry,) = listed.report["registries"]
    assert entry["ledger"] == str(ledger_path(tmp_path / "state", "private"))
    assert [(t["tag"], t["verdict"], t["verified_at"]) for t in entry["tags"]] == [
        ("v1", None, None),
        ("v2", "ok", now + 10),
        ("v3", "broken", now + 20),
    ]
    assert (entry["coverage"]["known"], entry["coverage"]["window_seconds"]) == (3, 3600.0)
    lines = oldest.out.splitlines()
    assert lines[0].startswith("private  ") and "3 tags known" in lines[1]
    assert lines[2].split() == ["REPOSITORY", "TAG", "VERDICT", "VERIFIED", "DIGEST"]
    assert lines[3].split() == ["team/api", "v1", "-", "never", "-"]
    assert lines[4].split()[:5] == ["team/api", "v2", "ok", "2023-11-14", "22:13:30Z"] and len(lines) == 5
    assert [t["tag"] for t in only_broken.report["registries"][0]["tags"]] == ["v3"]
    assert only_broken.report["registries"][0]["tags"][0]["detail"] == "layer sha256:999 missing: 404"


def test_usage_and_missing_ledgers(regprobe: Any, probe_config: Any, tmp_path: Path) -> None:
    cfg = config(probe_config, tmp_path)
    missing = regprobe("ledger", "-c", cfg)
    assert missing.code == 3
    assert f"! no ledger at {ledger_path(tmp_path / 'state', 'other')}" in missing.out
    unknown = regprobe("ledger", "-c", cfg, "--registry", "nope")
    assert unknown.code == 2 and "--registry 'nope': " in unknown.err and "(it has: private, other)" in unknown.err
    no_state = probe_config({"name": "private", "url": "http://127.0.0.1:5000"})
    refused = regprobe("ledger", "-c", no_state)
    assert refused.code == 2 and "state_dir: not set" in refused.err
    for flags in (["--oldest", "0"], ["--oldest", "3", "--broken"]):
        with pytest.raises(SystemExit) as caught:
            regprobe("ledger", "-c", cfg, *flags)
        assert caught.value.code == 2
    assert not os.path.exists(ledger_path(tmp_path / "state", "private")), "reading creates nothing"
