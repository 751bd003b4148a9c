"""Wire encoding of vectors and metadata, with the checks that must pass before any write.

Vectors go to TiDB as text. orjson writes float32 with the shortest exact representation, so a
1024-dim vector is ~5.5 KB instead of ~18 KB for ``str(list)``, about 20x faster to produce.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

__all__ = [
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
        lengths = sorted({len(v) for v in vectors}) if not isinstance(vectors, np.ndarray) else []
        detail = f" (lengths seen: {lengths[:5]})" if len(lengths) > 1 else ""
        msg = f"{what}s must be equal-length lists of numbers{detail}: {exc}"
        raise ValueError(msg) from None
    if matrix.ndim != 2:
        msg = f"expected a list of {what} vectors, got an array of shape {matrix.shape}"
        raise ValueError(msg)
    if dimension is not None and matrix.shape[1] != dimension:
        msg = (
            f"{what} dimension mismatch: the table stores {dimension}-dimensional vectors, "
            f"got {matrix.shape[1]}"
        )
        raise ValueError(msg)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        msg = f"{what} at position {bad} contains NaN or infinity"
        raise ValueError(msg)
    if reject_zero and len(matrix):
        norms = np.einsum("ij,ij->i", matrix, matrix)
        if (norms == 0).any():
            bad = int(np.argmax(norms == 0))
            msg = (
                f"{what} at position {bad} is all zeros: cosine distance is undefined for it "
                "(TiDB returns NULL, which would sort first)"
            )
            raise ValueError(msg)
    return matrix


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


def encode_metadata(metadata: Any, position: int) -> str:
    """Metadata as JSON text; raises ValueError unless it is a JSON object of finite values."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, dict):
        msg = f"metadata at position {position} must be a dict, got {type(metadata).__name__}"
        raise ValueError(msg)
    try:
        # stdlib json on purpose: orjson would quietly turn NaN into null and datetimes into
        # strings, so the metadata would not round-trip.
        return json.dumps(metadata, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        msg = f"metadata at position {position} is not JSON-serialisable: {exc}"
        raise ValueError(msg) from None


def decode_metadata(text: str | bytes | None) -> dict[str, Any]:
    """JSON text from the ``meta`` column back to a dict."""
    if text is None:
        return {}
    value = orjson.loads(text)
    return value if isinstance(value, dict) else {"value": value}
