"""The pure judgement of replies and of the walk's graph."""

from __future__ import annotations

from regprobe.digest import Digest
from regprobe.errorbody import ErrorBody
from regprobe.facts import Node, Reply, TagRoot
from regprobe.judge import blob_reply, judgement, manifest_reply
from regprobe.manifest import Descriptor
from regprobe.model import Kind, Problem

A, B, C, M, I = (Digest("sha256", c * 64) for c in "abcde")  # noqa: E741
LAYER = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", A, 100)


def reply(**kw: object) -> Reply:
    return Reply(url="http://r/v2/x", **kw)  # type: ignore[arg-type]


def test_range_healthy_and_broken() -> None:
    assert blob_reply(reply(status=206, range_total=100, content_length=1, received=1), LAYER, "range") is None
    # Registry ignoring Range: the full length is the total.
    assert blob_reply(reply(status=200, content_length=100, received=64), LAYER, "range") is None
    assert blob_reply(reply(status=404, code="BLOB_UNKNOWN"), LAYER, "range") == (
        Problem.MISSING,
        "GET answered 404 BLOB_UNKNOWN",
    )
    stale = blob_reply(reply(status=206, range_total=100, content_length=1, truncated=True), LAYER, "range")
    assert stale is not None and stale[0] is Problem.TRUNCATED
    # Headers without a length and no body at all: still not a pullable blob.
    empty = blob_reply(reply(status=206, received=0), LAYER, "range")
    assert empty is not None and empty[0] is Problem.TRUNCATED
    wrong = blob_reply(reply(status=206, range_total=99, received=1), LAYER, "range")
    assert wrong is not None and wrong[0] is Problem.SIZE_MISMATCH
    unsatisfiable = blob_reply(reply(status=416, range_total=0), LAYER, "range")
    assert unsatisfiable is not None and unsatisfiable[0] is Problem.SIZE_MISMATCH


def test_416_to_the_last_byte_means_a_shorter_object() -> None:
    """``Range: bytes=N-1-N-1`` is unsatisfiable only when the object holds fewer than N bytes (an empty
    one: REGISTRY-QUIRKS.md D7): fine for an empty descriptor; a finding for any other. distribution says
    how long it is (``bytes */300``); S3 says it without Content-Range (VERIFIED with moto,
    tests/test_s3.py): the object is shorter than its descriptor - truncated."""
    empty = Descriptor("x", Digest.of(b""), 0)
    assert blob_reply(reply(status=416, range_total=0), empty, "digest") is None
    short = blob_reply(reply(status=416, range_total=30), LAYER, "range")
    assert short == (Problem.SIZE_MISMATCH, "registry holds 30 bytes, descriptor says 100")
    s3 = blob_reply(reply(status=416, code="InvalidRange", answered_by="http://s3:9000"), LAYER, "range")
    assert s3 == (
        Problem.TRUNCATED,
        "GET answered 416 InvalidRange (at http://s3:9000, where the registry redirected): byte 99 does not"
        " exist, the stored object is shorter than the descriptor's 100 bytes",
    )
    # 416 naming the descriptor's own size is no statement about the object: the server misbehaves.
    odd = blob_reply(reply(status=416, range_total=100), LAYER, "range")
    assert odd is not None and odd[0] is Problem.UNREACHABLE


def test_range_cut_off_after_the_headers_names_the_last_byte() -> None:
    """The descriptor cache's headers, then no body: the data behind them is cut short or gone."""
    cut = reply(status=206, range_total=100, content_length=1, truncated=True)
    assert blob_reply(cut, LAYER, "range") == (
        Problem.TRUNCATED,
        "GET answered 206, then the connection closed after 0 of 1 body bytes (pulls fail with 'unexpected EOF');"
        " the last byte (99) is not there",
    )
    assert blob_reply(reply(status=206, range_total=100, received=0), LAYER, "range") == (
        Problem.TRUNCATED,
        "GET 206 to Range: bytes=99-99 delivered no body bytes",
    )


def test_unreachable_and_other_statuses() -> None:
    timeout = blob_reply(reply(status=None, timeout=True, error="ReadTimeout after 30s"), LAYER, "head")
    assert timeout == (Problem.UNREACHABLE, "HEAD timed out: ReadTimeout after 30s")
    server = blob_reply(reply(status=503), LAYER, "range")
    assert server is not None and server[0] is Problem.SERVER_ERROR
    refused = blob_reply(reply(status=400), LAYER, "range")
    assert refused is not None and refused[0] is Problem.UNREACHABLE
    gone = blob_reply(reply(status=410), LAYER, "range")
    assert gone is not None and gone[0] is Problem.MISSING


def test_head_and_digest_modes() -> None:
    assert blob_reply(reply(status=200, content_length=100), LAYER, "head") is None
    assert blob_reply(reply(status=200, content_length=0), LAYER, "head") == (
        Problem.SIZE_MISMATCH,
        "HEAD Content-Length 0, descriptor says 100",
    )
    assert blob_reply(reply(status=200, content_length=100, received=100, digest=A), LAYER, "digest") is None
    bad = blob_reply(reply(status=200, content_length=100, received=100, digest=B), LAYER, "digest")
    assert bad is not None and bad[0] is Problem.DIGEST_MISMATCH
    short = blob_reply(reply(status=200, content_length=100, received=40, digest=B), LAYER, "digest")
    assert short is not None and short[0] is Problem.TRUNCATED


def test_empty_blob_is_checked_with_head_in_range_mode() -> None:
    empty = Descriptor("x", Digest.of(b""), 0)
    assert blob_reply(reply(status=200, content_length=0), empty, "range") is None


def test_manifest_digest_and_size() -> None:
    body = b'{"schemaVersion": 2}'
    right = Digest.of(body)
    assert manifest_reply(reply(status=200, body=body, digest=right), None, right) is None
    lie = manifest_reply(reply(status=200, body=body, digest=right), None, A)
    assert lie is not None and lie[0] is Problem.DIGEST_MISMATCH
    size = manifest_reply(reply(status=200, body=body, digest=right), Descriptor("x", right, 3), right)
    assert size is not None and size[0] is Problem.SIZE_MISMATCH
    big = manifest_reply(reply(status=200, over_limit=True, content_length=1 << 30), None, None)
    assert big is not None and big[0] is Problem.INVALID


def test_findings_name_every_tag_and_first_parent() -> None:
    nodes = {
        ("manifest", I): Node(Kind.MANIFEST, children=(("manifest", M), ("manifest", C))),
        ("manifest", M): Node(Kind.MANIFEST, children=(("blob", A), ("blob", B))),
        ("manifest", C): Node(Kind.MANIFEST, Problem.MISSING, 404, "GET answered 404"),
        ("blob", A): Node(Kind.CONFIG),
        ("blob", B): Node(Kind.LAYER, Problem.TRUNCATED, 206, "cut"),
    }
    roots = {
        "v2": TagRoot(("manifest", I)),
        "latest": TagRoot(("manifest", I)),
        "arm-only": TagRoot(("manifest", M)),
        "gone": TagRoot(None, Problem.MISSING, 404, "tag gone: 404"),
    }
    out = judgement("team/app", roots, nodes).findings
    assert [(f.kind, f.digest, f.problem, f.tags, f.parent) for f in out] == [
        (Kind.MANIFEST, None, Problem.MISSING, ("gone",), None),
        (Kind.MANIFEST, C, Problem.MISSING, ("latest", "v2"), I),
        (Kind.LAYER, B, Problem.TRUNCATED, ("arm-only", "latest", "v2"), M),
    ]


def test_server_errors_are_findings_only_while_the_registry_answers_the_rest() -> None:
    said = ErrorBody("UNKNOWN", "unknown error", '{"Offset":32}')
    nodes = {
        ("manifest", I): Node(Kind.MANIFEST, children=(("manifest", M),), platforms=("linux/arm64",)),
        ("manifest", M): Node(Kind.MANIFEST, Problem.SERVER_ERROR, 500, "GET answered 500 UNKNOWN", said=said),
    }
    roots = {
        "v1": TagRoot(("manifest", I)),
        "v2": TagRoot(None, Problem.SERVER_ERROR, 500, "tag v2: GET answered 500 UNKNOWN", said=said),
    }
    answering = judgement("team/app", roots, nodes, unavailable=None)
    assert [(f.digest, f.problem, f.platform, f.registry_error) for f in answering.findings] == [
        (None, Problem.SERVER_ERROR, None, said),
        (M, Problem.SERVER_ERROR, "linux/arm64", said),
    ]
    down = judgement("team/app", roots, nodes, unavailable="the tag list failed too")
    assert down.findings == []
    assert down.errors == [
        "team/app: tag v2: GET answered 500 UNKNOWN; the tag list failed too",
        f"team/app: manifest {M}: GET answered 500 UNKNOWN; the tag list failed too (tags: v1)",
    ]


def test_absent_cache_children_are_not_findings() -> None:
    nodes = {
        ("manifest", I): Node(Kind.MANIFEST, children=(("manifest", M),)),
        ("manifest", M): Node(Kind.MANIFEST, status=404, absent=True),
    }
    assert judgement("cache/app", {"latest": TagRoot(("manifest", I))}, nodes).findings == []


def test_a_child_blocked_by_policy_skips_each_tag_reaching_it_once() -> None:
    """Harbor's 412 on one platform's manifest: the tags reaching it are skipped (reason policy), named
    once each with the object that blocked them; a broken sibling is still a finding."""
    nodes = {
        ("manifest", I): Node(Kind.MANIFEST, children=(("manifest", M), ("manifest", C), ("manifest", B))),
        ("manifest", M): Node(Kind.MANIFEST, status=412, detail="PROJECTPOLICYVIOLATION", skipped="policy"),
        ("manifest", C): Node(Kind.MANIFEST, status=412, detail="PROJECTPOLICYVIOLATION", skipped="policy"),
        ("manifest", B): Node(Kind.MANIFEST, Problem.MISSING, 404, "GET answered 404"),
    }
    judged = judgement("team/app", {"v1": TagRoot(("manifest", I)), "v2": TagRoot(("manifest", I))}, nodes)
    assert [(s.tag, s.reason, s.detail) for s in judged.skipped] == [
        ("v1", "policy", f"manifest {M}: PROJECTPOLICYVIOLATION"),
        ("v2", "policy", f"manifest {M}: PROJECTPOLICYVIOLATION"),
    ]
    assert [(f.digest, f.tags) for f in judged.findings] == [(B, ("v1", "v2"))]
    assert judged.errors == []


def test_tags_that_met_something_not_looked_at_are_blocked() -> None:
    """What a run may clear (regprobe.carryover): a tag whose own manifest, or an object it reaches, could
    not be looked at has no fresh verdict; its siblings do."""
    nodes = {
        ("manifest", M): Node(Kind.MANIFEST, status=200, children=(("blob", A),)),
        ("blob", A): Node(Kind.LAYER, error="401 refused"),
        ("manifest", I): Node(Kind.MANIFEST, status=200, children=(("blob", B),)),
        ("blob", B): Node(Kind.LAYER, status=206),
    }
    roots = {
        "refused-below": TagRoot(("manifest", M)),
        "refused-itself": TagRoot(None, error="429 rate limited"),
        "intact": TagRoot(("manifest", I)),
    }
    assert judgement("repo", roots, nodes).blocked == {"refused-below", "refused-itself"}
