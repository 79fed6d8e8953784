"""Answers to a mapping's lookups: the related row as of the triggering change's source commit.

The rule, for a change committed at position T (its transaction's place in the source log) at
source time `ts`:

1. The newest version of the related row committed at or before T is the answer — a version
   committed later never shows, so an event does not change when the parent is updated after it.
   A row deleted at or before T is missing.
2. No version at or before T: the row did not exist yet when the change committed. The change may
   wait (`wait:`, in *source* time) for the row to appear: the first later version committed by
   `ts + wait` is the answer.
3. Otherwise the row is missing and `on_missing` decides: `skip` (no event), `null` (its columns
   are null) or `dead_letter` (the record goes to the dead-letter topic with the reason). Missing is
   decided once the source is known to have passed `ts + wait` (the newest commit time read up to
   the barrier, or the newest heartbeat's time less the change's own streaming lag: a connector
   behind its source writes heartbeats of now about changes of earlier), also when `wait` is 0;
   until then the change is *pending* (`LookupPending`) and the service parks it.

The answer depends only on what the staging topics hold, not on when the transformer read them,
so a replay gives the same events. That requires the store to hold every version committed at or
before T when the change is evaluated: the service catches the related topics up to their last
stable offset first (see `feeder.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.lookups.store import Version, VersionStore, columns_key
from eventbus.mapping.errors import LookupPending
from eventbus.mapping.functions import LookupMissingError, text_of
from eventbus.mapping.lookups import LOOKUP_SKIP, LookupPlan

NEVER: Final = float("inf")
_KEY_SEPARATOR: Final = "\x1f"
_ZERO: Final = Decimal(0)


def key_text(values: Sequence[Any]) -> str | None:
    """The canonical text of a key (None when a part is null: no row can have that key)."""
    parts = []
    for value in values:
        if value is None or value is UNAVAILABLE:
            return None
        if value.__class__ is Decimal:
            # The number, not its scale: 12.3 finds the numeric(10,2) key 12.30, and 5 the key 5.00
            value = _ZERO if value.is_zero() else value.normalize()
        parts.append(text_of(value))
    return parts[0] if len(parts) == 1 else _KEY_SEPARATOR.join(parts)


def table_id(connector: str, table: str, key_columns: Sequence[str]) -> str:
    """How the store names one related table: its source, name and the key its rows are read by."""
    return f"{connector}/{table}({','.join(key_columns)})"


# Where a lookup's counts are among its five places in the resolver's tally.
HITS, WAITED, WAIT_MS, MISSING, PENDING = range(5)


@dataclass(frozen=True, slots=True)
class LookupStats:
    """One lookup's counts for /metrics, per mapping and lookup name: its five places in the
    resolver's tally (one flat list, so a mapping run that does not count is undone by a copy)."""

    tally: list[int]
    at: int

    @property
    def hits(self) -> int:  # found as of the change's commit
        return self.tally[self.at + HITS]

    @property
    def waited(self) -> int:  # found after waiting for a later version
        return self.tally[self.at + WAITED]

    @property
    def wait_ms(self) -> int:  # source time waited, summed
        return self.tally[self.at + WAIT_MS]

    @property
    def missing(self) -> int:  # on_missing applied
        return self.tally[self.at + MISSING]

    @property
    def pending(self) -> int:  # changes parked, waiting
        return self.tally[self.at + PENDING]


class LookupFunctions(tuple[Callable[[Any], Any], ...]):
    """What a compiled mapping is given for its lookups: one function per lookup, by
    `LookupPlan.index`, and the resolver's `tally` of counts they add to."""

    tally: list[int]

    def __new__(cls, functions: Sequence[Callable[[Any], Any]], tally: list[int]) -> LookupFunctions:
        made = super().__new__(cls, functions)
        made.tally = tally
        return made


@dataclass(slots=True)
class LookupResolver:
    """Resolves lookups against one `VersionStore`; `at()` sets the triggering change first."""

    store: VersionStore
    # Source → the newest source time up to which every change is known to be in the store (set
    # by the service after each catch-up): the newest commit time of the changes read. None offline:
    # every record is known before any runs.
    progress_ts: dict[str, int] | None = None
    # Source → the time of its newest Debezium heartbeat read. It is the connector's clock when it
    # wrote the heartbeat, not a commit time: while the connector is behind (a backlog, a large
    # transaction) the changes it has yet to stream were committed before that time. So a
    # heartbeat counts as progress only less the triggering change's own lag (`at`).
    heartbeat_ts: dict[str, int] | None = None
    stats: dict[tuple[str, str], LookupStats] = field(default_factory=dict)
    tally: list[int] = field(default_factory=list)  # every lookup's counts (`LookupStats`)
    _commit: int = 0
    _ts_ms: int = 0
    _lag_ms: int = 0

    @property
    def commit(self) -> int:
        """The commit position of the change being evaluated."""
        return self._commit

    def at(self, commit: int, ts_ms: int | None, lag_ms: int = 0) -> None:
        """The triggering change: its transaction's commit position and source time, and how long
        after its commit the connector streamed it (Debezium's envelope `ts_ms` less `source.ts_ms`)."""
        self._commit = commit
        self._ts_ms = ts_ms or 0
        self._lag_ms = max(0, lag_ms)

    def for_mapping(self, mapping: str, plans: Sequence[LookupPlan]) -> LookupFunctions:
        """The functions a compiled mapping calls for its lookups: `_lk[plan.index](key)`, where `key`
        is the value of a one-column key and the tuple of values of a longer one."""
        functions = []
        ordered = sorted(plans, key=lambda p: p.index)
        if [p.index for p in ordered] != list(range(len(ordered))):
            raise ValueError(f"mapping {mapping}: lookups must be given all, indexed from 0")
        for plan in ordered:
            stats = self.stats.get((mapping, plan.name))
            if stats is None:
                stats = self.stats[mapping, plan.name] = LookupStats(self.tally, len(self.tally))
                self.tally.extend((0, 0, 0, 0, 0))
            one = _Bound(plan, table_id(plan.connector, plan.table, plan.key_columns), stats)
            functions.append(self._function(one))
        return LookupFunctions(functions, self.tally)

    def _function(self, one: _Bound) -> Callable[[Any], Any]:
        resolve, store, table = self._resolve, self.store, one.table
        if not one.commit_order:
            if one.single:
                return lambda value: resolve(one, key_text((value,)))
            return lambda key: resolve(one, key_text(key))
        # The usual case inline (a hot path: two lookups may cost more than the rest of the mapping):
        # a cached row whose newest version at the change's commit is the answer.
        recent = store.cache_of(table).recent.get
        versions_of, decoded_key, row_of = store.versions, one.columns_key, one.row
        tally, hits = self.tally, one.stats.at + HITS

        def as_of_commit(text: str | None) -> Any:
            if text is not None:
                versions = recent(text)
                if versions is None:
                    versions = versions_of(table, text)
                commit = self._commit
                for version in reversed(versions):
                    if version.commit <= commit:
                        if version.row is not None:
                            tally[hits] += 1
                            decoded = version.decoded.get(decoded_key)
                            return decoded if decoded is not None else row_of(version, store)
                        break
            return resolve(one, text)

        if not one.single:
            return lambda key: as_of_commit(key_text(key))

        def single_column_key(value: Any) -> Any:
            kind = value.__class__
            if kind is int:
                return as_of_commit(str(value))
            if kind is str:
                return as_of_commit(value)
            return as_of_commit(key_text((value,)))

        return single_column_key

    def _resolve(self, bound: _Bound, text: str | None) -> Any:
        plan, tally, at = bound.plan, self.tally, bound.stats.at
        if text is None:
            return self._missing(bound, "its key is null")
        store = self.store
        versions = store.versions(bound.table, text)
        found = None
        if plan.consistency == "latest":
            found = versions[-1] if versions else None
        else:
            commit = self._commit
            for version in reversed(versions):
                if version.commit <= commit:
                    found = version
                    break
        if found is not None:
            if found.row is None:
                return self._missing(bound, "the row was deleted before the change committed")
            tally[at + HITS] += 1
            return bound.row(found, store)
        deadline = self._ts_ms + plan.wait_ms
        later = None
        if plan.consistency != "latest":
            later = next((v for v in versions if v.commit > self._commit), None)
        if later is not None and later.row is not None and (later.ts_ms or 0) <= deadline:
            tally[at + WAITED] += 1
            tally[at + WAIT_MS] += max(0, (later.ts_ms or 0) - self._ts_ms)
            return bound.row(later, store)
        progress = self._progress(plan.connector)
        # Even without a wait the source must have passed the change's commit: a large source
        # transaction reaches Kafka in several Connect transactions, so a row of its own may still
        # be on its way when the change is read.
        if later is not None or progress > deadline:
            if plan.consistency == "latest":
                return self._missing(bound, "no row known (consistency: latest)" + (
                    f", nor within wait {plan.wait_ms} ms" if plan.wait_ms else ""))  # fmt: skip
            return self._missing(bound, "no row as of the change's commit" + (
                f" nor within wait {plan.wait_ms} ms after it" if plan.wait_ms else ""))  # fmt: skip
        tally[at + PENDING] += 1
        raise LookupPending(plan.name, plan.table)

    def _progress(self, source: str) -> float:
        """The source time up to which every change of `source` is known to be in the store."""
        if self.progress_ts is None:
            return NEVER
        progress = self.progress_ts.get(source, 0)
        heartbeat = (self.heartbeat_ts or {}).get(source)
        if heartbeat is not None:
            progress = max(progress, heartbeat - self._lag_ms)
        return progress

    @staticmethod
    def _missing(bound: _Bound, why: str) -> Any:
        bound.stats.tally[bound.stats.at + MISSING] += 1
        plan = bound.plan
        if plan.on_missing == "skip":
            return LOOKUP_SKIP
        if plan.on_missing == "null":
            return None
        # The key's values are not quoted: they may be personal data (dead-letter reasons name).
        raise LookupMissingError(
            f"lookup {plan.name}: no row of {plan.table} with this {'/'.join(plan.key_columns)} ({why}); "
            "on_missing is dead_letter"
        )


@dataclass(slots=True)
class _Bound:
    """One lookup of one mapping, with the converters it needs per table version."""

    plan: LookupPlan
    table: str
    stats: LookupStats
    converters: dict[str | None, list[tuple[str, Callable[[Any], Any] | None]]] = field(default_factory=dict)
    single: bool = False  # a one-column key
    commit_order: bool = True  # consistency: commit

    columns_key: str = ""  # the columns the mapping reads, as `Version.decoded` names them

    def __post_init__(self) -> None:
        self.single = len(self.plan.key_columns) == 1
        self.commit_order = self.plan.consistency == "commit"
        self.columns_key = columns_key(self.plan.columns)

    def row(self, version: Version, store: VersionStore) -> dict[str, Any]:
        """The columns the mapping reads, converted to Python values as the change's own columns are."""
        decoded = version.decoded.get(self.columns_key)
        if decoded is not None:
            return decoded
        raw = version.row
        assert raw is not None
        converters = self.converters.get(version.schema)
        if converters is None:
            schema = store.table_schema(version.schema)
            converters = self.converters[version.schema] = [
                (
                    column,
                    schema.converter(column) if schema is not None and column in schema.columns else None,
                )
                for column in self.plan.columns
            ]
        out = {}
        for column, convert in converters:
            value = raw.get(column)
            out[column] = value if value is None or convert is None else convert(value)
        # Shared by every change that reads this version: generated mapping code only reads it.
        version.decoded[self.columns_key] = out
        return out
