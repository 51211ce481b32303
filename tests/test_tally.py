"""From a judged walk to the ledger's verdicts: only a tag whose walk saw everything it reaches is verified
intact; a finding makes a tag broken whatever else its walk could not see; an access problem, a server
error not judged, or a walk cut off leaves the tag's earlier state alone."""

from __future__ import annotations

from regprobe.digest import Digest
from regprobe.facts import Key, Node, TagRoot
from regprobe.judge import judgement
from regprobe.ledger import ObjectVerdict, TagVerdict
from regprobe.model import Kind, Problem
from regprobe.tally import tally

M1, M2, M3, M4, CONFIG, LAYER, GONE, LOCKED = (Digest("sha256", c * 64) for c in "12345678")


def verdicts(roots: dict[str, TagRoot], nodes: dict[Key, Node], finished: set[str], unavailable: str | None = None):
    tags, objects = tally("repo", roots, nodes, judgement("repo", roots, nodes, unavailable), finished)
    return {t.tag: t for t in tags}, {o.digest: o for o in objects}


def image(manifest: Digest, *blobs: Digest) -> Node:
    return Node(Kind.MANIFEST, status=200, children=tuple(("blob", b) for b in blobs))


def blob(**kw: object) -> Node:
    return Node(Kind.LAYER, **{"status": 206, "size": 10, **kw})  # type: ignore[arg-type]


def test_verdicts_follow_what_the_walk_saw() -> None:
    nodes: dict[Key, Node] = {
        ("manifest", M1): image(M1, CONFIG, LAYER),
        ("manifest", M2): image(M2, CONFIG, GONE),
        ("manifest", M3): image(M3, CONFIG, LOCKED),
        ("manifest", M4): image(M4, CONFIG, LAYER),
        ("blob", CONFIG): Node(Kind.CONFIG, status=206, size=5, hashed=True),
        ("blob", LAYER): blob(),
        ("blob", GONE): blob(problem=Problem.MISSING, status=404, detail="GET answered 404 BLOB_UNKNOWN"),
        ("blob", LOCKED): blob(error="credentials refused"),
    }
    roots = {
        "ok": TagRoot(("manifest", M1)),
        "broken": TagRoot(("manifest", M2)),
        "blocked": TagRoot(("manifest", M3)),
        "cut": TagRoot(("manifest", M4)),  # its walk did not finish (deadline)
        "refused": TagRoot(None, error="401"),
        "unresolved": TagRoot(None, Problem.MISSING, 404, "tag unresolved: GET answered 404"),
        "policy": TagRoot(None, status=412, detail="pull refused by policy", skipped="policy"),
    }
    tags, objects = verdicts(roots, nodes, finished={"ok", "broken", "blocked", "unresolved", "policy"})

    assert {t: v.verdict for t, v in tags.items()} == {
        "ok": "ok",
        "broken": "broken",
        "unresolved": "broken",
        "policy": "skipped",
    }
    assert tags["ok"] == TagVerdict("repo", "ok", str(M1), "ok", "", (str(M1), str(CONFIG), str(LAYER)), ())
    assert tags["broken"].problems == (("layer", str(GONE)),)
    assert tags["broken"].detail == f"layer {GONE.short} missing: GET answered 404 BLOB_UNKNOWN"
    assert tags["unresolved"].problems == (("manifest", None),) and tags["unresolved"].digest is None
    # Objects looked at get a verdict; one that could not be looked at gets none.
    assert str(LOCKED) not in objects
    assert objects[str(GONE)] == ObjectVerdict("repo", str(GONE), "layer", "broken", 10, False)
    assert objects[str(CONFIG)] == ObjectVerdict("repo", str(CONFIG), "config", "ok", 5, True)
    assert objects[str(M1)].size is None


def test_a_finding_wins_over_what_could_not_be_seen() -> None:
    nodes: dict[Key, Node] = {
        ("manifest", M1): image(M1, GONE, LOCKED),
        ("blob", GONE): blob(problem=Problem.MISSING, status=404),
        ("blob", LOCKED): blob(error="timed out"),
    }
    tags, _ = verdicts({"v1": TagRoot(("manifest", M1))}, nodes, finished={"v1"})
    assert tags["v1"].verdict == "broken"


def test_a_server_error_not_judged_is_no_verdict_either_way() -> None:
    """The registry failed the rest of the repository too (an outage): the tag is neither broken nor
    verified intact, and the object gets no verdict."""
    nodes: dict[Key, Node] = {
        ("manifest", M1): image(M1, LAYER),
        ("blob", LAYER): blob(problem=Problem.SERVER_ERROR, status=500),
    }
    tags, objects = verdicts({"v1": TagRoot(("manifest", M1))}, nodes, finished={"v1"}, unavailable="down")
    assert tags == {} and str(LAYER) not in objects
    judged, _ = verdicts({"v1": TagRoot(("manifest", M1))}, nodes, finished={"v1"})
    assert judged["v1"].verdict == "broken"


def test_a_list_of_referrers_is_no_object_of_the_registry() -> None:
    """A manifest's list of referrers is keyed by the manifest's digest in the walk's graph; the ledger
    keeps objects by digest, so the list must not replace the manifest there (nor count as verified)."""
    signature = M2
    nodes: dict[Key, Node] = {
        ("manifest", M1): Node(Kind.MANIFEST, status=200, children=(("blob", CONFIG), ("referrers", M1))),
        ("blob", CONFIG): Node(Kind.CONFIG, status=206, size=5),
        ("referrers", M1): Node(Kind.REFERRER, status=200, children=(("manifest", signature),)),
        ("manifest", signature): image(signature, LAYER),
        ("blob", LAYER): blob(),
    }
    tags, objects = verdicts({"v1": TagRoot(("manifest", M1))}, nodes, finished={"v1"})

    assert tags["v1"].verdict == "ok"
    assert {d: o.kind for d, o in objects.items()} == {
        str(M1): "manifest",
        str(CONFIG): "config",
        str(signature): "manifest",
        str(LAYER): "layer",
    }
