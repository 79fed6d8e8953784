"""The versions of looked-up rows, on disk (SQLite), with the hot keys in memory.

Every change of a looked-up table becomes a *version* of its row: the row as Debezium wrote it (or
"deleted"), its place in the source's commit order and its commit time. A lookup asks for the
newest version at or before a commit (`as_of`), or, for a change that may wait, the first one after
it (`first_after`). Versions are kept until no change still to be processed can ask for them
(`prune`).

Why SQLite: the store must hold a million rows and more with a bounded memory (the rest on disk),
survive restarts, and be rebuilt from the staging topics when the disk is empty. SQLite is in the
standard library, transactional (versions and the topic offsets they came from are committed
together, so a restart resumes exactly where the store stopped), and an indexed point query costs a
few microseconds; the keys read most are served from memory (`RowCache`). bench/README.md has the
measurements (`make bench`, lookup benchmark; `bench/store_choice.py` against RocksDB).

The disk is a cache: nothing here is the only copy of anything. A missing or unreadable file is
rebuilt from the staging topics.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import orjson

from eventbus.debezium.connect_schema import ConnectTableSchema
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.logical_types import PLACEHOLDER

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS versions (
    tbl TEXT NOT NULL, key TEXT NOT NULL, commit_pos INTEGER NOT NULL, lsn INTEGER NOT NULL,
    ts_ms INTEGER, row BLOB, schema TEXT,
    PRIMARY KEY (tbl, key, commit_pos, lsn)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schemas (fingerprint TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_FORMAT: Final = "2"  # 2: decimal keys by their number (12.30 is 12.3)


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a related row: `row` None means the row was deleted at this position."""

    commit: int
    lsn: int
    ts_ms: int | None
    row: dict[str, Any] | None
    schema: str | None  # fingerprint of the table version (its converters)
    # The row's columns as a lookup reads them (converted), per set of columns read (named by
    # `columns_key`): built on the first read, so a row read by many changes is converted once.
    decoded: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def position(self) -> tuple[int, int]:
        return (self.commit, self.lsn)


def columns_key(columns: tuple[str, ...]) -> str:
    """How `Version.decoded` names a set of columns (a string: its hash is computed once)."""
    return "\x1f".join(columns)


class RowCache:
    """One table's hot rows in memory, as two generations rather than an exact LRU: a hit in the
    recent generation is one dict read with no reordering (the resolver reads `recent` directly). A
    row found in the older generation moves to the recent one; when the recent one is full it becomes
    the older one and the previous older one is dropped. A row read at least once a generation stays
    cached; at most twice `generation` rows are held."""

    __slots__ = ("generation", "older", "recent")

    def __init__(self, generation: int) -> None:
        self.generation = max(1, generation)
        self.recent: dict[str, list[Version]] = {}  # never replaced: readers may hold it
        self.older: dict[str, list[Version]] = {}

    def get(self, key: str) -> list[Version] | None:
        versions = self.recent.get(key)
        if versions is None:
            versions = self.older.pop(key, None)
            if versions is not None:
                self.put(key, versions)
        return versions

    def put(self, key: str, versions: list[Version]) -> None:
        recent = self.recent
        recent[key] = versions
        if len(recent) >= self.generation:
            self.older = dict(recent)
            recent.clear()

    def clear(self) -> None:
        self.recent.clear()
        self.older.clear()

    def __len__(self) -> int:
        return len(self.recent) + len(self.older)


class TableVersion(Protocol):
    """What reading a stored row needs of its table version: its columns and their converters
    (a `ConnectTableSchema`, whose `fingerprint` names it in `Version.schema`)."""

    @property
    def fingerprint(self) -> str | None: ...

    @property
    def columns(self) -> Mapping[str, Any]: ...

    def converter(self, column: str) -> Callable[[Any], Any]: ...


class VersionStore:
    """Versions per (table, key) in SQLite; `path=None` keeps everything in memory (offline runs)."""

    def __init__(self, path: Path | None = None, *, cached_keys: int = 100_000) -> None:
        """`cached_keys`: rows kept in memory per table at most (the hot ones); the rest is read from disk."""
        self.path = path
        self._db = self._open(path)
        self._cache: dict[str, RowCache] = {}  # table → its hot rows
        self._cached_keys = cached_keys
        self._schemas: dict[str, TableVersion] = {}
        self._pending: list[tuple[Any, ...]] = []
        self.rows_written = 0

    @staticmethod
    def _open(path: Path | None) -> sqlite3.Connection:
        if path is None:
            db = sqlite3.connect(":memory:", isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None)
            # A lost write costs a re-read from the topic, never a wrong answer: the offsets are
            # committed in the same SQLite transaction as the versions they produced.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-8192")  # 8 MiB of pages: memory stays bounded
        db.executescript(_SCHEMA)
        found = db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
        if found is None:
            db.execute("INSERT INTO meta VALUES ('format', ?)", (_FORMAT,))
        elif found[0] != _FORMAT:
            raise StoreFormatError(f"lookup store {path} has format {found[0]}, expected {_FORMAT}")
        return db

    def close(self) -> None:
        self.flush()
        self._db.close()

    # --- writing ----------------------------------------------------------------------------------

    def add(self, table: str, key: str, version: Version) -> None:
        """Record a version; durable with the next `commit_offsets` (or earlier: writes are idempotent).

        Raises `UnstorableRowError`, with nothing recorded, for a row the store cannot hold."""
        row = version.row
        if row is not None and PLACEHOLDER in row.values():
            # An update that did not send an unchanged TOAST value: take it from the version before.
            earlier = _newest_before(self.versions(table, key), version.position)
            if earlier is not None and earlier.row is not None:
                row = {c: (earlier.row.get(c, v) if v == PLACEHOLDER else v) for c, v in row.items()}
                version = Version(version.commit, version.lsn, version.ts_ms, row, version.schema)
        # Encoded before the cache sees the version: a row refused here leaves no trace.
        stored = None
        if row is not None:
            try:
                stored = orjson.dumps(row)
            except TypeError:
                raise UnstorableRowError(table, _unstorable_columns(row)) from None
        cached = self.cache_of(table).get(key)
        if cached is not None:
            _insert(cached, version)
        self._pending.append(
            (table, key, version.commit, version.lsn, version.ts_ms, stored, version.schema)
        )  # fmt: skip

    def add_table_schema(self, table: TableVersion) -> None:
        """A table version the caller built (offline runs: a decoded record's, or the converters of
        inline tests' `given:` rows): in memory only, as an offline store is (`path=None`); the
        service's feeder stores the Connect schema itself (`add_schema`)."""
        if table.fingerprint is not None:
            self._schemas.setdefault(table.fingerprint, table)

    def add_schema(self, fingerprint: str, schema: Any) -> None:
        if fingerprint in self._schemas:
            return
        self._schemas[fingerprint] = ConnectTableSchema.from_connect_schema(schema, fingerprint=fingerprint)
        self._db.execute("INSERT OR IGNORE INTO schemas VALUES (?, ?)", (fingerprint, orjson.dumps(schema)))

    def has_schema(self, fingerprint: str) -> bool:
        if fingerprint in self._schemas:
            return True
        found = self._db.execute("SELECT body FROM schemas WHERE fingerprint = ?", (fingerprint,)).fetchone()
        if found is None:
            return False
        self._schemas[fingerprint] = ConnectTableSchema.from_connect_schema(
            orjson.loads(found[0]), fingerprint=fingerprint
        )
        return True

    def table_schema(self, fingerprint: str | None) -> TableVersion | None:
        if fingerprint is None or not self.has_schema(fingerprint):
            return None
        return self._schemas[fingerprint]

    def commit_offsets(
        self, offsets: dict[tuple[str, int], int], progress: dict[str, dict[str, int]] | None = None
    ) -> None:
        """Make the added versions durable together with the topic offsets they were read up to, and
        what those records said of the sources' progress (`progress()`).

        Versions may also be written earlier (`flush`): rewriting one is harmless, so a crash between
        the two only means reading a little of the topic again."""
        db = self._db
        db.execute("BEGIN")
        try:
            self._write_pending()
            db.executemany(
                "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                [(topic, partition, offset) for (topic, partition), offset in offsets.items()],
            )
            if progress is not None:
                saved = orjson.dumps(progress).decode()
                db.execute("INSERT OR REPLACE INTO meta VALUES ('progress', ?)", (saved,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def flush(self) -> None:
        """Write the added versions (without moving any offset)."""
        if self._pending:
            self.commit_offsets({})

    def _write_pending(self) -> None:
        if self._pending:
            self._db.executemany(
                "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?, ?, ?)", self._pending
            )
            self.rows_written += len(self._pending)
            self._pending.clear()

    def progress(self) -> dict[str, dict[str, int]]:
        """The sources' progress as of the offsets read (what the feeder gave `commit_offsets`): a
        store resumed after a restart knows how far its sources were, before it reads anything new."""
        found = self._db.execute("SELECT value FROM meta WHERE name = 'progress'").fetchone()
        if found is None:
            return {}
        document = orjson.loads(found[0])
        return document if isinstance(document, dict) else {}

    def offsets(self) -> dict[tuple[str, int], int]:
        """Where each related topic partition was read up to (the next offset to read)."""
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(topic, partition): offset for topic, partition, offset in rows}

    # --- reading ----------------------------------------------------------------------------------

    def as_of(self, table: str, key: str, commit: int) -> Version | None:
        """The newest version committed at or before `commit` (None: no version then)."""
        versions = self.versions(table, key)
        for version in reversed(versions):
            if version.commit <= commit:
                return version
        return None

    def first_after(self, table: str, key: str, commit: int) -> Version | None:
        """The first version committed after `commit`."""
        for version in self.versions(table, key):
            if version.commit > commit:
                return version
        return None

    def latest(self, table: str, key: str) -> Version | None:
        versions = self.versions(table, key)
        return versions[-1] if versions else None

    def versions(self, table: str, key: str) -> list[Version]:
        """Every version of one row, oldest first (the list is the cache's: do not change it)."""
        cache = self.cache_of(table)
        versions = cache.get(key)
        if versions is not None:
            return versions
        return self._load(table, key, cache)

    def cache_of(self, table: str) -> RowCache:
        """The in-memory rows of one table (the resolver reads it directly on its hot path). The
        object lives as long as the store: it is cleared in place, never replaced."""
        cache = self._cache.get(table)
        if cache is None:
            cache = self._cache[table] = RowCache(self._cached_keys // 2)
        return cache

    def _load(self, table: str, key: str, cache: RowCache) -> list[Version]:
        self.flush()  # a version added since the last write must be found by the query
        versions = [
            Version(commit, lsn, ts_ms, None if row is None else orjson.loads(row), schema)
            for commit, lsn, ts_ms, row, schema in self._db.execute(
                "SELECT commit_pos, lsn, ts_ms, row, schema FROM versions WHERE tbl = ? AND key = ? "
                "ORDER BY commit_pos, lsn",
                (table, key),
            )
        ]
        cache.put(key, versions)
        return versions

    # --- housekeeping -----------------------------------------------------------------------------

    def prune(self, below_commit: int) -> int:
        """Drop versions no lookup can still need: per key, those older than its newest version
        committed at or before `below_commit` (the oldest commit a change still to be processed can
        have). Returns how many were dropped."""
        self.flush()
        db = self._db
        db.execute("BEGIN")
        cursor = db.execute(
            """
            DELETE FROM versions AS v
            WHERE v.commit_pos < ? AND EXISTS (
                SELECT 1 FROM versions AS newer
                WHERE newer.tbl = v.tbl AND newer.key = v.key
                  AND newer.commit_pos <= ?
                  AND (newer.commit_pos, newer.lsn) > (v.commit_pos, v.lsn)
            )
            """,
            (below_commit, below_commit),
        )
        dropped = cursor.rowcount
        db.execute("COMMIT")
        if dropped:
            # In place: a resolver holds these caches; a replaced one would serve stale rows.
            for cache in self._cache.values():
                cache.clear()
        return dropped

    def row_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM versions").fetchone()[0]) + len(self._pending)

    def size_bytes(self) -> int:
        if self.path is None or not self.path.exists():
            return 0
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


class StoreFormatError(Exception):
    """The store file was written by an incompatible version: delete it, it is rebuilt."""


class UnstorableRowError(DecodeError):
    """A row with a value the store's JSON cannot hold: an integer beyond 64 bits (a numeric
    column without scale, or a decimal written as a number). Its version is not stored.

    A `DecodeError`, so a recorded change in `mapping run` is dead-lettered like an undecodable one;
    the service's feeder skips the record with a warning (a compacted staging topic keeps it, so
    stopping would stop every start)."""

    def __init__(self, table: str, columns: list[str]) -> None:
        shown = ", ".join(repr(column) for column in columns) or "(a column)"
        super().__init__(
            f"looked-up table {table}: column {shown} holds an integer beyond 64 bits, which the "
            "lookup store cannot hold; the row is not stored, so lookups of it find the version "
            "before (or none)",
            column=columns[0] if columns else None,
        )
        self.table = table
        self.columns = columns


def _unstorable_columns(row: dict[str, Any]) -> list[str]:
    """The columns whose value `orjson.dumps` refuses (only asked after it refused the row)."""
    unstorable = []
    for column, value in row.items():
        try:
            orjson.dumps(value)
        except TypeError:
            unstorable.append(column)
    return unstorable


def _newest_before(versions: list[Version], position: tuple[int, int]) -> Version | None:
    for version in reversed(versions):
        if version.position < position:
            return version
    return None


def _insert(versions: list[Version], version: Version) -> None:
    """Keep the list ordered by position; a version at an existing position replaces it (a replayed
    staging record, or a snapshot read of a row that was read before)."""
    position = version.position
    for index in range(len(versions) - 1, -1, -1):
        here = versions[index].position
        if here == position:
            versions[index] = version
            return
        if here < position:
            versions.insert(index + 1, version)
            return
    versions.insert(0, version)
