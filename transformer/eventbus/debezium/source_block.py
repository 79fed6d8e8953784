"""The `source` block of a Debezium envelope: what the decoder accepts there, and its check.

The block's fields order changes (`lsn`, `txId`), identify events and time them (`ts_ms`); a
hostile or corrupt record could put anything there. `usual_source` is the quick test of the block
as Debezium always writes it (the decoder's fast path); `SOURCE_TYPES` are the rules the checked
path names when one is broken; `source_block` checks the block where the payload path reads it
(the dedup watermark, generated mapping code). Apart from the decoder (`connect_json`) because
both paths and the record view (`record.py`) share these rules.
"""

from __future__ import annotations

import itertools
from typing import Any, Final

from eventbus.debezium.errors import DecodeError

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


def source_block(payload: dict[str, Any]) -> dict[str, Any]:
    """The `source` block of a payload from `decode_payload`, checked as `decode` checks it.

    Raises `DecodeError` for a block `decode` would refuse; `decode` says what is wrong with it.
    """
    src: Any = payload.get("source")  # unchecked JSON until `usual_source` says otherwise
    if usual_source(src):
        return src
    raise DecodeError("the source block is not as Debezium writes it (decode() names the problem)")


def usual_source(src: Any) -> bool:
    """The source block as Debezium always writes it: an object with the four names a `SourceInfo`
    needs, and the typed fields present with their types. Anything else goes to the decoder's
    checked path, which accepts what is merely unusual (a missing `ts_ms`) and names what is wrong."""
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
