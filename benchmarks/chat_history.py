"""Chat history benchmark: one chat turn's storage work, p50 per turn.

A turn is what ``RunnableWithMessageHistory`` does around each answer: read the session's
messages from TiDB, then append the question and the answer. Contenders, each on its own
session of the same length:

- ours: ``TiDBChatMessageHistory`` on a shared engine (one SELECT, then one INSERT numbered
  from the last message read; an INSERT ... SELECT when another writer took the number);
- langchain-community's ``TiDBChatMessageHistory``: it keeps a cache filled once, so its
  ``messages`` would not see other writers; the fresh read is ``reload_cache()``. It has no
  bulk add, so a turn is two INSERT + COMMIT;
- raw SQL, the floor: one multi-row INSERT with the sequence numbered by the client (unsafe
  with two writers) and one SELECT, on a plain SQLAlchemy connection; messages decoded alike.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
import uuid
import warnings
from collections.abc import Callable

import sqlalchemy as sa
from langchain_core.messages import AIMessage, HumanMessage, message_to_dict, messages_from_dict

from benchmarks.common import Row
from langchain_tidb_bedrock import TiDBChatMessageHistory, TiDBEngine

QUESTION = "Which function does TiDB Vector Search rank embeddings with?"
ANSWER = "It ranks them with VEC_COSINE_DISTANCE [1]. " * 4


Turn = Callable[[int], int]


def _ours(engine: TiDBEngine, table: str) -> Turn:
    history = TiDBChatMessageHistory(f"s-{uuid.uuid4().hex[:8]}", engine=engine, table_name=table)
    assert history.messages == []  # table lookup outside the timing, as in a running app

    def turn(i: int) -> int:
        read = len(history.messages)
        history.add_messages([HumanMessage(f"{i}: {QUESTION}"), AIMessage(ANSWER)])
        return read

    return turn


def _community(url: str, table: str, stack: contextlib.ExitStack) -> Turn:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.chat_message_histories import (
            TiDBChatMessageHistory as CommunityHistory,
        )

    history = CommunityHistory(f"s-{uuid.uuid4().hex[:8]}", url, table_name=table)
    stack.callback(history.engine.dispose)
    stack.callback(history.session.close)

    def turn(i: int) -> int:
        history.reload_cache()  # its `messages` alone never looks at the table again
        read = len(history.messages)
        history.add_messages([HumanMessage(f"{i}: {QUESTION}"), AIMessage(ANSWER)])
        return read

    return turn


def _raw(url: str, table: str, stack: contextlib.ExitStack) -> Turn:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    stack.callback(engine.dispose)
    conn = stack.enter_context(engine.connect())
    session = f"s-{uuid.uuid4().hex[:8]}"
    insert = sa.text(
        f"INSERT INTO `{table}` (session_id, seq, message) VALUES (:s, :q1, :m1), (:s, :q2, :m2)"
    )
    select = sa.text(f"SELECT message FROM `{table}` WHERE session_id = :s ORDER BY seq")

    def turn(i: int) -> int:
        rows = conn.execute(select, {"s": session}).all()
        read = len(messages_from_dict([json.loads(r[0]) for r in rows]))
        conn.execute(
            insert,
            {
                "s": session,
                "q1": 2 * i + 1,
                "m1": json.dumps(message_to_dict(HumanMessage(f"{i}: {QUESTION}"))),
                "q2": 2 * i + 2,
                "m2": json.dumps(message_to_dict(AIMessage(ANSWER))),
            },
        )
        return read

    return turn


def chat_history_row(url: str, turns: int) -> Row:
    """p50 of one turn (read the session, append 2 messages), sessions growing to 2*turns.

    The contenders take turns (round robin), so a busy machine slows them alike.
    """
    ours_table = f"b_chat_{uuid.uuid4().hex[:8]}"
    community_table = f"b_chatc_{uuid.uuid4().hex[:8]}"
    engine = TiDBEngine(url)
    times: dict[str, list[float]] = {"ours": [], "langchain-community": [], "raw SQL": []}
    try:
        with contextlib.ExitStack() as stack:
            contenders = {
                "ours": _ours(engine, ours_table),
                "raw SQL": _raw(url, ours_table, stack),  # our table: same rows, same key
                "langchain-community": _community(url, community_table, stack),
            }
            for i in range(turns):
                for name, turn in contenders.items():
                    start = time.perf_counter()
                    read = turn(i)
                    times[name].append(time.perf_counter() - start)
                    assert read == 2 * i, (name, read, i)  # each read its whole session
    finally:
        with engine.sync.begin() as conn:
            for table in (ours_table, community_table):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS `{table}`"))
        engine.close()
    p50 = {name: statistics.median(t) * 1000 for name, t in times.items()}
    return Row(
        f"chat history turn (read + append 2), {turns} turns",
        "ms p50",
        p50.pop("ours"),
        p50,
        higher_is_better=False,
        notes="community: reload_cache() for a fresh read, 2 commits per turn (no bulk add); "
        "raw: client-numbered INSERT + SELECT on one connection (unsafe with two writers)",
    )
