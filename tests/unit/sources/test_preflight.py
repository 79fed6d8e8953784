"""The checklist's judgement on fake inspection results: each mistake becomes a failing item with the
SQL that fixes it, and `--fix` only applies what the applying role may do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from eventbus.sources.before_images import BeforeImageNeeds, before_image_needs
from eventbus.sources.check_items import CheckItem
from eventbus.sources.definition_files import parse_definition
from eventbus.sources.inspection import Capabilities, Inspection, PublicationFacts, SlotFacts, TableFacts
from eventbus.sources.preflight import PreflightReport, evaluate, fixes_to_apply

FIXTURES = Path(__file__).parents[2] / "fixtures" / "connectors"
DEFINITION = """\
database:
  host: 127.0.0.1
  dbname: claimsdb
  user: claims_cdc
  password: {env: UNUSED}
tables:
  - public.claims
  - public.claim_notes
snapshot_mode: no_data
"""


@pytest.fixture
def definition():
    return parse_definition(DEFINITION, "unitsrc", "connectors/unitsrc.yaml")


def healthy(**changes) -> Inspection:
    """A database where everything is right; tests change one fact at a time."""
    tables = {
        name: TableFacts(name, True, True, None, "f", True, True, "owner")
        for name in ("public.claims", "public.claim_notes")
    }
    inspection = Inspection(
        server_version="15.18",
        server_version_num=150018,
        wal_level="logical",
        max_replication_slots=10,
        replication_slots_used=2,
        max_wal_senders=10,
        wal_senders_used=1,
        role="claims_cdc",
        role_can_replicate=True,
        tables=tables,
        publication=PublicationFacts(
            False, frozenset(tables), frozenset({"insert", "update", "delete", "truncate"}), "owner"
        ),
        slot=None,
        capabilities=Capabilities(role="claims_cdc", replication=True),
    )
    return dataclasses.replace(inspection, **changes)


def items_by_key(items: list[CheckItem]) -> dict[str, CheckItem]:
    return {item.key: item for item in items}


NEEDS_FULL_ON_CLAIMS = BeforeImageNeeds(tables={"public.claims": ["mappings/x.yaml"]})


def test_healthy_database_passes(definition) -> None:
    items = evaluate(healthy(), definition, NEEDS_FULL_ON_CLAIMS)
    assert [i for i in items if i.status != "ok"] == []


def test_wal_level_replica_fails_with_alter_system_and_restart(definition) -> None:
    item = items_by_key(evaluate(healthy(wal_level="replica"), definition, BeforeImageNeeds()))["wal_level"]
    assert item.status == "fail"
    assert "wal_level is 'replica'" in item.detail
    assert item.fix is not None
    assert item.fix.sql == ("ALTER SYSTEM SET wal_level = logical;",)
    assert item.fix.requires == "restart"
    # A restart is never applied by --fix, not even as a superuser.
    assert not Capabilities(role="postgres", superuser=True).allows(item.fix)


def test_no_free_slot_or_wal_sender(definition) -> None:
    items = items_by_key(
        evaluate(healthy(replication_slots_used=10, wal_senders_used=10), definition, BeforeImageNeeds())
    )
    assert items["replication_slots"].status == "fail"
    assert items["replication_slots"].fix.sql == ("ALTER SYSTEM SET max_replication_slots = 14;",)
    assert items["wal_senders"].status == "fail"
    # An existing slot of ours needs no free one.
    slot = SlotFacts("pgoutput", "claimsdb", False, "reserved", 100, 10)
    ok = items_by_key(evaluate(healthy(replication_slots_used=10, slot=slot), definition, BeforeImageNeeds()))
    assert ok["replication_slots"].status == "ok"


def test_each_table_mistake_is_its_own_item(definition) -> None:
    tables = {
        "public.claims": TableFacts("public.claims", True, True, None, "d", False, True, "owner"),
        "public.claim_notes": TableFacts(
            "public.claim_notes", True, False, "claim_notes_uid", "d", True, True, "o"
        ),
    }
    items = items_by_key(
        evaluate(healthy(tables=tables, role_can_replicate=False), definition, NEEDS_FULL_ON_CLAIMS)
    )
    assert items["replication_role"].fix.sql == ("ALTER ROLE claims_cdc WITH REPLICATION;",)
    assert items["select:public.claims"].fix.sql == ("GRANT SELECT ON public.claims TO claims_cdc;",)
    assert items["replica_identity:public.claims"].status == "fail"
    assert "mappings/x.yaml" in items["replica_identity:public.claims"].detail
    assert items["replica_identity:public.claims"].fix.sql == (
        "ALTER TABLE public.claims REPLICA IDENTITY FULL;",
    )
    # claim_notes: no mapping reads its before image, so DEFAULT identity is fine...
    assert "replica_identity:public.claim_notes" not in items
    # ...but it has no primary key; a unique NOT NULL index can be promoted.
    pk = items["primary_key:public.claim_notes"]
    assert pk.status == "fail"
    assert pk.fix.sql == ("ALTER TABLE public.claim_notes ADD PRIMARY KEY USING INDEX claim_notes_uid;",)


def test_missing_table_points_at_its_line(definition) -> None:
    tables = dict(healthy().tables)
    tables["public.claim_notes"] = TableFacts("public.claim_notes", False)
    item = items_by_key(evaluate(healthy(tables=tables), definition, BeforeImageNeeds()))[
        "exists:public.claim_notes"
    ]
    assert item.status == "fail"
    assert item.detail.startswith("connectors/unitsrc.yaml:8: table public.claim_notes does not exist")


def test_a_table_spelled_in_another_case_is_named(definition) -> None:
    """`Public.Claim_Notes` for public.claim_notes said only "does not exist": names are
    case-sensitive, and the check now names the table the author meant."""
    tables = dict(healthy().tables)
    tables["public.claim_notes"] = TableFacts("public.claim_notes", False, other_case=("Public.Claim_Notes",))
    item = items_by_key(evaluate(healthy(tables=tables), definition, BeforeImageNeeds()))[
        "exists:public.claim_notes"
    ]
    assert item.status == "fail"
    assert "did you mean Public.Claim_Notes? Names are case-sensitive" in item.detail


def test_a_partition_of_a_captured_table_fails(definition) -> None:
    """Captured beside its partitioned table, a partition's changes are published under the
    partitioned table's name (publish_via_partition_root): its own staging topic stayed empty, and a
    mapping of it never saw a change, while the check said ok."""
    tables = dict(healthy().tables)
    tables["public.claim_notes"] = dataclasses.replace(
        tables["public.claim_notes"], ancestors=("public.claims",)
    )
    tables["public.claims"] = dataclasses.replace(tables["public.claims"], partitioned=True)
    item = items_by_key(evaluate(healthy(tables=tables), definition, BeforeImageNeeds()))[
        "exists:public.claim_notes"
    ]
    assert item.status == "fail"
    assert "public.claim_notes is a partition of public.claims, which is captured too" in item.detail
    alone = dict(tables)
    alone["public.claim_notes"] = dataclasses.replace(
        alone["public.claim_notes"], ancestors=("public.other",)
    )
    item = items_by_key(evaluate(healthy(tables=alone), definition, BeforeImageNeeds()))[
        "exists:public.claim_notes"
    ]
    assert item.status == "ok"


def test_missing_publication_warns_when_the_role_may_create_it(definition) -> None:
    owner = Capabilities(
        role="claims_cdc",
        can_create_in_database=True,
        owns_tables=frozenset({"public.claims", "public.claim_notes"}),
    )
    item = items_by_key(
        evaluate(healthy(publication=None, capabilities=owner), definition, BeforeImageNeeds())
    )["publication"]
    assert item.status == "warn"
    assert item.fix.sql == (
        "CREATE PUBLICATION eventbus_unitsrc FOR TABLE public.claims, public.claim_notes;",
    )
    blocked = items_by_key(evaluate(healthy(publication=None), definition, BeforeImageNeeds()))["publication"]
    assert blocked.status == "fail"
    assert "may not create it" in blocked.detail


def test_publication_missing_a_table_is_extended(definition) -> None:
    publication = PublicationFacts(
        False, frozenset({"public.claims"}), frozenset({"insert", "update", "delete"}), "x"
    )
    item = items_by_key(evaluate(healthy(publication=publication), definition, BeforeImageNeeds()))[
        "publication"
    ]
    assert item.status == "fail"
    assert item.fix.sql == ("ALTER PUBLICATION eventbus_unitsrc ADD TABLE public.claim_notes;",)


def _partitioned_claims(**changes) -> Inspection:
    inspection = healthy(**changes)
    tables = dict(inspection.tables)
    tables["public.claims"] = dataclasses.replace(tables["public.claims"], partitioned=True)
    return dataclasses.replace(inspection, tables=tables)


def test_a_partitioned_table_is_published_under_its_own_name(definition) -> None:
    """Without publish_via_partition_root a partition's changes are published under the partition's
    name, which the connector does not capture: every streamed change was lost, the check said ok."""
    owner = Capabilities(
        role="claims_cdc",
        can_create_in_database=True,
        owns_tables=frozenset({"public.claims", "public.claim_notes"}),
        owns_publication=True,
    )
    created = items_by_key(
        evaluate(_partitioned_claims(publication=None, capabilities=owner), definition, BeforeImageNeeds())
    )["publication"]
    assert created.fix.sql == (
        "CREATE PUBLICATION eventbus_unitsrc FOR TABLE public.claims, public.claim_notes "
        "WITH (publish_via_partition_root = true);",
    )
    tables = frozenset({"public.claims", "public.claim_notes"})
    ops = frozenset({"insert", "update", "delete"})
    for via_root, status in ((False, "warn"), (True, "ok"), (None, "ok")):
        publication = PublicationFacts(False, tables, ops, "x", via_root)
        inspection = _partitioned_claims(publication=publication, capabilities=owner)
        item = items_by_key(evaluate(inspection, definition, BeforeImageNeeds()))["publication"]
        assert item.status == status, (via_root, item.detail)
    assert item.status == "ok"
    off = PublicationFacts(False, tables, ops, "x", False)
    item = items_by_key(evaluate(_partitioned_claims(publication=off), definition, BeforeImageNeeds()))[
        "publication"
    ]
    assert item.status == "fail" and "under its partitions' names" in item.detail
    assert item.fix.sql == ("ALTER PUBLICATION eventbus_unitsrc SET (publish_via_partition_root = true);",)
    old = items_by_key(
        evaluate(_partitioned_claims(server_version="12.9", server_version_num=120009), definition,
                 BeforeImageNeeds())
    )["publication"]  # fmt: skip
    assert old.status == "fail" and "list the partitions" in old.detail


def test_slot_retaining_too_much_wal_warns_and_foreign_slot_fails(definition) -> None:
    big = SlotFacts("pgoutput", "claimsdb", False, "extended", 5 * 2**30, 5 * 2**30)
    item = items_by_key(evaluate(healthy(slot=big), definition, BeforeImageNeeds()))["slot"]
    assert item.status == "warn"
    assert "retains 5.0 GiB of WAL, inactive" in item.detail
    foreign = SlotFacts("test_decoding", "otherdb", False, "reserved", 10, 10)
    assert (
        items_by_key(evaluate(healthy(slot=foreign), definition, BeforeImageNeeds()))["slot"].status == "fail"
    )


def test_fix_applies_only_what_the_role_may(definition) -> None:
    tables = {
        name: TableFacts(name, True, True, None, "d", False, True, "owner")
        for name in ("public.claims", "public.claim_notes")
    }
    inspection = healthy(tables=tables, role_can_replicate=False, publication=None)
    report = PreflightReport("unitsrc", "t", evaluate(inspection, definition, NEEDS_FULL_ON_CLAIMS))
    owner = Capabilities(
        role="owner",
        can_create_in_database=True,
        owns_tables=frozenset(tables),
        grantable_select=frozenset(tables),
    )
    keys = [item.key for item in fixes_to_apply(report, owner)]
    # The owner may grant SELECT, alter its tables and create the publication, not grant REPLICATION.
    assert keys == [
        "select:public.claims",
        "replica_identity:public.claims",
        "select:public.claim_notes",
        "publication",
    ]
    superuser = Capabilities(role="postgres", superuser=True)
    assert "replication_role" in [item.key for item in fixes_to_apply(report, superuser)]
    assert fixes_to_apply(report, Capabilities(role="nobody")) == []


def test_mappings_folder_decides_which_tables_need_full_before_images(definition) -> None:
    needs = before_image_needs(FIXTURES / "mappings", "unitsrc")
    assert set(needs.tables) == {"public.claims", "public.payments"}  # claim_notes reads after only
    assert needs.mapped_tables == {"public.claims", "public.claim_notes", "public.payments"}
    items = items_by_key(evaluate(healthy(), definition, needs))
    assert items["replica_identity:public.claims"].status == "ok"
    assert items["mapped_tables"].status == "warn"
    assert "public.payments" in items["mapped_tables"].detail
    assert before_image_needs(FIXTURES / "mappings", "othersrc").tables == {
        "public.orders": [str(FIXTURES / "mappings" / "became_other_source.yaml")]
    }


def test_a_missing_schema_usage_is_granted_alone_when_select_is_there(definition) -> None:
    """SELECT granted, USAGE on the schema not: the check said the role lacked both and granted both."""
    facts = TableFacts("public.claims", True, True, None, "f", False, False, "owner", table_select=True)
    tables = {**healthy().tables, "public.claims": facts}
    items = items_by_key(evaluate(healthy(tables=tables), definition, BeforeImageNeeds()))
    item = items["select:public.claims"]
    assert item.status == "fail" and "lacks USAGE on schema public:" in item.detail
    assert item.fix.sql == ("GRANT USAGE ON SCHEMA public TO claims_cdc;",)
    neither = dataclasses.replace(facts, table_select=False)
    tables = {**healthy().tables, "public.claims": neither}
    items = items_by_key(evaluate(healthy(tables=tables), definition, BeforeImageNeeds()))
    item = items["select:public.claims"]
    assert "lacks USAGE on schema public and SELECT" in item.detail
    assert item.fix.sql == (
        "GRANT USAGE ON SCHEMA public TO claims_cdc;",
        "GRANT SELECT ON public.claims TO claims_cdc;",
    )


def test_a_looked_up_table_without_full_replica_identity_is_warned_about(definition) -> None:
    """A TOASTed column of a looked-up row is filled from the version before; after compaction a
    store rebuilt from the topic had it unavailable (found on the stack): `check` says so, `--fix`
    sets FULL."""
    tables = dict(healthy().tables)
    tables["public.claim_notes"] = dataclasses.replace(tables["public.claim_notes"], replica_identity="d")
    needs = BeforeImageNeeds(looked_up={"public.claim_notes": ["mappings/note_added.yaml"]})
    items = items_by_key(evaluate(healthy(tables=tables), definition, needs))
    item = items["replica_identity:public.claim_notes"]
    assert item.status == "warn" and "looked up by mappings/note_added.yaml" in item.detail
    assert item.fix.sql == ("ALTER TABLE public.claim_notes REPLICA IDENTITY FULL;",)
    full = items_by_key(evaluate(healthy(), definition, needs))
    assert "replica_identity:public.claim_notes" not in full


def test_a_table_whose_updates_are_published_from_after_without_full_is_warned_about(definition) -> None:
    """A scaffolded mapping of a wide table dead-lettered every update that left a TOASTed column
    unchanged, and `check` said all passed."""
    tables = dict(healthy().tables)
    tables["public.claims"] = dataclasses.replace(tables["public.claims"], replica_identity="d")
    needs = BeforeImageNeeds(update_readers={"public.claims": ["mappings/claim_changed.yaml"]})
    item = items_by_key(evaluate(healthy(tables=tables), definition, needs))["replica_identity:public.claims"]
    assert item.status == "warn" and "mappings/claim_changed.yaml publish(es) updates" in item.detail
    assert "replica_identity:public.claims" not in items_by_key(evaluate(healthy(), definition, needs))


def test_files_beside_the_mappings_are_not_read_as_mappings(tmp_path: Path) -> None:
    # The schema lock and table descriptions are YAML too; read as mappings they showed up as
    # "unreadable mapping" items in `source check`.
    (tmp_path / "schemas.lock.yaml").write_text("subjects: {}\n")
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "public.claims.yaml").write_text("columns: {}\n")
    (tmp_path / "claim.tests.yml").write_text("tests: []\n")
    needs = before_image_needs(tmp_path, "unitsrc")
    assert needs.unreadable == []
