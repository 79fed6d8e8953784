"""The preflight item of the source's publication: it exists, publishes every operation and every
captured table (a partitioned one under its own name), or says the SQL that makes it so and whether
the role may run it (`source register` and `source check --fix` do when it may)."""

from __future__ import annotations

from eventbus.sources.check_items import CheckItem, Fix, Status
from eventbus.sources.inspection import Inspection
from eventbus.sources.spec import SourceDefinition
from eventbus.sql_names import quote_ident, quote_table


def publication_item(inspection: Inspection, definition: SourceDefinition) -> CheckItem:
    name = definition.publication_name
    quoted_name = quote_ident(name)
    title = f"publication {name}"
    existing = [t for t in definition.tables if inspection.tables[t].exists]
    publication = inspection.publication
    capabilities = inspection.capabilities
    partitioned = [t for t in existing if inspection.tables[t].partitioned]
    if partitioned and inspection.server_version_num < 130000:
        return CheckItem(
            "publication", title, "fail",
            f"{', '.join(partitioned)} is partitioned, and PostgreSQL {inspection.server_version} cannot "
            "publish a partition's changes under its partitioned table's name (13 can); list the "
            "partitions in `tables:` instead",
        )  # fmt: skip
    # A partition's changes are published under the partition's own name unless via the root, and
    # the connector captures the partitioned table's name: they would never reach its topic.
    via_root = " WITH (publish_via_partition_root = true)" if partitioned else ""
    if publication is None:
        fix = Fix(
            (
                f"CREATE PUBLICATION {quoted_name} FOR TABLE "
                f"{', '.join(quote_table(t) for t in existing)}{via_root};",
            )
            if existing
            else (),
            "create_publication" if existing else "manual",
            tuple(existing),
        )
        if existing and capabilities.allows(fix):
            detail = f"absent; role {capabilities.role} may create it (`register` and `--fix` do)"
            return CheckItem("publication", title, "warn", detail, fix)
        detail = (
            f"absent, and role {capabilities.role} may not create it (needs CREATE on the database "
            "and ownership of the tables, or superuser)"
        )
        return CheckItem("publication", title, "fail", detail, fix)

    missing_ops = {"insert", "update", "delete"} - publication.operations
    if missing_ops:
        return CheckItem(
            "publication",
            title,
            "fail",
            f"does not publish {', '.join(sorted(missing_ops))}",
            Fix(
                (f"ALTER PUBLICATION {quoted_name} SET (publish = 'insert, update, delete, truncate');",),
                "alter_publication",
            ),
        )
    if partitioned and publication.via_root is False:
        fix = Fix(
            (f"ALTER PUBLICATION {quoted_name} SET (publish_via_partition_root = true);",),
            "alter_publication",
            tuple(partitioned),
        )
        allowed = capabilities.allows(fix)
        detail = (
            f"publishes the changes of {', '.join(partitioned)} under its partitions' names, which the "
            "connector does not capture (publish_via_partition_root is off)"
        )
        if allowed:
            detail += f"; role {capabilities.role} may turn it on (`register` and `--fix` do)"
        return CheckItem("publication", title, "warn" if allowed else "fail", detail, fix)
    if publication.all_tables:
        return CheckItem("publication", title, "ok", "FOR ALL TABLES")
    missing = [t for t in existing if t not in publication.tables]
    if missing:
        fix = Fix(
            (f"ALTER PUBLICATION {quoted_name} ADD TABLE {', '.join(quote_table(t) for t in missing)};",),
            "alter_publication",
            tuple(missing),
        )
        status: Status = "warn" if capabilities.allows(fix) else "fail"
        detail = f"does not include {', '.join(missing)}" + (
            f"; role {capabilities.role} may add them (`register` and `--fix` do)" if status == "warn" else ""
        )
        return CheckItem("publication", title, status, detail, fix)
    extra = sorted(publication.tables - set(definition.tables))
    detail = f"owner {publication.owner}, {len(publication.tables)} table(s)"
    if extra:
        detail += f"; also publishes {', '.join(extra)} (decoded, then filtered by the connector)"
    return CheckItem("publication", title, "ok", detail)
