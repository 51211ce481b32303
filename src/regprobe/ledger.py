"""The verification ledger: what was verified when, per tag, per object and per blob, for one registry
(one shard of it) - the memory that lets a run be one step of continuous verification
(docs/design/continuous-verification.md).

SQLite from the standard library, WAL journal: each repository's verdicts are one transaction, so a run
killed at any point loses at most the repositories in flight. One writer at a time, enforced by an
exclusive ``flock`` on a lock file beside the database; a second run on the same ledger is refused
(:class:`LedgerBusyError`). A ledger that is missing, unreadable, corrupt or of another schema version is
set aside and rebuilt with a warning: it only makes the next run verify everything again, it never
loses a finding (findings come from the walk, not from the ledger).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

#: Bumped whenever the tables change; a ledger of another version is rebuilt, never migrated in place.
#: 2: tags.reaches and tags.problems (what a tag's walk reached, what of it was broken).
SCHEMA_VERSION = 2
#: Plan rows read from the snapshot at a time.
_PAGE = 1000

Verdict = Literal["ok", "broken", "skipped"]

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tags (
    repository  TEXT NOT NULL,
    tag         TEXT NOT NULL,
    digest      TEXT,
    first_seen  REAL NOT NULL,
    listed_at   REAL NOT NULL,
    verified_at REAL,
    verdict     TEXT,
    detail      TEXT,
    -- 8 bytes of sha256(digest) per object the last walk reached (reach_key): which tags a blob the
    -- scrub finds corrupt breaks, at 8 bytes an edge where a table of edges would take a row each.
    reaches     BLOB,
    -- JSON [[kind, digest or null], ...]: the broken objects behind a broken verdict.
    problems    TEXT,
    PRIMARY KEY (repository, tag)
) WITHOUT ROWID;
CREATE INDEX tags_by_age ON tags (verified_at);
CREATE TABLE objects (
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    verified_at REAL NOT NULL,
    verdict     TEXT NOT NULL,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE TABLE blobs (
    digest        TEXT PRIMARY KEY,
    size          INTEGER NOT NULL,
    repository    TEXT NOT NULL,
    scrubbed_at   REAL,
    scrub_verdict TEXT
) WITHOUT ROWID;
CREATE INDEX blobs_by_scrub ON blobs (scrubbed_at);
"""


class LedgerError(Exception):
    """The ledger cannot be opened or written (a directory that is not writable, a full disk)."""


class LedgerBusyError(LedgerError):
    """Another run holds this ledger: two writers would interleave their verdicts."""


#: A broken object as a tag's verdict remembers it: (kind, digest), digest None for a tag that does not
#: resolve at all.
Problem = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class TagVerdict:
    repository: str
    tag: str
    digest: str | None
    verdict: Verdict
    detail: str = ""
    #: Every object (by digest) the tag's walk reached.
    reaches: tuple[str, ...] = ()
    #: The broken objects among them (a broken verdict).
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectVerdict:
    repository: str
    digest: str
    kind: str  # model.Kind's value
    verdict: Verdict
    #: Blobs (config, layer) with their size feed the scrub; manifests have none.
    size: int | None = None
    #: The whole content was read and hashed (``blob_check: digest``, or a blob the scrub found corrupt
    #: before): it counts as scrubbed.
    hashed: bool = False


@dataclass(frozen=True, slots=True)
class Coverage:
    known: int
    within_window: int
    #: Seconds since the least recently verified known tag was verified (or first seen, if never).
    oldest_age: float


@dataclass(frozen=True, slots=True)
class TagState:
    repository: str
    tag: str
    digest: str | None
    verified_at: float | None
    verdict: Verdict | None
    detail: str


@dataclass(frozen=True, slots=True)
class BrokenTag:
    repository: str
    tag: str
    problems: tuple[Problem, ...]


def reach_key(digest: str) -> bytes:
    """The 8 bytes a tag's ``reaches`` keeps per object (a collision between two objects of one
    repository's tags is a 2^-64 chance)."""
    return hashlib.sha256(digest.encode()).digest()[:8]


def _reaches(packed: bytes | None, key: bytes) -> bool:
    if not packed:
        return False
    return any(packed[i : i + 8] == key for i in range(0, len(packed), 8))


def ledger_path(state_dir: str | Path, registry: str, shard: str | None = None) -> Path:
    """One file per registry and shard. The name is made safe for a file name, reversibly enough to
    tell two registries apart (``a/b`` and ``a_b`` do not collide)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", lambda m: f"%{ord(m.group()):02X}", registry)
    suffix = f".shard-{shard.replace('/', '-of-')}" if shard else ""
    return Path(state_dir) / f"{safe}{suffix}.ledger.sqlite"


class _Reader:
    """What a ledger says, for the run that holds it and for ``regprobe ledger`` beside it."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db

    def coverage(self, window: float, now: float) -> Coverage:
        known, within, oldest = self._db.execute(
            "SELECT count(*), coalesce(sum(verified_at >= ?), 0), min(coalesce(verified_at, first_seen)) FROM tags",
            (now - window,),
        ).fetchone()
        return Coverage(int(known), int(within), max(0.0, now - oldest) if oldest is not None else 0.0)

    def broken(self) -> list[TagState]:
        """Tags whose last verdict is broken: what the alert shows, whether or not this run reached them."""
        return self.tags(broken_only=True)

    def broken_tags(self) -> list[BrokenTag]:
        """The broken tags with the objects that broke them, by (repository, tag)."""
        rows = self._db.execute(
            "SELECT repository, tag, problems FROM tags WHERE verdict = 'broken' ORDER BY repository, tag"
        )
        return [BrokenTag(repository, tag, _problems(problems)) for repository, tag, problems in rows]

    def tags(self, *, broken_only: bool = False, limit: int | None = None) -> list[TagState]:
        """Tags by last verification, least recent first (never verified before all)."""
        where = "WHERE verdict = 'broken'" if broken_only else ""
        rows = self._db.execute(
            "SELECT repository, tag, digest, verified_at, verdict, coalesce(detail, '') FROM tags"  # noqa: S608
            f" {where} ORDER BY verified_at IS NOT NULL, verified_at, repository, tag LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [TagState(*row) for row in rows]

    def tag(self, repository: str, tag: str) -> TagState | None:
        row = self._db.execute(
            "SELECT repository, tag, digest, verified_at, verdict, coalesce(detail, '') FROM tags"
            " WHERE repository = ? AND tag = ?",
            (repository, tag),
        ).fetchone()
        return TagState(*row) if row else None

    def suspects(self) -> frozenset[str]:
        """Blobs the scrub last found broken: a walk hashes these whatever its ``blob_check``, so a tag's
        verdict rests on fresh evidence - a one-byte read cannot see a corrupt one."""
        return frozenset(d for (d,) in self._db.execute("SELECT digest FROM blobs WHERE scrub_verdict = 'broken'"))

    def oldest_scrub_age(self, now: float) -> float | None:
        """Seconds since the least recently scrubbed blob was scrubbed; None with no blob known. A blob
        never scrubbed counts from when the ledger was created."""
        (oldest,) = self._db.execute("SELECT min(coalesce(scrubbed_at, 0)) FROM blobs").fetchone()
        if oldest is None:
            return None
        created = float(self._meta("created") or now)
        return max(0.0, now - (oldest or created))

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None


class LedgerView(_Reader):
    """A ledger opened read-only, without its lock: SQLite readers are safe beside the run writing it
    (on a local volume). Never rebuilds anything: a ledger that is not readable as ours is an error."""

    @classmethod
    def open(cls, path: Path) -> LedgerView:
        if not path.exists():
            raise LedgerError(f"no ledger at {path} (no run with this state_dir has recorded anything yet)")
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            (version,) = db.execute("PRAGMA user_version").fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"ledger {path} is unreadable ({exc})") from None
        if version != SCHEMA_VERSION:
            db.close()
            raise LedgerError(
                f"ledger {path} has schema version {version}, not {SCHEMA_VERSION}: the next run rebuilds it"
            )
        return cls(path, db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LedgerView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Ledger(_Reader):
    """An open, locked ledger. Use :meth:`open`; close with :meth:`close` (or as a context manager)."""

    def __init__(self, path: Path, db: sqlite3.Connection, lock_fd: int) -> None:
        super().__init__(path, db)
        self._lock_fd = lock_fd

    # -- opening ------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, identity: str, now: float | None = None) -> Ledger:
        """Lock and open the ledger at ``path`` for the registry ``identity`` (its name and URL: a ledger
        written for another registry is foreign and rebuilt). Raises :class:`LedgerBusyError` when another
        process holds it, :class:`LedgerError` when it cannot be opened or written."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(lock_fd)
            os.close(lock_fd)
            raise LedgerBusyError(f"ledger {path} is held by another run{holder}") from None
        try:
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, str(os.getpid()).encode(), 0)
            db = _open_checked(path, identity, time.time() if now is None else now)
        except (OSError, sqlite3.Error) as exc:
            os.close(lock_fd)
            raise LedgerError(f"cannot open the ledger {path}: {getattr(exc, 'strerror', None) or exc}") from None
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, db, lock_fd)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        os.close(self._lock_fd)  # releases the flock

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listing ------------------------------------------------------------------------------------

    def note_listed(self, repository: str, tags: Iterable[str], now: float) -> None:
        """The run's listing returned these tags: new ones are inserted as never verified."""
        with self._db:
            self._db.executemany(
                "INSERT INTO tags (repository, tag, first_seen, listed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (repository, tag) DO UPDATE SET listed_at = excluded.listed_at",
                ((repository, tag, now, now) for tag in tags),
            )

    def forget_unlisted(self, listed_since: float, repositories: Sequence[str] | None = None) -> int:
        """After a listing that completed: drop tags it did not return (deleted since). ``repositories``
        limits it to those listed (a shard, a selection); None: every tag. Returns how many went."""
        with self._db:
            if repositories is None:
                cursor = self._db.execute("DELETE FROM tags WHERE listed_at < ?", (listed_since,))
            else:
                cursor = self._db.executemany(
                    "DELETE FROM tags WHERE repository = ? AND listed_at < ?",
                    ((r, listed_since) for r in repositories),
                )
            return cursor.rowcount

    def forget_repositories_except(self, keep: Iterable[str]) -> int:
        """After a complete listing: drop repositories that are gone from it (or no longer selected)."""
        keep_set = set(keep)
        known = [r for (r,) in self._db.execute("SELECT DISTINCT repository FROM tags")]
        gone = [r for r in known if r not in keep_set]
        with self._db:
            for table in ("tags", "objects"):
                self._db.executemany(f"DELETE FROM {table} WHERE repository = ?", ((r,) for r in gone))  # noqa: S608
        return len(gone)

    def age_out(self, older_than: float) -> None:
        """Forget objects no walk has reached since ``older_than`` (no tag reaches them any more, or they
        went with their repository), and blobs no object row names."""
        with self._db:
            self._db.execute("DELETE FROM objects WHERE verified_at < ?", (older_than,))
            self._db.execute("DELETE FROM blobs WHERE digest NOT IN (SELECT digest FROM objects)")

    # -- planning -----------------------------------------------------------------------------------

    def plan(self, listed_since: float) -> Iterator[tuple[str, str]]:
        """Tags listed by this run (``listed_at >= listed_since``) in verification order: broken at the
        last look, then never verified, then the least recently verified. Ties by name, so two runs over
        one state plan alike, and tags verified together (a repository's, in one commit) stay together.

        The order is a snapshot taken now (a temporary table), read a page at a time: the verdicts the run
        records while it walks the plan do not reorder what is still to come."""
        with self._db:
            self._db.execute("DROP TABLE IF EXISTS temp.plan")
            self._db.execute("CREATE TEMP TABLE plan (seq INTEGER PRIMARY KEY, repository TEXT, tag TEXT)")
            self._db.execute(
                "INSERT INTO temp.plan (repository, tag) SELECT repository, tag FROM tags WHERE listed_at >= ?"
                " ORDER BY coalesce(verdict = 'broken', 0) DESC, (verified_at IS NULL) DESC, verified_at,"
                " repository, tag",
                (listed_since,),
            )
        seq = 0
        while True:
            page = self._db.execute(
                "SELECT seq, repository, tag FROM temp.plan WHERE seq > ? ORDER BY seq LIMIT ?", (seq, _PAGE)
            ).fetchall()
            if not page:
                return
            for _, repository, tag in page:
                yield repository, tag
            seq = page[-1][0]

    def mark_changed(self, repository: str, tag: str | None = None) -> None:
        """An event says the tag (or the whole repository) changed: verify it again before the others
        of its age."""
        with self._db:
            if tag is None:
                self._db.execute("UPDATE tags SET verified_at = NULL WHERE repository = ?", (repository,))
            else:
                self._db.execute(
                    "UPDATE tags SET verified_at = NULL WHERE repository = ? AND tag = ?", (repository, tag)
                )

    # -- recording ----------------------------------------------------------------------------------

    def record(self, tags: Iterable[TagVerdict], objects: Iterable[ObjectVerdict], now: float) -> None:
        """One repository's verdicts, in one transaction (a crash keeps all of them or none)."""
        object_rows = list(objects)
        with self._db:
            self._db.executemany(
                "INSERT INTO tags (repository, tag, digest, first_seen, listed_at, verified_at, verdict, detail,"
                " reaches, problems) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest,"
                " verified_at = excluded.verified_at, verdict = excluded.verdict, detail = excluded.detail,"
                " reaches = excluded.reaches, problems = excluded.problems",
                (
                    (
                        t.repository,
                        t.tag,
                        t.digest,
                        now,
                        now,
                        now,
                        t.verdict,
                        t.detail[:500],
                        b"".join(sorted({reach_key(d) for d in t.reaches})),
                        json.dumps(t.problems) if t.problems else None,
                    )
                    for t in tags
                ),
            )
            self._db.executemany(
                "INSERT INTO objects (repository, digest, kind, verified_at, verdict) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (repository, digest) DO UPDATE SET kind = excluded.kind,"
                " verified_at = excluded.verified_at, verdict = excluded.verdict",
                ((o.repository, o.digest, o.kind, now, o.verdict) for o in object_rows),
            )
            self._db.executemany(
                "INSERT INTO blobs (digest, size, repository) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING",
                ((o.digest, o.size, o.repository) for o in object_rows if o.size is not None),
            )
            self._db.executemany(
                "UPDATE blobs SET scrubbed_at = ?, scrub_verdict = ? WHERE digest = ?",
                ((now, o.verdict, o.digest) for o in object_rows if o.hashed and o.verdict != "skipped"),
            )

    def mark_broken(self, repository: str, tags: Iterable[str], problem: Problem, detail: str) -> None:
        """The scrub found an object these tags reach corrupt: they are broken until a walk says otherwise
        (and are verified first, hashing that blob, in the next run)."""
        with self._db:
            for tag in tags:
                row = self._db.execute(
                    "SELECT problems FROM tags WHERE repository = ? AND tag = ?", (repository, tag)
                ).fetchone()
                if row is None:
                    continue
                problems = [p for p in _problems(row[0]) if p != problem] + [problem]
                self._db.execute(
                    "UPDATE tags SET verdict = 'broken', detail = ?, problems = ? WHERE repository = ? AND tag = ?",
                    (detail[:500], json.dumps(problems), repository, tag),
                )

    def forget_tags(self, repository: str, tags: Iterable[str] | None = None) -> None:
        """A tag (or a repository) deleted, as an event says: nothing to verify any more."""
        with self._db:
            if tags is None:
                self._db.execute("DELETE FROM tags WHERE repository = ?", (repository,))
                self._db.execute("DELETE FROM objects WHERE repository = ?", (repository,))
            else:
                self._db.executemany(
                    "DELETE FROM tags WHERE repository = ? AND tag = ?", ((repository, t) for t in tags)
                )

    # -- scrub --------------------------------------------------------------------------------------

    def scrub_candidates(self, byte_budget: int) -> list[tuple[str, int, str]]:
        """(digest, size, a repository linking it) of the least recently scrubbed blobs, never-scrubbed
        first, up to ``byte_budget`` bytes - at least one blob when any is known, however large, so a blob
        bigger than the budget is not skipped for ever."""
        chosen: list[tuple[str, int, str]] = []
        spent = 0
        for digest, size, repository in self._db.execute(
            "SELECT digest, size, repository FROM blobs ORDER BY scrubbed_at IS NOT NULL, scrubbed_at, digest"
        ):
            if chosen and spent + size > byte_budget:
                break
            chosen.append((digest, size, repository))
            spent += size
        return chosen

    def record_scrub(self, digest: str, verdict: Verdict, now: float) -> None:
        with self._db:
            self._db.execute(
                "UPDATE blobs SET scrubbed_at = ?, scrub_verdict = ? WHERE digest = ?", (now, verdict, digest)
            )

    def forget_blob(self, digest: str) -> None:
        """A blob no known tag reaches any more (its repository no longer links it): nothing to scrub."""
        with self._db:
            self._db.execute("DELETE FROM blobs WHERE digest = ?", (digest,))

    def reaching(self, digest: str) -> list[tuple[str, str, list[str]]]:
        """Each (repository, kind, tags reaching it) the ledger knows for ``digest``: one scan of the
        objects (rare: only for a blob the scrub found broken)."""
        found = []
        key = reach_key(digest)
        rows = self._db.execute("SELECT repository, kind FROM objects WHERE digest = ?", (digest,)).fetchall()
        for repository, kind in rows:
            tags = [
                tag
                for tag, packed in self._db.execute(
                    "SELECT tag, reaches FROM tags WHERE repository = ? ORDER BY tag", (repository,)
                )
                if _reaches(packed, key)
            ]
            found.append((repository, kind, tags))
        return found


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _open_checked(path: Path, identity: str, now: float) -> sqlite3.Connection:
    """Open the ledger, or set it aside and start a new one when it is not a ledger this code wrote for
    this registry: corrupt, truncated, another schema version, another registry."""
    if path.exists():
        problem = _problem(path, identity)
        if problem is None:
            return _connect(path)
        aside = path.with_name(f"{path.name}.corrupt")
        log.warning("ledger %s %s: set aside as %s; this run verifies every tag again", path, problem, aside.name)
        os.replace(path, aside)
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{extra}")
    db = _connect(path)
    with db:
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("identity", identity), ("created", repr(now))],
        )
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return db


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a committed transaction survives a process crash; only a power loss may drop the
    # last ones, which costs re-verification, never a finding.
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA busy_timeout = 5000")
    return db


def _problem(path: Path, identity: str) -> str | None:
    try:
        # Not read-only: a WAL ledger left by a killed run is recovered on opening, which writes.
        db = sqlite3.connect(path)
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version != SCHEMA_VERSION:
                return f"has schema version {version}, not {SCHEMA_VERSION}"
            (check,) = db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                return f"is corrupt ({str(check)[:100]})"
            row = db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
            if row is None or row[0] != identity:
                return "was written for another registry"
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"is unreadable ({exc})"
    return None


def _problems(text: str | None) -> tuple[Problem, ...]:
    if not text:
        return ()
    return tuple((str(kind), None if digest is None else str(digest)) for kind, digest in json.loads(text))


def broken_objects(tags: Iterable[BrokenTag]) -> Counter[str]:
    """Distinct broken objects by kind behind ``tags``, counted as a run's findings are: one per object
    per repository, and one per tag that does not resolve at all."""
    seen = {(t.repository, kind, digest or f"tag:{t.tag}") for t in tags for kind, digest in t.problems}
    return Counter(kind for _, kind, _ in seen)
