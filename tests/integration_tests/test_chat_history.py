"""TiDBChatMessageHistory against a real local TiDB (and LocalBedrock for the RAG chain)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers.statements import recorded
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables.history import RunnableWithMessageHistory

from langchain_tidb_bedrock import TiDBEngine
from langchain_tidb_bedrock.chains.rag import create_rag_chain
from langchain_tidb_bedrock.chat_message_histories import TiDBChatMessageHistory
from langchain_tidb_bedrock.chat_models.llama import create_llama3_chat
from langchain_tidb_bedrock.embeddings.titan import BedrockTitanEmbeddings
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.local.bedrock import LocalBedrock
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore

COMMUNITY_DDL = """
CREATE TABLE `{table}` (
    id INT AUTO_INCREMENT PRIMARY KEY,
    session_id VARCHAR(255) NOT NULL,
    message JSON NOT NULL,
    create_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    INDEX session_idx (session_id)
)"""


@pytest.fixture
def engine(tidb_url: str) -> Iterator[TiDBEngine]:
    with TiDBEngine(tidb_url) as shared:
        yield shared


def _history(engine: TiDBEngine, table: str, session: str = "s1", **kw: Any) -> Any:
    return TiDBChatMessageHistory(session, engine=engine, table_name=table, **kw)


def _texts(messages: list[BaseMessage]) -> list[str]:
    return [str(m.content) for m in messages]


def _rows(tidb_engine: sa.Engine, table: str) -> int:
    with tidb_engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM `{table}`")).scalar_one())


def _exists(tidb_engine: sa.Engine, table: str) -> bool:
    with tidb_engine.connect() as conn:
        return table in sa.inspect(conn).get_table_names()


@pytest.fixture
def statements(engine: TiDBEngine) -> Iterator[list[str]]:
    """SQL sent on the engine's pools (reads and writes) during the test."""
    with recorded(engine) as seen:
        yield seen


# ---------------------------------------------------------------------- basics


def test_round_trip_keeps_types_and_order(engine: TiDBEngine, table_name: str) -> None:
    history = _history(engine, table_name)
    tool_call = {"name": "search", "args": {"q": "tidb"}, "id": "call-1"}
    sent: list[BaseMessage] = [
        SystemMessage("be brief"),
        HumanMessage("What is TiDB? 数据库 🚀"),
        AIMessage("", tool_calls=[tool_call]),
        ToolMessage("TiDB is a database", tool_call_id="call-1"),
        AIMessage("A distributed SQL database.", id="ai-1"),
    ]
    history.add_messages(sent[:2])
    history.add_message(sent[2])
    history.add_messages(sent[3:])
    got = history.messages
    assert [type(m) for m in got] == [type(m) for m in sent]
    assert got == sent
    assert got[2].tool_calls == [{**tool_call, "type": "tool_call"}]
    assert got[4].id == "ai-1"


def test_add_messages_is_one_statement(
    engine: TiDBEngine, table_name: str, statements: list[str]
) -> None:
    history = _history(engine, table_name)
    history.add_messages([HumanMessage("warm up")])  # creates the table
    statements.clear()
    commits: list[int] = []
    for pool in (engine.sync, engine.sync_read):
        sa.event.listen(pool, "commit", lambda conn: commits.append(1))
    history.add_messages([HumanMessage(f"m{i}") for i in range(25)])
    assert commits == []  # autocommit: the statement is the whole round trip
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1
    assert len(statements) == 1  # no DDL, schema read or COMMIT after the first write
    assert len(history.messages) == 26


def test_no_io_until_used_and_table_made_on_first_write(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    # A closed port: constructing must not connect.
    TiDBChatMessageHistory("s", connection_string="mysql+pymysql://root@127.0.0.1:1/x")
    history = _history(engine, table_name)
    assert history.messages == []
    assert history.list_sessions() == []
    history.clear()
    assert not _exists(tidb_engine, table_name)  # reads and clears create nothing
    history.add_messages([HumanMessage("hi")])
    assert _exists(tidb_engine, table_name)
    assert _texts(history.messages) == ["hi"]


def test_sessions_are_separate_and_listed(engine: TiDBEngine, table_name: str) -> None:
    names = ["user_1:a", "user_1:b", "userX1:c", "user%2", "zeta"]
    for name in names:
        _history(engine, table_name, name).add_messages([HumanMessage(f"in {name}")])
    first = _history(engine, table_name, "user_1:a")
    assert _texts(first.messages) == ["in user_1:a"]
    assert first.list_sessions() == sorted(names)
    # '_' and '%' in a prefix match only themselves.
    assert first.list_sessions(prefix="user_1") == ["user_1:a", "user_1:b"]
    assert first.list_sessions(prefix="user%") == ["user%2"]
    assert first.list_sessions(limit=2) == sorted(names)[:2]
    assert first.list_sessions(limit=0) == []
    assert first.delete_session("user_1:b") == 1
    assert first.list_sessions(prefix="user_1") == ["user_1:a"]
    first.clear()
    assert first.messages == []
    assert "user_1:a" not in first.list_sessions()
    assert _texts(_history(engine, table_name, "zeta").messages) == ["in zeta"]


def test_session_ids_compare_exactly(engine: TiDBEngine, table_name: str) -> None:
    _history(engine, table_name, "Chat").add_messages([HumanMessage("upper")])
    _history(engine, table_name, "chat").add_messages([HumanMessage("lower")])
    assert _texts(_history(engine, table_name, "Chat").messages) == ["upper"]
    assert _texts(_history(engine, table_name, "chat").messages) == ["lower"]


def test_messages_setter_replaces_in_one_go(engine: TiDBEngine, table_name: str) -> None:
    history = _history(engine, table_name)
    history.add_messages([HumanMessage("old 1"), AIMessage("old 2")])
    history.messages = [HumanMessage("new")]
    assert _texts(history.messages) == ["new"]
    history.add_messages([AIMessage("after")])
    assert _texts(history.messages) == ["new", "after"]


# ---------------------------------------------------------------------- other writers

_WRITER = """
import sys, time
from pathlib import Path
from langchain_core.messages import AIMessage, HumanMessage
from langchain_tidb_bedrock.chat_message_histories import TiDBChatMessageHistory

url, table, session, tag, partner, n, rounds = sys.argv[1:]
history = TiDBChatMessageHistory(session, connection_string=url, table_name=table)
history.messages  # connected, table looked up
for i in range(int(n)):
    if partner != "-":  # lock-step: both writers append round i at the same moment
        Path(rounds, f"{tag}.{i}").touch()
        while not Path(rounds, f"{partner}.{i}").exists():
            time.sleep(0.0005)
    history.add_messages([HumanMessage(f"{tag}-{i}-q"), AIMessage(f"{tag}-{i}-a")])
history.close()
"""


def _start_writer(
    url: str, table: str, session: str, tag: str, partner: str, n: int, rounds: Path
) -> Any:
    args = [sys.executable, "-c", _WRITER, url, table, session, tag, partner, str(n), str(rounds)]
    return subprocess.Popen(args, stderr=subprocess.PIPE, text=True)  # noqa: S603


def test_an_append_after_a_read_is_a_plain_insert(
    engine: TiDBEngine, table_name: str, statements: list[str]
) -> None:
    """After a read (a chat turn's order), the append is numbered from the last message read:
    a plain INSERT ... VALUES, without the numbering SELECT; another history's append in
    between collides on the key, and the append runs again numbered in SQL."""
    history = _history(engine, table_name, "plain")
    other = _history(engine, table_name, "plain")
    history.add_messages([HumanMessage("q0"), AIMessage("a0")])  # nothing read: numbered in SQL
    assert "SELECT" in statements[-1].upper()
    assert _texts(history.messages) == ["q0", "a0"]
    statements.clear()
    history.add_messages([HumanMessage("q1"), AIMessage("a1")])
    history.add_messages([HumanMessage("q2")])  # still known: numbered from its own append
    assert len(statements) == 2, statements
    for sent in statements:
        assert sent.lstrip().upper().startswith("INSERT"), sent
        assert "SELECT" not in sent.upper(), sent
    other.add_messages([HumanMessage("other")])  # history's last number is now stale
    statements.clear()
    history.add_messages([HumanMessage("q3")])
    assert len(statements) == 2, statements
    assert "SELECT" not in statements[0].upper()
    assert "MAX(SEQ)" in statements[1].upper()  # the retry, numbered in SQL
    assert _texts(history.messages) == ["q0", "a0", "q1", "a1", "q2", "other", "q3"]


def test_threads_read_then_append_to_one_session(engine: TiDBEngine, table_name: str) -> None:
    """Chat turns racing on one session (each writer reads, then appends a question and an
    answer, numbered from what it read): every collision is renumbered, so nothing is lost,
    doubled or split, and each writer's turns keep their order. Races are random, so rounds
    run until one has collided (each round checks exactness)."""
    for attempt in range(5):
        with recorded(engine) as sent:
            _race_turns(engine, table_name, f"turns-{attempt}", writers=4, turns=12)
        inserts = [x.upper() for x in sent if x.lstrip().upper().startswith("INSERT")]
        assert any("SELECT" not in x for x in inserts)  # numbered from the read
        if any("MAX(SEQ)" in x for x in inserts):  # a collision, renumbered in SQL
            break
    else:
        pytest.fail("no two turns collided in 5 rounds")


def _race_turns(engine: TiDBEngine, table: str, session: str, *, writers: int, turns: int) -> None:
    def chat(tag: int) -> None:
        history = _history(engine, table, session)
        for i in range(turns):
            history.messages  # noqa: B018 - the turn's read sets the number to append after
            history.add_messages([HumanMessage(f"{tag}-{i}-q"), AIMessage(f"{tag}-{i}-a")])

    _in_threads(chat, writers)
    got = _texts(_history(engine, table, session).messages)
    assert len(got) == 2 * writers * turns
    for tag in range(writers):
        mine = [t for t in got if t.startswith(f"{tag}-")]
        assert mine == [f"{tag}-{i}-{k}" for i in range(turns) for k in ("q", "a")]
    for position in range(0, len(got), 2):  # a turn's two messages stay adjacent
        assert got[position + 1] == got[position][:-1] + "a", got[position : position + 2]


def _in_threads(body: Callable[[int], None], writers: int) -> None:
    """Run ``body(tag)`` in ``writers`` threads started together; re-raise the first error."""
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def run(tag: int) -> None:
        try:
            barrier.wait()
            body(tag)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_two_processes_append_to_one_session(
    tidb_url: str, tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str, tmp_path: Path
) -> None:
    n = 20
    # Both start on a missing table, so round 0 also races to create it.
    procs = [
        _start_writer(tidb_url, table_name, "shared", tag, partner, n, tmp_path)
        for tag, partner in (("A", "B"), ("B", "A"))
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()

    got = _texts(_history(engine, table_name, "shared").messages)
    assert len(got) == 2 * 2 * n  # nothing lost, nothing doubled
    for tag in ("A", "B"):
        mine = [t for t in got if t.startswith(tag)]
        assert mine == [f"{tag}-{i}-{k}" for i in range(n) for k in ("q", "a")]
    # Each call's two messages are adjacent (one statement, numbered together), and each
    # round holds both writers' calls of that round: the appends really raced.
    for position in range(0, len(got), 4):
        first, second = got[position : position + 2], got[position + 2 : position + 4]
        round_no = position // 4
        assert {first[0], second[0]} == {f"A-{round_no}-q", f"B-{round_no}-q"}
        assert first[1] == first[0][:-1] + "a"
        assert second[1] == second[0][:-1] + "a"
    with tidb_engine.connect() as conn:
        seqs = conn.execute(sa.text(f"SELECT seq FROM `{table_name}` ORDER BY seq")).scalars()
        assert list(seqs) == list(range(1, 4 * n + 1))


def test_optimistic_transactions_retry_conflicts(
    tidb_url: str, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With TiDB's own statement retry off, a clash reaches the client as a write conflict
    # (9007): the history runs the statement again, and order and count stay exact. Races
    # are random, so rounds run until one has clashed (each round checks exactness).
    from langchain_tidb_bedrock.chat_message_histories import base

    conflicts: list[int] = []
    real = base._conflict

    def counting(exc: BaseException) -> bool:
        clash = real(exc)
        if clash:
            conflicts.append(1)
        return clash

    monkeypatch.setattr(base, "_conflict", counting)
    init = {"init_command": "SET SESSION tidb_txn_mode = 'optimistic', tidb_retry_limit = 0"}
    with TiDBEngine(tidb_url, engine_args={"connect_args": init}) as optimistic:
        for attempt in range(10):
            _race_threads(optimistic, table_name, writers=4, n=15, session=f"race-{attempt}")
            if conflicts:
                break
    assert conflicts


def _race_threads(
    engine: TiDBEngine, table: str, *, writers: int, n: int, session: str = "threads"
) -> None:
    def write(tag: int) -> None:
        history = _history(engine, table, session)
        for i in range(n):
            history.add_messages([HumanMessage(f"{tag}-{i}")])

    _in_threads(write, writers)
    got = _texts(_history(engine, table, session).messages)
    assert len(got) == n * writers
    for tag in range(writers):
        assert [t for t in got if t.startswith(f"{tag}-")] == [f"{tag}-{i}" for i in range(n)]


def test_threads_append_to_one_session(engine: TiDBEngine, table_name: str) -> None:
    _race_threads(engine, table_name, writers=4, n=15)


def test_another_process_write_is_seen_on_next_read(
    tidb_url: str, engine: TiDBEngine, table_name: str, tmp_path: Path
) -> None:
    history = _history(engine, table_name, "seen")
    history.add_messages([HumanMessage("mine")])
    assert _texts(history.messages) == ["mine"]
    proc = _start_writer(tidb_url, table_name, "seen", "P", "-", 1, tmp_path)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert _texts(history.messages) == ["mine", "P-0-q", "P-0-a"]


async def test_async_api(engine: TiDBEngine, table_name: str) -> None:
    history = _history(engine, table_name, "async")
    await history.aadd_messages([HumanMessage("a1"), AIMessage("a2")])
    await history.aadd_messages([HumanMessage("a3")])
    assert _texts(await history.aget_messages()) == ["a1", "a2", "a3"]
    other = _history(engine, table_name, "async-2")
    await other.aadd_messages([HumanMessage("b")])
    assert await history.alist_sessions(prefix="async") == ["async", "async-2"]
    assert await history.adelete_session("async-2") == 1
    await history.aclear()
    assert await history.aget_messages() == []
    assert await history.alist_sessions() == []
    await engine.aclose()


async def test_async_appends_race_exactly(engine: TiDBEngine, table_name: str) -> None:
    import asyncio

    async def write(tag: int) -> None:
        history = _history(engine, table_name, "arace")
        for i in range(10):
            await history.aadd_messages([HumanMessage(f"{tag}-{i}")])

    await asyncio.gather(*(write(t) for t in range(3)))
    got = _texts(await _history(engine, table_name, "arace").aget_messages())
    assert len(got) == 30
    for tag in range(3):
        assert [t for t in got if t.startswith(f"{tag}-")] == [f"{tag}-{i}" for i in range(10)]
    await engine.aclose()


# ---------------------------------------------------------------------- TTL


def _show_create(tidb_engine: sa.Engine, table: str) -> str:
    with tidb_engine.connect() as conn:
        ddl = str(conn.execute(sa.text(f"SHOW CREATE TABLE `{table}`")).one()[1])
    return re.sub(r" AUTO_INCREMENT=\d+", "", ddl)  # the id allocator's position, not schema


def test_ttl_table_and_read_side_expiry(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    history = _history(engine, table_name, "ttl", ttl=3600)
    history.add_messages([HumanMessage("old"), AIMessage("older")])
    history.add_messages([HumanMessage("fresh")])
    ddl = _show_create(tidb_engine, table_name)
    assert "TTL=`expires_at` + INTERVAL 0 SECOND" in ddl
    assert "TTL_ENABLE='ON'" in ddl
    # The first two messages' hour passes; TiDB's TTL job has not deleted them yet.
    with tidb_engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE `{table_name}` SET expires_at = NOW(6) - INTERVAL 1 SECOND WHERE seq <= 2"
            )
        )
    assert _rows(tidb_engine, table_name) == 3
    assert _texts(history.messages) == ["fresh"]
    # Expiry is per row: a history without ttl= hides them as well.
    assert _texts(_history(engine, table_name, "ttl").messages) == ["fresh"]
    history.add_messages([AIMessage("next")])
    assert _texts(history.messages) == ["fresh", "next"]
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE `{table_name}` SET expires_at = NOW(6) - INTERVAL 1 SECOND"))
    assert history.messages == []
    assert history.list_sessions() == []  # a session with only expired messages is not listed


def test_ttl_added_to_a_table_made_without_one(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    _history(engine, table_name, "plain").add_messages([HumanMessage("kept")])
    assert "TTL=" not in _show_create(tidb_engine, table_name)
    with TiDBEngine(str(engine.url)) as other:  # another process: it looks the table up again
        _history(other, table_name, "brief", ttl=60).add_messages([HumanMessage("short")])
    assert "TTL=`expires_at`" in _show_create(tidb_engine, table_name)
    with tidb_engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT session_id, expires_at IS NULL, "
                f"TIMESTAMPDIFF(SECOND, NOW(6), expires_at) FROM `{table_name}` ORDER BY session_id"
            )
        ).all()
    assert rows[0][:2] == ("brief", 0)
    assert 50 <= rows[0][2] <= 60
    assert rows[1][:2] == ("plain", 1)


def test_ttl_on_a_community_table_filters_by_create_time(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(COMMUNITY_DDL.format(table=table_name)))
    history = _history(engine, table_name, "c", ttl=60)
    history.add_messages([HumanMessage("old"), HumanMessage("new")])
    with tidb_engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE `{table_name}` SET create_time = NOW() - INTERVAL 2 MINUTE "
                "WHERE message->>'$.data.content' = 'old'"
            )
        )
    assert _texts(history.messages) == ["new"]
    assert "TTL" not in _show_create(tidb_engine, table_name)  # left as it is


# ---------------------------------------------------------------------- langchain-community


@pytest.mark.filterwarnings("ignore:`langchain-community` is being sunset")
def test_opens_a_community_table_as_it_is(
    tidb_url: str, tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    from langchain_community.chat_message_histories import (
        TiDBChatMessageHistory as CommunityHistory,
    )

    with tidb_engine.begin() as conn:
        conn.execute(sa.text(COMMUNITY_DDL.format(table=table_name)))
    before = _show_create(tidb_engine, table_name)
    theirs = CommunityHistory("conv", tidb_url, table_name=table_name)
    theirs.add_user_message("hello from community")
    theirs.add_ai_message("hi back")
    try:
        ours = _history(engine, table_name, "conv")
        assert _texts(ours.messages) == ["hello from community", "hi back"]
        assert [m.type for m in ours.messages] == ["human", "ai"]
        ours.add_messages([HumanMessage("from us"), AIMessage("and back")])
        ours.add_messages([HumanMessage("again")])
        expected = ["hello from community", "hi back", "from us", "and back", "again"]
        assert _texts(ours.messages) == expected
        assert _show_create(tidb_engine, table_name) == before  # no column, index or TTL added
        # langchain-community reads (ORDER BY id) what we wrote, in the same order.
        theirs.reload_cache()
        assert _texts(theirs.messages) == expected
        assert ours.list_sessions() == ["conv"]
        assert ours.delete_session("conv") == 5
    finally:
        theirs.session.close()
        theirs.engine.dispose()


def test_community_table_appends_race_exactly(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(COMMUNITY_DDL.format(table=table_name)))
    barrier = threading.Barrier(3)

    def write(tag: int) -> None:
        history = _history(engine, table_name, f"s{tag % 2}")
        barrier.wait()
        for i in range(10):
            history.add_messages([HumanMessage(f"{tag}-{i}")])

    threads = [threading.Thread(target=write, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    s0 = _texts(_history(engine, table_name, "s0").messages)
    assert [t for t in s0 if t.startswith("0-")] == [f"0-{i}" for i in range(10)]
    assert [t for t in s0 if t.startswith("2-")] == [f"2-{i}" for i in range(10)]
    assert _texts(_history(engine, table_name, "s1").messages) == [f"1-{i}" for i in range(10)]


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("session_id", "problem"),
    [
        ("", "blank"),
        ("   ", "blank"),
        (" padded", "whitespace"),
        ("padded\n", "whitespace"),
        (None, "must be a string"),
        (42, "must be a string"),
        ("x" * 256, "limit is 255"),
        ("bad\ud800", "surrogate"),
    ],
)
def test_bad_session_ids_are_refused(engine: TiDBEngine, session_id: Any, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        TiDBChatMessageHistory(session_id, engine=engine)


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        (["hello"], "message 0 is a str"),
        ([HumanMessage("ok"), {"role": "user", "content": "x"}], "message 1 is a dict"),
        (HumanMessage("one"), "wrap it in a list"),
        ("hello", "got str"),
        ([HumanMessage("ok"), HumanMessage("x", additional_kwargs={"b": b"\x00"})], "message 1"),
        ([HumanMessage("lone \ud800 surrogate")], "message 0"),
    ],
)
def test_bad_messages_write_nothing(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str, messages: Any, problem: str
) -> None:
    history = _history(engine, table_name)
    with pytest.raises(InvalidInputError, match=problem):
        history.add_messages(messages)
    assert not _exists(tidb_engine, table_name)
    history.add_messages([HumanMessage("first")])
    with pytest.raises(InvalidInputError, match=problem):
        history.add_messages(messages)
    assert _texts(history.messages) == ["first"]


def test_other_bad_arguments(engine: TiDBEngine) -> None:
    with pytest.raises(InvalidInputError, match="table name"):
        TiDBChatMessageHistory("s", engine=engine, table_name="x; DROP TABLE y")
    for ttl in (0, -5, "1h", float("nan"), True):
        with pytest.raises(InvalidInputError, match="ttl"):
            TiDBChatMessageHistory("s", engine=engine, ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cannot be combined"):
        TiDBChatMessageHistory("s", engine=engine, connection_string=str(engine.url))
    history = TiDBChatMessageHistory("s", engine=engine)
    with pytest.raises(InvalidInputError, match="limit"):
        history.list_sessions(limit=-1)
    with pytest.raises(InvalidInputError, match="blank"):
        history.delete_session(" ")


def test_write_errors_are_raised(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    history = _history(engine, table_name)
    history.add_messages([HumanMessage("stored")])
    with tidb_engine.begin() as conn:  # a column our INSERT cannot fill
        conn.execute(sa.text(f"ALTER TABLE `{table_name}` ADD COLUMN extra INT NOT NULL"))
    with pytest.raises(sa.exc.DBAPIError) as info:
        history.add_messages([HumanMessage("refused")])
    assert "refused" not in str(info.value)  # no content in the error
    assert _texts(history.messages) == ["stored"]


def test_not_a_chat_table_is_refused(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, body TEXT)"))
    with pytest.raises(InvalidInputError, match="not a chat message table"):
        _history(engine, table_name).add_messages([HumanMessage("x")])


def test_a_dropped_table_is_made_again(
    tidb_engine: sa.Engine, engine: TiDBEngine, table_name: str
) -> None:
    history = _history(engine, table_name)
    history.add_messages([HumanMessage("before")])
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE `{table_name}`"))
    assert history.messages == []
    history.add_messages([HumanMessage("after")])
    assert _texts(history.messages) == ["after"]


def test_a_callers_sqlalchemy_engine_commits(
    tidb_url: str, engine: TiDBEngine, table_name: str
) -> None:
    plain = sa.create_engine(tidb_url)  # not autocommit: the append must commit itself
    try:
        history = TiDBChatMessageHistory("s", engine=plain, table_name=table_name)
        history.add_messages([HumanMessage("kept")])
        assert _texts(_history(engine, table_name, "s").messages) == ["kept"]
    finally:
        plain.dispose()


def test_private_engine_from_connection_string(tidb_url: str, table_name: str) -> None:
    with TiDBChatMessageHistory("s", connection_string=tidb_url, table_name=table_name) as h:
        h.add_messages([HumanMessage("x")])
        assert _texts(h.messages) == ["x"]
        assert h.tidb_engine.sync.pool.checkedout() == 0


# ---------------------------------------------------------------------- with the RAG chain

CORPUS = [
    ("TiDB is an open-source distributed SQL database that supports HTAP workloads.", "tidb.md"),
    (
        "TiDB Vector Search stores embeddings in VECTOR columns and ranks them with "
        "VEC_COSINE_DISTANCE.",
        "vector.md",
    ),
    ("Paris is the capital of France and home of the Eiffel Tower.", "paris.md"),
]


@pytest.fixture(scope="module")
def store(tidb_url: str, local_bedrock: LocalBedrock) -> Iterator[TiDBVectorStore]:
    embeddings = BedrockTitanEmbeddings(dimensions=256, endpoint_url=local_bedrock.endpoint_url)
    vs = TiDBVectorStore(
        embeddings, connection_string=tidb_url, table_name=f"rag_{uuid.uuid4().hex[:12]}"
    )
    vs.add_texts([t for t, _ in CORPUS], [{"source": s} for _, s in CORPUS])
    yield vs
    vs.drop_table()
    vs.close()
    embeddings.close()


def _with_history(store: TiDBVectorStore, bedrock: LocalBedrock, table: str) -> Any:
    chain = create_rag_chain(store, create_llama3_chat(endpoint_url=bedrock.endpoint_url), k=1)
    engine = store.tidb_engine  # the store's engine serves the history too
    return RunnableWithMessageHistory(
        chain,
        lambda session_id: TiDBChatMessageHistory(session_id, engine=engine, table_name=table),
        input_messages_key="question",
        history_messages_key="chat_history",
        output_messages_key="answer",
    )


def _converse_prompts(bedrock: LocalBedrock) -> list[str]:
    return [json.dumps(r.body["messages"]) for r in bedrock.requests if r.op.startswith("Converse")]


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history_around_the_rag_chain(
    store: TiDBVectorStore, bedrock: LocalBedrock, table_name: str
) -> None:
    chat = _with_history(store, bedrock, table_name)
    config: Any = {"configurable": {"session_id": "rag-1"}}
    first = chat.invoke({"question": "What is TiDB Vector Search?"}, config=config)
    assert len(_converse_prompts(bedrock)) == 1  # no history yet: no rewrite
    second = chat.invoke({"question": "Which function does it rank them with?"}, config=config)
    prompts = _converse_prompts(bedrock)
    assert len(prompts) == 3  # the follow-up was rewritten with the stored history first
    assert "What is TiDB Vector Search?" in prompts[1]
    assert "Vector" in second["standalone_question"]
    assert "VEC_COSINE_DISTANCE" in second["answer"]
    stored = TiDBChatMessageHistory("rag-1", engine=store.tidb_engine, table_name=table_name)
    assert [m.type for m in stored.messages] == ["human", "ai", "human", "ai"]
    assert _texts(stored.messages) == [
        "What is TiDB Vector Search?",
        first["answer"],
        "Which function does it rank them with?",
        second["answer"],
    ]


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
async def test_runnable_with_message_history_async(
    store: TiDBVectorStore, bedrock: LocalBedrock, table_name: str
) -> None:
    chat = _with_history(store, bedrock, table_name)
    config: Any = {"configurable": {"session_id": "rag-async"}}
    await chat.ainvoke({"question": "What is TiDB?"}, config=config)
    second = await chat.ainvoke({"question": "Is it open source?"}, config=config)
    assert len(_converse_prompts(bedrock)) == 3
    assert second["question"] == "Is it open source?"
    stored = TiDBChatMessageHistory("rag-async", engine=store.tidb_engine, table_name=table_name)
    assert len(await stored.aget_messages()) == 4
    await store.tidb_engine.aclose()
