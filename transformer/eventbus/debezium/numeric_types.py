"""Converters of Debezium's exact numbers and bit strings: `Decimal` (fixed scale, and PostgreSQL
15's negative scales), `VariableScaleDecimal` (numeric without a declared scale) and `Bits`.

Connect sends their values as bytes (base64 text in JSON); the byte helpers here are shared with the
physical `bytes` type. `NUMERIC_FACTORIES` is merged into `logical_types.LOGICAL_FACTORIES`, the one
table `make_converter` looks in.
"""

from __future__ import annotations

import binascii
import decimal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from eventbus.debezium.conversion_errors import CONVERSION_ERRORS, Unfit, conversion_error, guard, named
from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.pg_types import is_negative_scale

if TYPE_CHECKING:
    from eventbus.debezium.logical_types import ColumnType, Converter, ConverterOptions, Factory

# Exact decimal arithmetic: `scaleb` with the default context (28 digits) would round long numerics.
_EXACT: Final = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_a2b = binascii.a2b_base64


def bytes_decoder(opts: ConverterOptions) -> Callable[[Any], bytes]:
    """Raw bytes from a JSON (base64 text) or Avro (bytes) value."""
    if opts.binary:
        return bytes
    return _a2b


def bytes_placeholder(opts: ConverterOptions) -> Any:
    return opts.placeholder.raw if opts.binary else opts.placeholder.base64


def decimal_from_unscaled(unscaled: int, scale: int) -> decimal.Decimal:
    """`unscaled * 10**-scale`, exactly (no context rounding, whatever the number of digits)."""
    return decimal.Decimal(unscaled).scaleb(-scale, _EXACT)


def _unscaled(raw: bytes) -> int:
    # Connect decimals are the big-endian two's-complement bytes of the unscaled BigInteger.
    return int.from_bytes(raw, "big", signed=True)


def _decimal(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    try:
        scale = int(col.parameters["scale"])
    except (KeyError, ValueError, TypeError) as exc:
        raise DecodeError(f"column {column!r}: Decimal schema without an integer 'scale' parameter") from exc
    if is_negative_scale(scale):  # not any scale above 1000: 10**scale of a garbled one takes ages
        return _whole_decimal(col, opts, column, 10**scale)
    ph = bytes_placeholder(opts)
    to_bytes = bytes_decoder(opts)
    # When decimal.handling.mode is `string` or `double` the schema has no Decimal name, so this
    # converter only ever sees bytes; the placeholder check comes first because numerics can be TOASTed.
    unavailable = UNAVAILABLE
    exact = _EXACT
    neg_scale = -scale
    dec = decimal.Decimal
    from_bytes = int.from_bytes

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v == ph:
            return unavailable
        try:
            return dec(from_bytes(to_bytes(v), "big", signed=True)).scaleb(neg_scale, exact)
        except CONVERSION_ERRORS as exc:
            raise conversion_error(column, col, v, exc) from exc

    return named(convert, column, col)


def _whole_decimal(col: ColumnType, opts: ConverterOptions, column: str, factor: int) -> Converter:
    """numeric(p,-s) (PostgreSQL 15+): Debezium states scale 2048-s and sends each value scaled to
    it, so 1234600 comes as 1234600 followed by 2046 zeros at scale 2046. The value is that whole
    number, without the 2046 places (its text would be thousands of characters, and no Avro decimal
    has such a scale)."""
    ph = bytes_placeholder(opts)
    to_bytes = bytes_decoder(opts)

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v == ph:
            return UNAVAILABLE
        whole, rest = divmod(_unscaled(to_bytes(v)), factor)
        if rest:
            raise Unfit("a numeric with a negative scale that is not a whole number")
        return decimal.Decimal(whole)

    return guard(convert, column, col)


def _variable_scale_decimal(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    to_bytes = bytes_decoder(opts)
    ph_text = opts.placeholder.text
    ph_bytes = bytes_placeholder(opts)

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v.__class__ is not dict:
            if v in (ph_text, ph_bytes):
                return UNAVAILABLE
            raise Unfit(f"expected a {{scale, value}} object, got {type(v).__name__}")
        return decimal_from_unscaled(_unscaled(to_bytes(v["value"])), int(v["scale"]))

    return guard(convert, column, col)


def _bits(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    # Debezium sends BIT(n>1)/VARBIT as the bit string's value in *little-endian* bytes (the rightmost
    # bit of '1011' is bit 0), possibly shortened to the bytes actually needed. We return that value as
    # an int: exact, and `format(v, f"0{n}b")` gives back the text. BIT(1) arrives as a plain boolean.
    to_bytes = bytes_decoder(opts)
    ph = bytes_placeholder(opts)

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v == ph:
            return UNAVAILABLE
        return int.from_bytes(to_bytes(v), "little")

    return guard(convert, column, col)


NUMERIC_FACTORIES: Final[dict[str, Factory]] = {
    "org.apache.kafka.connect.data.Decimal": _decimal,
    "io.debezium.data.VariableScaleDecimal": _variable_scale_decimal,
    "io.debezium.data.Bits": _bits,
}
