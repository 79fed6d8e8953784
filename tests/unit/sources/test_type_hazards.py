"""`eventbus source check` on the types that break Debezium 3.6.1's PostgreSQL connector (observed on
the local stack): a domain over an enum, or an enum without labels, anywhere in the database fails
the task at every start; a captured `name` column streams as null."""

from __future__ import annotations

from eventbus.sources.type_hazards import LabelLessEnum, NameColumn, hazard_items


def test_a_domain_over_an_enum_fails_naming_its_columns_with_the_sql_that_fixes_it() -> None:
    domain = LabelLessEnum(
        "public.mood_d", "public.mood", (("public.visits", "mood", False), ("sales.Orders", "moods", True))
    )
    [item] = hazard_items([domain], [], "shop")
    assert item.status == "fail" and item.key == "enum_labels:public.mood_d"
    used = "(used by public.visits.mood, sales.Orders.moods[])"
    assert f"domain public.mood_d is over enum public.mood {used}" in item.detail
    assert "reads every type of database shop when it starts" in item.detail
    assert item.fix is not None and item.fix.requires == "manual"  # a person decides: constraints go
    assert item.fix.sql == (
        "ALTER TABLE public.visits ALTER COLUMN mood TYPE public.mood USING mood::public.mood;",
        'ALTER TABLE sales."Orders" ALTER COLUMN moods TYPE public.mood[] USING moods::public.mood[];',
        "DROP DOMAIN public.mood_d;",
    )
    assert item.fix.tables == ("public.visits", "sales.Orders")


def test_an_unused_domain_and_an_enum_without_labels_fail_too() -> None:
    unused, empty = LabelLessEnum("public.d", "public.e"), LabelLessEnum("public.empty", None)
    first, second = hazard_items([unused, empty], [], "shop")
    assert "used by no table column" in first.detail
    assert first.fix is not None and first.fix.sql == ("DROP DOMAIN public.d;",)
    assert second.status == "fail" and "enum public.empty has no labels" in second.detail


def test_a_name_column_is_a_warning_and_none_of_these_is_one_ok_item() -> None:
    [item] = hazard_items([], [NameColumn("public.users", "login")], "shop")
    assert item.status == "warn" and "column login of public.users is of type name" in item.detail
    assert item.fix and item.fix.sql == ("ALTER TABLE public.users ALTER COLUMN login TYPE text;",)
    assert [(i.key, i.status) for i in hazard_items([], [], "shop")] == [("column_types", "ok")]


def test_a_domain_over_a_domain_over_an_enum_is_made_the_enum_outer_domain_first() -> None:
    """CREATE DOMAIN outer_d AS inner_d, inner_d over the enum: both are label-less enum types. The
    SQL for outer_d made its columns inner_d (which fails the task just the same), and inner_d's
    DROP DOMAIN, shown first, fails while outer_d depends on it."""
    inner = LabelLessEnum("public.inner_d", "public.mood", (("public.a", "m", False),))
    outer = LabelLessEnum("public.outer_d", "public.inner_d", (("public.b", "m", False),))
    first, second = hazard_items([inner, outer], [], "shop")
    assert first.key == "enum_labels:public.outer_d" and second.key == "enum_labels:public.inner_d"
    assert "domain public.outer_d is over enum public.mood" in first.detail
    assert first.fix is not None and first.fix.sql == (
        "ALTER TABLE public.b ALTER COLUMN m TYPE public.mood USING m::public.mood;",
        "DROP DOMAIN public.outer_d;",
    )
