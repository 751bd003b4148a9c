"""Column values as JSON-safe metadata: what a vector store (or ``json.dumps``) can keep."""

from __future__ import annotations

import base64
import datetime as dt
import math
from decimal import Decimal
from typing import Any

__all__ = ["json_safe", "text_of"]


def _decimal(value: Decimal) -> int | float | str:
    # Lossless: a whole number as int, else a float when it prints back the same digits,
    # else the decimal's own text (DECIMAL(30,10) money stays exact).
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    return str(value)


def _time_of_day(value: dt.timedelta) -> str:
    # PyMySQL returns TIME columns as timedelta; MySQL's own text form is [-]HH:MM:SS[.ffffff].
    sign = "-" if value < dt.timedelta(0) else ""
    micros = abs(value) // dt.timedelta(microseconds=1)
    seconds, micro = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{micro:06d}" if micro else text


def json_safe(value: Any) -> Any:
    """``value`` as JSON data, losing nothing that can be kept.

    ``Decimal`` -> int/float/text (whichever is exact), dates and times -> ISO 8601 text,
    bytes -> UTF-8 text (base64 text when not UTF-8), sets -> sorted lists.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _time_of_day(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(v) for v in value), key=str)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)


def text_of(value: Any) -> str:
    """A column value as page-content text (NULL: empty)."""
    if value is None:
        return ""
    safe = json_safe(value)
    return safe if isinstance(safe, str) else str(safe)
