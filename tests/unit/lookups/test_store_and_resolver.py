"""The version store and the as-of-commit rule, without Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.debezium.logical_types import PLACEHOLDER
from eventbus.lookups.resolver import LookupResolver, key_text
from eventbus.lookups.store import RowCache, Version, VersionStore
from eventbus.mapping.errors import LookupPending
from eventbus.mapping.functions import LookupMissingError
from eventbus.mapping.lookups import LOOKUP_SKIP, LookupPlan

TABLE = "claims/public.claims(claim_id)"


def _plan(on_missing: str = "dead_letter", wait_ms: int = 30_000, consistency: str = "commit") -> LookupPlan:
    return LookupPlan(
        index=0, name="claim", table="public.claims", connector="claims", key_columns=("claim_id",),
        key=(), depends=frozenset(), columns=("status",), wait_ms=wait_ms, on_missing=on_missing,
        consistency=consistency,
    )  # fmt: skip


def _version(commit: int, lsn: int, status: str | None, ts_ms: int = 0) -> Version:
    return Version(commit, lsn, ts_ms, None if status is None else {"claim_id": 7, "status": status}, None)


def _resolver(store: VersionStore, **plan: object) -> tuple[LookupResolver, object]:
    resolver = LookupResolver(store, progress_ts={"claims": 0})
    return resolver, resolver.for_mapping("m", [_plan(**plan)])  # type: ignore[arg-type]


def test_the_version_current_at_the_commit_is_the_answer_never_a_later_one() -> None:
    store = VersionStore(None)
    for version in (_version(10, 11, "NEW"), _version(20, 21, "OPEN"), _version(30, 31, "CLOSED")):
        store.add(TABLE, "7", version)
    resolver, lookup = _resolver(store)
    for commit, expected in ((10, "NEW"), (25, "OPEN"), (30, "CLOSED"), (99, "CLOSED")):
        resolver.at(commit, 0)
        assert lookup[0](7) == {"status": expected}, commit


def test_changes_of_one_transaction_are_all_visible_to_each_other() -> None:
    # Same commit position (one transaction): the row as the transaction left it.
    store = VersionStore(None)
    store.add(TABLE, "7", _version(40, 41, "NEW"))
    store.add(TABLE, "7", _version(40, 45, "OPEN"))
    resolver, lookup = _resolver(store)
    resolver.at(40, 0)
    assert lookup[0](7) == {"status": "OPEN"}


def test_a_row_deleted_before_the_commit_is_missing_and_on_missing_decides() -> None:
    store = VersionStore(None)
    store.add(TABLE, "7", _version(10, 11, "NEW"))
    store.add(TABLE, "7", _version(20, 21, None))
    for on_missing, expected in (("skip", LOOKUP_SKIP), ("null", None)):
        resolver, lookup = _resolver(store, on_missing=on_missing)
        resolver.at(25, 0)
        assert lookup[0](7) is expected
    resolver, lookup = _resolver(store)
    resolver.at(25, 0)
    with pytest.raises(LookupMissingError) as caught:
        lookup[0](7)
    assert "lookup claim: no row of public.claims" in str(caught.value)
    assert "7" not in str(caught.value)  # the key's value is not quoted (it may be personal data)


def test_a_row_committed_later_within_wait_is_the_answer_otherwise_pending_then_missing() -> None:
    store = VersionStore(None)
    resolver, lookup = _resolver(store, wait_ms=5_000)
    resolver.at(10, 1_000)
    with pytest.raises(LookupPending):  # nothing known yet, and the source has not passed 1 s + 5 s
        lookup[0](7)
    store.add(TABLE, "7", _version(20, 21, "LATE", ts_ms=4_000))
    assert lookup[0](7) == {"status": "LATE"}
    resolver.at(10, 1_000)
    store2 = VersionStore(None)
    store2.add(TABLE, "7", _version(20, 21, "TOO LATE", ts_ms=9_000))
    resolver2, lookup2 = _resolver(store2, wait_ms=5_000)
    resolver2.at(10, 1_000)
    with pytest.raises(LookupMissingError):
        lookup2[0](7)


def test_pending_ends_when_the_source_is_known_to_have_passed_the_wait() -> None:
    store = VersionStore(None)
    resolver, lookup = _resolver(store, wait_ms=5_000, on_missing="null")
    resolver.at(10, 1_000)
    with pytest.raises(LookupPending):
        lookup[0](7)
    resolver.progress_ts["claims"] = 6_001  # e.g. a heartbeat of the idle source
    assert lookup[0](7) is None
    stats = resolver.stats[("m", "claim")]
    assert (stats.pending, stats.missing) == (1, 1)


def test_a_null_key_is_missing_without_waiting() -> None:
    resolver, lookup = _resolver(VersionStore(None), on_missing="skip")
    resolver.at(10, 0)
    assert lookup[0](None) is LOOKUP_SKIP


def test_toast_placeholders_are_filled_from_the_version_before() -> None:
    store = VersionStore(None)
    store.add(TABLE, "7", Version(10, 11, 0, {"claim_id": 7, "notes": "long text", "status": "A"}, None))
    store.add(TABLE, "7", Version(20, 21, 0, {"claim_id": 7, "notes": PLACEHOLDER, "status": "B"}, None))
    assert store.as_of(TABLE, "7", 20).row == {"claim_id": 7, "notes": "long text", "status": "B"}  # type: ignore[union-attr]


def test_store_survives_reopening_and_prune_keeps_what_a_later_change_can_need(tmp_path: Path) -> None:
    path = tmp_path / "lookups.sqlite"
    store = VersionStore(path)
    for commit in (10, 20, 30, 40):
        store.add(TABLE, "7", _version(commit, commit + 1, f"S{commit}"))
    store.add(TABLE, "8", _version(15, 16, "ONLY"))
    store.commit_offsets({("staging.claims.public.claims", 0): 123})
    store.close()
    reopened = VersionStore(path)
    assert reopened.offsets() == {("staging.claims.public.claims", 0): 123}
    assert reopened.as_of(TABLE, "7", 25).row["status"] == "S20"  # type: ignore[union-attr]
    dropped = reopened.prune(below_commit=25)
    assert dropped == 1  # S10: S20 is the newest at or before 25, so nothing can ask for S10
    assert reopened.as_of(TABLE, "7", 25).row["status"] == "S20"  # type: ignore[union-attr]
    assert reopened.as_of(TABLE, "8", 99).row["status"] == "ONLY"  # type: ignore[union-attr]
    assert reopened.as_of(TABLE, "7", 12) is None
    assert reopened.row_count() == 4


def test_key_text_is_canonical_and_null_safe() -> None:
    from decimal import Decimal
    from uuid import UUID

    assert key_text((7,)) == "7"
    # a decimal by its number: a numeric(10,2) key 12.30 is found by 12.3, and 5.00 by 5
    assert key_text((Decimal("1.50"), "x")) == "1.5\x1fx"
    assert key_text((Decimal("5.00"),)) == key_text((5,)) == "5"
    assert key_text((Decimal("1E+2"),)) == "100" and key_text((Decimal("-0.00"),)) == "0"
    assert key_text((UUID(int=1),)) == "00000000-0000-0000-0000-000000000001"
    assert key_text((1, None)) is None


def test_a_version_added_after_a_prune_is_seen_by_a_resolver_made_before_it(tmp_path: Path) -> None:
    # The service's resolver lives as long as the process, prunes run every few minutes: the
    # resolver's view of the cached rows must not go stale when a prune empties the cache.
    store = VersionStore(tmp_path / "lookups.sqlite")
    for commit in (10, 20):
        store.add(TABLE, "7", _version(commit, commit + 1, f"S{commit}"))
    resolver, lookup = _resolver(store)
    resolver.at(25, 0)
    assert lookup[0](7) == {"status": "S20"}  # now cached
    assert store.prune(below_commit=25) == 1
    store.add(TABLE, "7", _version(30, 31, "S30"))
    resolver.at(35, 0)
    assert lookup[0](7) == {"status": "S30"}


def test_the_row_cache_keeps_rows_read_once_a_generation_and_is_bounded() -> None:
    cache = RowCache(generation=3)
    rows = {key: [_version(1, 1, key)] for key in "abcdefg"}
    for key in "abc":  # the third fills the recent generation: a, b, c become the older one
        cache.put(key, rows[key])
    assert cache.get("a") is rows["a"]  # read again: back in the recent generation
    for key in "de":  # fills it again: a, d, e older; b and c (not read since) are dropped
        cache.put(key, rows[key])
    assert cache.get("b") is None and cache.get("c") is None
    assert cache.get("a") is rows["a"] and cache.get("e") is rows["e"]
    for key in "fg":
        cache.put(key, rows[key])
    assert len(cache) <= 2 * cache.generation


def test_keys_of_several_columns_and_latest_consistency() -> None:
    store = VersionStore(None)
    table = "claims/public.contentions(claim_id,seq)"
    store.add(table, key_text((7, 2)), _version(10, 11, "OLD"))  # type: ignore[arg-type]
    store.add(table, key_text((7, 2)), _version(50, 51, "NEW"))  # type: ignore[arg-type]
    for consistency, expected in (("commit", "OLD"), ("latest", "NEW")):
        resolver = LookupResolver(store, progress_ts={"claims": 1})  # the source passed the change
        plan = LookupPlan(
            index=0, name="c", table="public.contentions", connector="claims",
            key_columns=("claim_id", "seq"), key=(), depends=frozenset(), columns=("status",), wait_ms=0,
            on_missing="null",
            consistency=consistency,
        )  # fmt: skip
        (lookup,) = resolver.for_mapping("m", [plan])
        resolver.at(20, 0)
        assert lookup((7, 2)) == {"status": expected}, consistency
        assert lookup((7, 3)) is None


def _waiting_plan(wait_ms: int) -> LookupPlan:
    return LookupPlan(
        index=0, name="c", table="public.customers", connector="shop", key_columns=("id",), key=(),
        depends=frozenset(), columns=("name",), wait_ms=wait_ms, on_missing="null", consistency="commit",
    )  # fmt: skip


def test_without_a_wait_a_row_is_missing_only_once_the_source_passed_the_change() -> None:
    """A large source transaction reaches Kafka in several Connect transactions: a row of the
    change's own transaction may still be on its way, so even `wait: 0` waits for the source to
    pass the change's commit (it was missing at once, found on the live stack)."""
    resolver = LookupResolver(VersionStore(None), progress_ts={"shop": 1_000})
    (lookup,) = resolver.for_mapping("m", [_waiting_plan(0)])
    resolver.at(20, 1_000)
    with pytest.raises(LookupPending):
        lookup(5)
    resolver.progress_ts = {"shop": 1_001}
    assert lookup(5) is None


def test_a_heartbeat_counts_less_the_changes_streaming_lag() -> None:
    """Heartbeats carry the connector's clock: while it streams a backlog 10 s behind its source,
    a heartbeat of now says nothing about changes committed in the last 10 s (a wait ended early,
    found on the live stack). A change streamed 10 s after its commit discounts heartbeats by 10 s."""
    resolver = LookupResolver(VersionStore(None), progress_ts={"shop": 0}, heartbeat_ts={"shop": 20_000})
    (lookup,) = resolver.for_mapping("m", [_waiting_plan(5_000)])
    resolver.at(20, 10_000, lag_ms=10_000)  # committed at 10 s, streamed at 20 s
    with pytest.raises(LookupPending):
        lookup(5)  # the heartbeat of 20 s stands for about 10 s of the source: within the wait
    resolver.heartbeat_ts = {"shop": 25_001}
    assert lookup(5) is None  # 25.001 s less 10 s of lag is past 10 s + the 5 s wait
    resolver.at(20, 10_000, lag_ms=0)  # a change streamed at once: the heartbeat counts in full
    resolver.heartbeat_ts = {"shop": 15_001}
    assert lookup(5) is None


def test_a_missing_row_with_latest_consistency_is_not_said_to_be_as_of_the_commit() -> None:
    resolver = LookupResolver(VersionStore(None), progress_ts={"claims": 10**12})
    (lookup,) = resolver.for_mapping("m", [_plan(wait_ms=0, consistency="latest")])
    resolver.at(20, 0)
    with pytest.raises(LookupMissingError, match=r"no row known \(consistency: latest\)"):
        lookup(7)
