"""Wire encoding of vectors and metadata, with the checks that must pass before any write.

Vectors go to TiDB as text. orjson writes float32 with the shortest exact representation, so a
1024-dim vector is ~5.5 KB instead of ~18 KB for ``str(list)``, about 20x faster to produce.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.vectorstores.filters import JSON_INT_MAX, JSON_INT_MIN

__all__ = [
    "check_metadata",
    "is_utf8",
    "decode_metadata",
    "decode_vector",
    "encode_metadata",
    "encode_query_vector",
    "encode_vectors",
    "to_matrix",
]

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def to_matrix(
    vectors: Sequence[Sequence[float]] | npt.NDArray[Any],
    dimension: int | None,
    *,
    reject_zero: bool,
    what: str = "embedding",
) -> npt.NDArray[np.float32]:
    """Validate vectors (shape, finiteness, zero norm) into a float32 matrix.

    Raises ValueError naming the first offending position.
    """
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(_first_bad_vector(vectors, dimension, what) or str(exc)) from None
    if matrix.ndim != 2:
        detail = _first_bad_vector(vectors, dimension, what)
        msg = detail or f"expected a list of {what} vectors, got an array of shape {matrix.shape}"
        raise InvalidInputError(msg)
    if dimension is not None and matrix.shape[1] != dimension:
        msg = (
            f"{what} dimension mismatch at position 0: the table stores {dimension}-dimensional "
            f"vectors, got {matrix.shape[1]}"
        )
        raise InvalidInputError(msg)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        msg = f"{what} at position {bad} contains NaN or infinity"
        raise InvalidInputError(msg)
    if reject_zero and len(matrix):
        norms = np.einsum("ij,ij->i", matrix, matrix)
        if (norms == 0).any():
            bad = int(np.argmax(norms == 0))
            msg = (
                f"{what} at position {bad} is all zeros: cosine distance is undefined for it "
                "(TiDB returns NULL, which would sort first)"
            )
            raise InvalidInputError(msg)
    return matrix


def _first_bad_vector(vectors: Any, dimension: int | None, what: str) -> str | None:
    """Name the first vector that is not a list of numbers of the expected length."""
    if isinstance(vectors, (np.ndarray, str, bytes)):
        return None
    expected = dimension
    for n, vector in enumerate(vectors):
        if isinstance(vector, (str, bytes)) or not hasattr(vector, "__len__"):
            return f"{what} at position {n} must be a list of numbers, got {type(vector).__name__}"
        if expected is None:
            expected = len(vector)
        if len(vector) != expected:
            return (
                f"{what} dimension mismatch at position {n}: expected {expected} numbers, "
                f"got {len(vector)}"
            )
        try:
            np.asarray(vector, dtype=np.float32)
        except (ValueError, TypeError):
            return f"{what} at position {n} must be a list of numbers"
    return None


def encode_vectors(matrix: npt.NDArray[np.float32]) -> list[str]:
    """Each row as TiDB vector text, e.g. ``[0.1,-2.5]``."""
    return [orjson.dumps(row, option=_NUMPY).decode() for row in matrix]


def encode_query_vector(
    vector: Sequence[float], dimension: int | None, *, reject_zero: bool
) -> str:
    """Validate and encode one query vector."""
    matrix = to_matrix([vector], dimension, reject_zero=reject_zero, what="query embedding")
    return encode_vectors(matrix)[0]


def decode_vector(text: str | bytes) -> list[float]:
    """TiDB vector text back to floats."""
    out: list[float] = orjson.loads(text)
    return out


# TiDB refuses JSON nested deeper than 100 arrays/objects (error 3157).
MAX_JSON_DEPTH = 100


def is_utf8(text: str) -> bool:
    """False for a string with a lone surrogate (it cannot be sent to TiDB)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def check_metadata(metadata: dict[str, Any], position: int) -> None:
    """Refuse what TiDB would change or reject, naming the position and the key path.

    Keys must be strings (others would become strings and could collide), integers must fit
    int64/uint64 (others would become lossy doubles), strings must be valid UTF-8, and nesting
    must stay within TiDB's depth limit. Iterative, so any depth fails cleanly.
    """
    stack: list[tuple[Any, str, int]] = [(metadata, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        where = f"metadata at position {position}" + (f", key {path!r}," if path else "")
        if isinstance(value, (dict, list, tuple)):
            if depth > MAX_JSON_DEPTH:
                msg = f"{where} is nested deeper than TiDB's {MAX_JSON_DEPTH} levels"
                raise InvalidInputError(msg)
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        msg = (
                            f"{where} has the non-string key {key!r}: JSON keys are strings; "
                            "convert it yourself so two keys cannot collide"
                        )
                        raise InvalidInputError(msg)
                    if not is_utf8(key):
                        msg = f"{where} has a key that is not valid UTF-8 (a lone surrogate)"
                        raise InvalidInputError(msg)
                    stack.append((item, f"{path}.{key}" if path else key, depth + 1))
            else:
                for n, item in enumerate(value):
                    stack.append((item, f"{path}[{n}]", depth + 1))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not JSON_INT_MIN <= value <= JSON_INT_MAX:
                msg = (
                    f"{where} holds the integer {value}, outside the 64-bit range TiDB stores "
                    "exactly (it would come back as a rounded float); store it as a string"
                )
                raise InvalidInputError(msg)
        elif isinstance(value, str) and not is_utf8(value):
            msg = f"{where} holds a string that is not valid UTF-8 (a lone surrogate)"
            raise InvalidInputError(msg)


def _json_default(value: Any) -> Any:
    # Loaders put dates in metadata (file times, feed dates): stored as ISO 8601 strings,
    # which sort and compare (``$gte``) in time order as long as they share one form.
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


def encode_metadata(metadata: Any, position: int) -> str:
    """Metadata as JSON text; raises ValueError unless TiDB can store it unchanged.

    Floats keep their value but not always their type: TiDB prints the double ``1.0`` as
    ``1`` and ``-0.0`` as ``-0``, so they come back as the equal integers ``1`` and ``0``.
    ``datetime``, ``date`` and ``time`` values are stored as ISO 8601 strings (their
    ``isoformat()``) and come back as those strings.
    """
    if metadata is None:
        return "{}"
    if not isinstance(metadata, dict):
        msg = f"metadata at position {position} must be a dict, got {type(metadata).__name__}"
        raise InvalidInputError(msg)
    check_metadata(metadata, position)
    try:
        # stdlib json on purpose: orjson would quietly turn NaN into null. Dates become ISO
        # strings on purpose (see _json_default); anything else unknown is refused.
        return json.dumps(
            metadata,
            allow_nan=False,
            ensure_ascii=False,
            separators=(",", ":"),
            default=_json_default,
        )
    except (TypeError, ValueError) as exc:
        msg = f"metadata at position {position} is not JSON-serialisable: {exc}"
        raise InvalidInputError(msg) from None


def decode_metadata(text: str | bytes | None) -> dict[str, Any]:
    """JSON text from the ``meta`` column back to a dict."""
    if text is None:
        return {}
    value = orjson.loads(text)
    return value if isinstance(value, dict) else {"value": value}
