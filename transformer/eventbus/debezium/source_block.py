"""The `source` block of a Debezium envelope: what the decoder accepts there, in two forms.

The block's fields order changes (`lsn`, `txId`), identify events and time them (`ts_ms`); a
hostile or corrupt record could put anything there. The decoder accepts a block on its fast path
only as Debezium always writes it: the four names a `SourceInfo` needs, and the typed fields present
with their types. Anything else goes to the checked path, which accepts what is merely unusual (a
missing `ts_ms`) and names what is wrong (`SOURCE_TYPES`).

That rule has two forms that must agree (a unit test holds them together): `SourceBlock`, the type
a block kept raw by the payload parser (`payload_parser.narrow_payload_loads`) is decoded to when it is
first read (`payload_source`), so that the decode itself refuses an unusual block and keeps only the
fields a mapping can read; and `usual_source`, the same test of a block some other parser built (the
first record of a table version, parsed whole).

Why raw first: building the block's nine fields costs about as much as the rest of a narrowed
payload parse (≈ 1 µs on the engine benchmark), and most changes are filtered out by a condition on
their rows and never read it. The service reads the block's ordering fields (`payload_order`) for
the dedup watermark of a change with an outcome and for every change on a lookup topic, and the
whole block when a mapping emits. A block that is not usual
raises `msgspec.MsgspecError` from either; the caller then takes the checked path, which names the
problem.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Final, TypedDict

import msgspec

# The source fields that order changes, identify events and time them: anything else in them (a
# string LSN, a list as snapshot flag) would fail later, outside the decoder, on a hostile record.
_INT_OR_NULL: Final = frozenset({int, type(None)})
_STR_OR_NULL: Final = frozenset({str, type(None)})
# The classes of (ts_ms, lsn, txId, snapshot, sequence) that `decode` accepts, as one set
_USUAL_SOURCE_TYPES: Final = frozenset(
    itertools.product(_INT_OR_NULL, _INT_OR_NULL, _INT_OR_NULL, _STR_OR_NULL, _STR_OR_NULL)
)
SOURCE_TYPES: Final = (
    ("ts_ms", _INT_OR_NULL, "an integer"),
    ("lsn", _INT_OR_NULL, "an integer"),
    ("txId", _INT_OR_NULL, "an integer"),
    ("snapshot", _STR_OR_NULL, "a string"),
    ("sequence", _STR_OR_NULL, "a string"),
)
# An integer the checked path's parser (orjson) reads as an int too, as far as msgspec's bounds go:
# signed 64 bits (a larger one takes the checked path, which accepts it up to 2**64 - 1).
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class SourceBlock(TypedDict):
    """The usual block as the payload parser builds it: every field required, the typed ones typed.

    These are also all the fields a mapping can read (`source.connector` is `name`, `source.tx_id`
    is `txId`); the rest of Debezium's block (`version`, `ts_us`, `ts_ns`, `xmin`, ...) is skipped.
    """

    name: Any
    db: Any
    schema: Any
    table: Any
    ts_ms: _Int64 | None
    lsn: _Int64 | None
    txId: _Int64 | None  # Debezium's name
    snapshot: str | None
    sequence: str | None


class SourceOrder(msgspec.Struct, frozen=True):
    """The block's fields that order and time a change, typed as in `SourceBlock` (all required)."""

    ts_ms: _Int64 | None
    lsn: _Int64 | None
    snapshot: str | None
    sequence: str | None


_Raw: Final = msgspec.Raw
_decode_block: Final = msgspec.json.Decoder(SourceBlock).decode
_decode_order: Final = msgspec.json.Decoder(SourceOrder).decode


def payload_source(payload: dict[str, Any]) -> dict[str, Any]:
    """The source block of a payload the decoder's fast path handed out, decoded on its first read
    (and kept in the payload). Raises `msgspec.MsgspecError` for a block `SourceBlock` refuses."""
    src = payload["source"]
    if src.__class__ is _Raw:
        src = payload["source"] = _decode_block(src)
    return src


def payload_order(payload: dict[str, Any]) -> tuple[int | None, str | None, str | None, int | None]:
    """`(lsn, snapshot, sequence, ts_ms)` of such a payload's block, without building the rest of it.
    Raises `msgspec.MsgspecError` when these fields are not as `SourceBlock` types them."""
    src = payload["source"]
    if src.__class__ is _Raw:
        order = _decode_order(src)
        return order.lsn, order.snapshot, order.sequence, order.ts_ms
    return src["lsn"], src["snapshot"], src["sequence"], src["ts_ms"]


def usual_source(src: Any) -> bool:
    """`src` (a parsed JSON value) is a block `SourceBlock` would accept (but for its bounds)."""
    try:
        return (
            (
                src["ts_ms"].__class__,
                src["lsn"].__class__,
                src["txId"].__class__,
                src["snapshot"].__class__,
                src["sequence"].__class__,
            )
            in _USUAL_SOURCE_TYPES
            and "name" in src
            and "db" in src
            and "schema" in src
            and "table" in src
        )
    except (KeyError, TypeError):
        return False
