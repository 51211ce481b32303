"""Registry webhook payloads, one parser per format, each turning a body into :class:`Event` values.

The shapes, with their sources (../shared/EVENTS-AND-REFERRERS.md section 1; the fixtures in
tests/testdata/events cite the documents they follow):

* distribution and GitLab: ``{"events": [...]}`` (``application/vnd.docker.distribution.events.v1+json``
  from 2.8, ``v2+json`` from v3). A manifest delete and a blob delete both carry only ``digest`` and
  ``repository``; v3 sends absent fields as ``""``.
* ACR: its webhook sends one such event without the envelope; Event Grid sends a list of events whose
  ``data`` is one, and first a subscription validation to answer.
* Harbor: the default format (``type``, ``event_data.resources``) and CloudEvents (``harbor.artifact.*``).
* zot: CloudEvents (``zotregistry.image.updated|deleted``), which its HTTP sink sends in binary mode: the
  attributes in ``ce-*`` headers, the body only the ``data``.
* Quay ``repo_push`` (tag names only), Docker Hub (push only, one tag), ECR through EventBridge.

Nothing here trusts the body: every field is type-checked and validated (repository names, tags and
digests by the grammar regprobe uses for the URLs it builds), and one bad event in an envelope costs that
event, not the others.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ...digest import Digest
from ...errors import DigestError, InvalidReferenceError
from ...reference import validate_repository, validate_tag
from .event import Action, Event, Ignored, ParseError, Source

#: Longest host name taken from a payload; it is only compared with configured hosts.
_MAX_HOST = 300
_EVENT_GRID_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
_KNOWN = "distribution/GitLab, Harbor, zot, ACR, Quay, Docker Hub or ECR (EventBridge)"


@dataclass(slots=True)
class Parsed:
    events: list[Event] = field(default_factory=list)
    #: (source, action) of well-formed events that change nothing (pulls, scans, charts, ...).
    ignored: list[tuple[Source, Ignored]] = field(default_factory=list)
    #: Why each event that could not be read was refused, when others in the body could be.
    invalid: list[str] = field(default_factory=list)
    #: Event Grid's subscription validation code: answered, so the subscription starts delivering.
    validation_code: str | None = None

    def extend(self, other: Parsed) -> None:
        self.events.extend(other.events)
        self.ignored.extend(other.ignored)
        self.invalid.extend(other.invalid)
        self.validation_code = self.validation_code or other.validation_code

    @property
    def usable(self) -> bool:
        return bool(self.events or self.ignored or self.validation_code)


def parse(body: bytes, headers: Mapping[str, str]) -> Parsed:
    """The events in ``body``; ``headers`` with lowercase names. Raises :class:`ParseError` when nothing in
    it can be used."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ParseError("the body is not JSON") from None
    ce_type = headers.get("ce-type")
    if ce_type is not None:  # a CloudEvent in binary mode: the body is its data
        parsed = _cloudevent(ce_type, headers.get("ce-id"), doc)
    elif isinstance(doc, list):
        parsed = _each(doc, _listed_event)
    elif isinstance(doc, dict):
        parsed = _document(doc)
    else:
        raise ParseError(f"the body is JSON but not an event of {_KNOWN}")
    if not parsed.usable:
        raise ParseError(parsed.invalid[0] if parsed.invalid else f"no event of {_KNOWN} in the body")
    return parsed


def _document(doc: dict[str, Any]) -> Parsed:
    if "events" in doc:
        return _each(_list(doc, "events"), lambda raw: _distribution(raw, "distribution"))
    if "specversion" in doc:
        return _cloudevent(_text(doc, "type") or "", _text(doc, "id"), doc.get("data"))
    if "event_data" in doc and "type" in doc:
        return _harbor(_text(doc, "type") or "", _object(doc, "event_data"), _key(doc))
    if "detail-type" in doc and "detail" in doc:
        return _ecr(doc)
    if "push_data" in doc:
        return _dockerhub(doc)
    if "updated_tags" in doc or "docker_url" in doc:
        return _quay(doc)
    if "action" in doc and "target" in doc:
        return _distribution(doc, "acr")
    raise ParseError(f"the body is JSON but not an event of {_KNOWN}")


def _each(items: list[Any], one: Callable[[Any], Parsed]) -> Parsed:
    """Every item parsed on its own: a bad one is refused, the others count."""
    out = Parsed()
    for item in items:
        try:
            out.extend(one(item))
        except ParseError as exc:
            out.invalid.append(str(exc))
    return out


def _listed_event(raw: Any) -> Parsed:
    """An item of a JSON list: Event Grid's schema (``eventType``) or a CloudEvent of a batch."""
    if not isinstance(raw, dict):
        raise ParseError("a listed event is not an object")
    if "specversion" in raw:
        return _cloudevent(_text(raw, "type") or "", _text(raw, "id"), raw.get("data"))
    kind = _text(raw, "eventType")
    if kind is None:
        raise ParseError(f"a listed event has neither eventType (Event Grid) nor specversion (CloudEvents); {_KNOWN}")
    return _event_grid(kind, raw.get("data"))


# --- the formats ---------------------------------------------------------------------------------------


def _distribution(raw: Any, source: Source) -> Parsed:
    """One distribution event (ACR's webhook and Event Grid carry the same object)."""
    if not isinstance(raw, dict):
        raise ParseError("an event is not an object")
    action = _text(raw, "action")
    target = _object(raw, "target")
    request = _object(raw, "request", required=False)
    repository = _repository(_text(target, "repository"))
    tag = _tag(_text(target, "tag"))
    digest = _digest(_text(target, "digest"))
    host = _url_host(_text(target, "url")) or _host(_text(request, "host"))
    key = _text(raw, "id") or _key(raw)
    if action in ("push", "mount"):
        # A mount makes a blob of another repository this one's: like a push, it can mend a broken image.
        if tag is None and digest is None:
            raise ParseError(f"a {action} event of {repository} names neither tag nor digest")
        return _one(Event(source, key, Action.PUSH, repository, tag, digest, host))
    if action == "delete":
        return _one(Event(source, key, Action.DELETE, repository, tag, digest, host))
    return Parsed(ignored=[(source, "pull" if action == "pull" else "other")])


def _harbor(kind: str, data: dict[str, Any], key: str) -> Parsed:
    """Harbor's default format, and the ``data`` of its CloudEvents (the same object). Harbor's webhook
    handler sends PUSH_ARTIFACT, PULL_ARTIFACT and DELETE_ARTIFACT with one resource each; deleting an
    artifact deletes its tags (src/controller/event/handler/webhook/artifact/artifact.go)."""
    if kind in ("TAG_RETENTION", "harbor.tag_retention.finished"):
        return _harbor_retention(data, key)
    action = {
        "PUSH_ARTIFACT": Action.PUSH,
        "harbor.artifact.pushed": Action.PUSH,
        "DELETE_ARTIFACT": Action.DELETE,
        "harbor.artifact.deleted": Action.DELETE,
        "DELETE_TAG": Action.DELETE,
        "DELETE_REPOSITORY": Action.DELETE,
    }.get(kind)
    if action is None:
        return Parsed(ignored=[("harbor", "pull" if kind in ("PULL_ARTIFACT", "harbor.artifact.pulled") else "other")])
    repository = _repository(_text(_object(data, "repository"), "repo_full_name"))
    if kind == "DELETE_REPOSITORY":
        return _one(Event("harbor", key, action, repository))
    out = Parsed()
    for i, resource in enumerate(_list(data, "resources")):
        if not isinstance(resource, dict):
            raise ParseError("a Harbor resource is not an object")
        digest = _digest(_text(resource, "digest"))
        # Pushed or pulled by digest, Harbor puts the digest where the tag goes.
        reference = _text(resource, "tag")
        tag = None if reference is None or reference.startswith("sha256:") else _tag(reference)
        if kind == "DELETE_TAG" and tag is None:
            raise ParseError(f"a Harbor DELETE_TAG event of {repository} names no tag")
        if tag is None and digest is None:
            raise ParseError(f"a Harbor {kind} event of {repository} names neither tag nor digest")
        host = _host((_text(resource, "resource_url") or "").split("/", 1)[0] or None)
        out.events.append(Event("harbor", f"{key}:{i}", action, repository, tag, digest, host))
    return out


def _harbor_retention(data: dict[str, Any], key: str) -> Parsed:
    """A tag retention run. Harbor names one deleted artifact per run (its handler overwrites the list for
    each, src/controller/event/handler/webhook/artifact/retention.go): that tag's series go now, any
    others at the next walk."""
    retention = _object(data, "retention")
    project = _text(retention, "project_name")
    host = _host(_text(retention, "harbor_hostname"))
    out = Parsed()
    for i, artifact in enumerate(_list(retention, "deleted_artifact", required=False)):
        if not isinstance(artifact, dict):
            raise ParseError("a Harbor deleted_artifact is not an object")
        name, _, tag = (_text(artifact, "name_tag") or "").rpartition(":")
        if not project or not name or not tag:
            raise ParseError("a Harbor retention event names no project_name and repo:tag")
        out.events.append(
            Event("harbor", f"{key}:{i}", Action.DELETE, _repository(f"{project}/{name}"), _tag(tag), host=host)
        )
    return out


def _cloudevent(kind: str, event_id: str | None, data: Any) -> Parsed:
    if kind.startswith("harbor."):
        return _harbor(kind, _mapping(data, "harbor CloudEvent data"), event_id or _key(data))
    if kind.startswith("Microsoft."):
        return _event_grid(kind, data)
    # zot's type prefix is configurable (events.typePrefix): its types are known by their ending.
    if kind.endswith((".image.updated", ".image.deleted", ".image.lint_failed", ".repository.created")):
        return _zot(kind, event_id, _mapping(data, "zot CloudEvent data"))
    raise ParseError(f"CloudEvent type {kind[:100]!r} is not one of Harbor's, zot's or Event Grid's")


def _zot(kind: str, event_id: str | None, data: dict[str, Any]) -> Parsed:
    """zot's ``name``, ``reference`` (a tag, or the digest it was pushed by), ``digest``, ``mediaType``.
    Deleting by tag untags, and deletes the manifest when nothing else names it."""
    if not kind.endswith((".image.updated", ".image.deleted")):
        return Parsed(ignored=[("zot", "other")])
    repository = _repository(_text(data, "name"))
    digest = _digest(_text(data, "digest"))
    reference = _text(data, "reference")
    tag = None if reference is None or ":" in reference else _tag(reference)
    if tag is None and digest is None:
        raise ParseError(f"a zot event of {repository} names neither tag nor digest")
    action = Action.PUSH if kind.endswith(".image.updated") else Action.DELETE
    return _one(Event("zot", event_id or _key(data), action, repository, tag, digest))


def _event_grid(kind: str, data: Any) -> Parsed:
    if kind == _EVENT_GRID_VALIDATION:
        code = _text(_mapping(data, "Event Grid validation data"), "validationCode")
        if not code:
            raise ParseError("an Event Grid validation event carries no validationCode")
        return Parsed(validation_code=code[:200])
    if kind in ("Microsoft.ContainerRegistry.ImagePushed", "Microsoft.ContainerRegistry.ImageDeleted"):
        return _distribution(data, "acr")
    return Parsed(ignored=[("acr", "other")])


def _quay(doc: dict[str, Any]) -> Parsed:
    """``repo_push``: the tags pushed, by name only (Quay sends no delete event). Early Quay sent
    ``updated_tags`` as a mapping of tag to image id: its keys are the tags."""
    updated = doc.get("updated_tags")
    tags = list(updated) if isinstance(updated, dict) else _list(doc, "updated_tags", required=False)
    if not tags:
        return Parsed(ignored=[("quay", "other")])
    repository = _repository(_text(doc, "repository"))
    host = _host((_text(doc, "docker_url") or "").split("/", 1)[0] or None)
    key = _key(doc)
    out = Parsed()
    for tag in tags:
        if not isinstance(tag, str):
            raise ParseError("Quay's updated_tags holds a non-string")
        out.events.append(Event("quay", f"{key}:{tag}", Action.PUSH, repository, _tag(tag), host=host))
    return out


def _dockerhub(doc: dict[str, Any]) -> Parsed:
    """A push to Docker Hub: one tag, no digest; Hub sends no other event."""
    tag = _tag(_text(_object(doc, "push_data"), "tag"))
    if tag is None:
        raise ParseError("a Docker Hub push names no tag")
    repository = _repository(_text(_object(doc, "repository"), "repo_name"))
    return _one(Event("dockerhub", _key(doc), Action.PUSH, repository, tag, host="docker.io"))


def _ecr(doc: dict[str, Any]) -> Parsed:
    """EventBridge's "ECR Image Action": PUSH or DELETE of a digest, with the tag when there is one."""
    detail = _object(doc, "detail")
    if _text(doc, "detail-type") != "ECR Image Action" or _text(detail, "result") != "SUCCESS":
        return Parsed(ignored=[("ecr", "other")])
    action = {"PUSH": Action.PUSH, "DELETE": Action.DELETE}.get(_text(detail, "action-type") or "")
    if action is None:
        return Parsed(ignored=[("ecr", "other")])
    repository = _repository(_text(detail, "repository-name"))
    tag = _tag(_text(detail, "image-tag"))
    digest = _digest(_text(detail, "image-digest"))
    if tag is None and digest is None:
        raise ParseError(f"an ECR event of {repository} names neither tag nor digest")
    account, region = _text(doc, "account"), _text(doc, "region")
    host = _host(f"{account}.dkr.ecr.{region}.amazonaws.com") if account and region else None
    return _one(Event("ecr", _text(doc, "id") or _key(doc), action, repository, tag, digest, host))


# --- fields --------------------------------------------------------------------------------------------


def _one(event: Event) -> Parsed:
    return Parsed(events=[event])


def _key(raw: Any) -> str:
    """A stable id for an event that carries none: a retried delivery hashes the same."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{what} is not an object")
    return value


def _object(doc: dict[str, Any] | None, key: str, required: bool = True) -> dict[str, Any]:
    value = (doc or {}).get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ParseError(f"{key!r} is missing or not an object")
    return value


def _list(doc: dict[str, Any], key: str, required: bool = True) -> list[Any]:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{key!r} is missing or not a list")
    return value


def _text(doc: dict[str, Any] | None, key: str) -> str | None:
    """A string field; None when absent, null or empty (distribution v3 sends absent fields as "")."""
    value = (doc or {}).get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParseError(f"{key!r} is not a string")
    return value


def _repository(value: str | None) -> str:
    if value is None:
        raise ParseError("the event names no repository")
    try:
        return validate_repository(value)
    except InvalidReferenceError as exc:
        raise ParseError(str(exc)) from None


def _tag(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_tag(value)
    except InvalidReferenceError as exc:
        raise ParseError(str(exc)) from None


def _digest(value: str | None) -> Digest | None:
    if value is None:
        return None
    try:
        return Digest.parse(value)
    except DigestError as exc:
        raise ParseError(str(exc)) from None


def _host(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > _MAX_HOST or any(c.isspace() or c in "/@?#" for c in value):
        raise ParseError(f"registry host {value[:80]!r} is not a host name")
    return value.lower()


def _url_host(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        raise ParseError(f"target url {url[:80]!r} is not a URL") from None
    return _host(netloc or None)
