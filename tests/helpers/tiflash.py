"""Waiting for TiFlash: replicas become available asynchronously after the DDL returns."""

from __future__ import annotations

import time

import sqlalchemy as sa

__all__ = ["wait_for_tiflash_replica"]

_AVAILABLE = sa.text(
    "SELECT AVAILABLE FROM INFORMATION_SCHEMA.TIFLASH_REPLICA"
    " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
)


def wait_for_tiflash_replica(engine: sa.Engine, table: str, timeout: float = 60.0) -> None:
    """Block until ``table``'s TiFlash replica is available: plans use TiFlash only then.

    Raises:
        TimeoutError: not available within ``timeout`` seconds (or the table has no replica).
    """
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while True:
            available = conn.execute(_AVAILABLE, {"t": table}).scalar()
            conn.rollback()  # a fresh snapshot for the next poll
            if available == 1:
                return
            if time.monotonic() > deadline:
                msg = f"TiFlash replica of {table!r} not available after {timeout:.0f}s"
                raise TimeoutError(msg)
            time.sleep(0.1)
