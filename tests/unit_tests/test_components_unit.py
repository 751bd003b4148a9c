"""The record manager's, stores' and caches' operations and codecs, with no database.

Operations are driven by a scripted handler (see test_operations.py): these tests pin what each
asks TiDB for, and how a missing table is created on the first write.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest
import sqlalchemy as sa
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation

from langchain_tidb_bedrock.caches._codec import decode_generations, encode_generations, prompt_text
from langchain_tidb_bedrock.caches._table import CacheTable
from langchain_tidb_bedrock.db.component import encode_keys
from langchain_tidb_bedrock.db.runner import Read, Request, Write, drive
from langchain_tidb_bedrock.db.tables import ttl_microseconds
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.indexing._ops import RecordTable
from langchain_tidb_bedrock.storage._table import KeyValueTable, like_prefix


def _missing_table() -> sa.exc.ProgrammingError:
    return sa.exc.ProgrammingError("stmt", {}, pymysql.err.ProgrammingError(1146, "no table"))


class Script:
    """Answers requests in order; an exception in the script is raised instead."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> Any:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _write_sql(request: Request) -> str:
    assert isinstance(request, Write)
    step = request.steps[0]
    return step[0] if isinstance(step, tuple) else str(step)  # type: ignore[index]


def test_update_is_one_multi_row_insert_with_the_server_time() -> None:
    script = Script(3)
    keys = [b"a", b"b", b"c"]
    drive(RecordTable("rm").op_update(b"ns", keys, [b"g", None, b"g"], 12.5), script)
    (request,) = script.requests
    assert isinstance(request, Write)
    sql, params = request.steps[0]  # type: ignore[misc]
    assert sql.count("GREATEST(UNIX_TIMESTAMP(NOW(6)), %s)") == 3
    assert "ON DUPLICATE KEY UPDATE" in sql
    assert params == [(b"ns", b"a", b"g", 12.5, b"ns", b"b", None, 12.5, b"ns", b"c", b"g", 12.5)]


def test_the_first_write_creates_the_table() -> None:
    script = Script(_missing_table(), 0, 2)
    drive(RecordTable("rm").op_update(b"ns", [b"a", b"b"], [None, None], 0.0), script)
    verbs = [_write_sql(r).split()[0] for r in script.requests]
    assert verbs == ["INSERT", "CREATE", "INSERT"]


def test_reads_of_a_missing_table_find_nothing() -> None:
    table = RecordTable("rm")
    assert drive(table.op_exists(b"ns", [b"a"]), Script(_missing_table())) == [False]
    assert drive(KeyValueTable("kv").op_get(b"ns", [b"a"]), Script(_missing_table())) == {}
    assert drive(KeyValueTable("kv").op_page(b"ns", None, None), Script(_missing_table())) == []


def test_other_errors_are_not_swallowed() -> None:
    refused = sa.exc.OperationalError("stmt", {}, pymysql.err.OperationalError(1105, "boom"))
    with pytest.raises(sa.exc.OperationalError):
        drive(RecordTable("rm").op_exists(b"ns", [b"a"]), Script(refused))


def test_list_keys_filters_are_bound() -> None:
    script = Script([])
    groups: list[bytes | None] = [b"g1", None]
    drive(RecordTable("rm").op_list(b"ns", before=2.0, after=1.0, groups=groups, limit=5), script)
    (request,) = script.requests
    assert isinstance(request, Read)
    assert request.params == {"ns": b"ns", "before": 2.0, "after": 1.0, "g0": b"g1", "limit": 5}
    assert "(group_id IN (%(g0)s) OR group_id IS NULL)" in str(request.statement)


def test_large_deletes_are_split_in_one_transaction() -> None:
    script = Script(2500)
    drive(RecordTable("rm").op_delete(b"ns", [b"k%d" % i for i in range(2500)]), script)
    (request,) = script.requests
    assert isinstance(request, Write)
    assert len(request.steps) == 3


def test_like_prefix_escapes_wildcards() -> None:
    assert like_prefix(b"a_b%c!d") == b"a!_b!%c!!d%"


def test_encode_keys() -> None:
    assert encode_keys(["é", ""], what="key", max_bytes=2, call="f()") == [b"\xc3\xa9", b""]
    with pytest.raises(InvalidInputError, match=r"key at position 1 is 3 bytes in UTF-8"):
        encode_keys(["a", "abc"], what="key", max_bytes=2, call="f()")
    with pytest.raises(InvalidInputError, match="f\\(\\) takes a list of keys"):
        encode_keys(5, what="key", max_bytes=2, call="f()")


def test_ttl() -> None:
    assert ttl_microseconds(None) is None
    assert ttl_microseconds(1.5) == 1_500_000
    assert CacheTable.expiry(None) == "NULL"
    assert CacheTable.expiry(7) == "DATE_ADD(NOW(6), INTERVAL 7 MICROSECOND)"


def test_generations_codec() -> None:
    gens = [
        ChatGeneration(message=AIMessage("hi", response_metadata={"model": "llama"})),
        Generation(text="x", generation_info={"reason": "stop"}),
    ]
    assert decode_generations(encode_generations(gens)) == gens


def test_prompt_text() -> None:
    prompt = dumps([SystemMessage("Be brief."), HumanMessage("What is TiDB?")])
    assert prompt_text(prompt) == "system: Be brief.\nhuman: What is TiDB?"
    blocks = dumps([HumanMessage([{"type": "text", "text": "a"}, {"type": "image", "url": "u"}])])
    assert prompt_text(blocks) == "human: a"
    assert prompt_text('[{"not": "a message"}]') == '[{"not": "a message"}]'
    assert prompt_text("plain") == "plain"
    assert prompt_text("[{not json") == "[{not json"
