"""Which TiDB errors mean "another transaction got in the way": nothing was stored, run again."""

from __future__ import annotations

import sqlalchemy as sa

from langchain_tidb_bedrock.db.component import db_error_code

__all__ = ["DUPLICATE_KEY", "WRITE_CONFLICTS", "is_write_conflict"]

# 1213 deadlock, 9007 write conflict, 8002 "can not retry select for update", 8022 retryable
# transaction error, 8028 schema changed (the table was just created or altered).
WRITE_CONFLICTS = frozenset({1213, 9007, 8002, 8022, 8028})
DUPLICATE_KEY = 1062
_LOCK_RETRY_LIMIT = 1105  # TiDB's catch-all code; "lock retry limit" means too many conflicts


def is_write_conflict(exc: BaseException, *, duplicate_key: bool = False) -> bool:
    """Whether ``exc`` is a conflict with another writer, so running the write again may succeed.

    Args:
        exc: the error a statement or transaction raised.
        duplicate_key: count a duplicate key (1062) as a conflict too: for writes that number
            their rows from what they read, where two writers can pick the same number.
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    code = db_error_code(exc)
    if code in WRITE_CONFLICTS or (duplicate_key and code == DUPLICATE_KEY):
        return True
    return code == _LOCK_RETRY_LIMIT and "lock retry limit" in str(exc.orig)
