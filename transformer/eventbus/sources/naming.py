"""The staging topic naming convention, shared by source registration and the transformer.

Debezium names a table's topic `<topic.prefix>.<schema>.<table>`; we set `topic.prefix` to
`staging.<source>`, so the changes of `public.claims` in source `claims` land on
`staging.claims.public.claims`. One place defines it so both sides always agree.
"""

from __future__ import annotations

import re
import string

STAGING_PREFIX = "staging"
SLOT_PREFIX = "eventbus_"  # a source's default replication slot (and publication): eventbus_<source>
# What `slot_name` gives for a valid source name (spec.SOURCE_NAME): how `source status` recognises
# the slot of a source that was removed without dropping it.
_DEFAULT_SLOT = re.compile(r"eventbus_([a-z][a-z0-9_]{0,47})")
_TOPIC_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


# Java's Pattern.CASE_INSENSITIVE without UNICODE_CASE folds A-Z only
_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def debezium_key_fold(name: str) -> str:
    """`name` as Debezium compares it with `message.key.columns`: case-insensitively (its
    `Key.CustomKeyMapper` compiles each `<schema>.<table>.<column>` with `Pattern.CASE_INSENSITIVE`),
    which folds ASCII letters only."""
    return name.translate(_ASCII_FOLD)


def debezium_topic_part(name: str) -> str:
    """`name` as Debezium puts it in a topic name: each character Kafka does not allow there (outside
    A-Z a-z 0-9 . _ -) becomes `_`, per UTF-16 unit as in Java (two for a character beyond U+FFFF).
    `public."réclamations"` is captured onto `....public.r_clamations`."""
    if all(character in _TOPIC_CHARACTERS for character in name):
        return name
    return "".join(
        character if character in _TOPIC_CHARACTERS else "_" * (2 if ord(character) > 0xFFFF else 1)
        for character in name
    )


def connector_name(source: str) -> str:
    """A source's connector in Kafka Connect: recognisably ours among other connectors (and the
    first half of the key under which Connect keeps its offsets)."""
    return f"eventbus-source-{source}"


def slot_name(source: str) -> str:
    """The replication slot a source reads unless its definition names another (`slot:`)."""
    return f"{SLOT_PREFIX}{source}"


def source_of_slot(slot: str) -> str | None:
    """The source whose default slot `slot` is, None when the name does not follow the convention."""
    match = _DEFAULT_SLOT.fullmatch(slot)
    return match.group(1) if match else None


def topic_prefix(source: str) -> str:
    """Debezium's `topic.prefix` for a source."""
    return f"{STAGING_PREFIX}.{source}"


def staging_topic(source: str, table: str) -> str:
    """The staging topic of a `<schema>.<table>` in a source (`public` when no schema is given)."""
    qualified = table if "." in table else f"public.{table}"
    return f"{topic_prefix(source)}.{debezium_topic_part(qualified)}"


def dead_letter_topic(group: str) -> str:
    """The default dead-letter topic of a transformer consumer group."""
    return f"{STAGING_PREFIX}.dlq.{group}"


def heartbeat_topic(source: str) -> str:
    """Where Debezium writes a source's heartbeats (`topic.heartbeat.prefix` + `topic.prefix`)."""
    return f"__debezium-heartbeat.{topic_prefix(source)}"


def parked_topic(group: str) -> str:
    """The default topic of a transformer group's changes waiting for a looked-up row."""
    return f"{STAGING_PREFIX}.parked.{group}"
