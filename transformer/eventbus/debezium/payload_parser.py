"""How the decoder reads a staging record's JSON: `loads` for whole records and keys, and the typed
parser of an envelope payload (`narrow_payload_loads`) that builds only the row columns a topic's
mappings read.

One library (msgspec) for both, so the checked path and the fast path read the same text the same
way: integers beyond 64 bits stay exact (orjson reads them as floats), and a document too deep to read
raises RecursionError (`JSON_ERRORS` names what a failed read raises).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, Required, TypedDict

import msgspec

loads: Final = msgspec.json.Decoder().decode
JSON_ERRORS: Final = (msgspec.MsgspecError, RecursionError)
# The op codes as a type: the payload parser refuses any other (`envelope.OPS`, which a test holds
# it to). Of the envelope's other fields the parsers keep `transaction` and `ts_ms`; `ts_us`/`ts_ns`,
# Debezium's processing times, are read by no one and skipped.
Op = Literal["c", "u", "d", "r", "t", "m"]


def narrow_payload_loads(
    columns: Iterable[str] | None, before: Iterable[str] | None = None
) -> Callable[[Any], Any]:
    """The parser of an envelope payload that keeps, of `before` and `after`, only `columns`
    (`None`: every column); of `before` only the `before` columns, when given.

    The rows of a wide table are most of a payload, and a mapping reads a few of their columns:
    msgspec skips the other values without building them (a third less time than parsing the whole
    payload with orjson for the benchmark's 20-column rows, of which a mapping reads five). The
    source block is kept raw (`msgspec.Raw`, not built): `source_block.payload_source` and
    `payload_order` decode it when it is read, and check it then. Raises `msgspec.MsgspecError` for
    anything that is not a JSON object with object-or-null `before` and `after` rows and a known
    `op` (all three required); the caller then parses the record in full, which names the problem
    (or handles the unusual record).
    """
    row = _row_type(columns)
    before_row = row if before is None else _row_type(before)
    # Not `Required[msgspec.Raw]`: msgspec (0.23) refuses a raw value in a required TypedDict
    # field ("Expected `raw`, got `object`"); `decode_payload` checks that the field is there.
    fields = {
        "before": Required[before_row | None],
        "after": Required[row | None],
        "op": Required[Op],
        "source": msgspec.Raw,
        "transaction": Any,
        "ts_ms": Any,
    }
    payload = TypedDict("Payload", fields, total=False)  # type: ignore[misc]
    return msgspec.json.Decoder(payload).decode


def _row_type(columns: Iterable[str] | None) -> Any:
    if columns is None:
        return dict[str, Any]
    return TypedDict("Row", dict.fromkeys(columns, Any), total=False)  # type: ignore[operator]


whole_payload_loads: Final = narrow_payload_loads(None)
