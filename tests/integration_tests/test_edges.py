"""Edges of issue #19 (item 7), each against the real TiDB.

Lone-surrogate ids on get/delete, numbers TiDB would take for a nearby integer, ``$ilike`` with
characters whose lowercase is special, and the cause of an async TLS failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_tidb_bedrock import TiDBVectorStore
from langchain_tidb_bedrock.errors import FilterError, InvalidInputError
from langchain_tidb_bedrock.local import LocalTiDB
from langchain_tidb_bedrock.local.tidb import make_test_certificates
from tests.filter_reference import ilike_fold, matches


@pytest.fixture
def store(tidb_url: str, table_name: str) -> Iterator[TiDBVectorStore]:
    s = TiDBVectorStore(
        DeterministicFakeEmbedding(size=4), connection_string=tidb_url, table_name=table_name
    )
    yield s
    s.close()


# ------------------------------------------------------------------------------- ids


def test_lone_surrogate_id_is_refused_by_get_and_delete(store: TiDBVectorStore) -> None:
    store.add_texts(["kept"], ids=["a"])
    bad = ["a", "x\ud800"]
    with pytest.raises(InvalidInputError, match=r"id at position 1 is not valid UTF-8"):
        store.get_by_ids(bad)
    with pytest.raises(InvalidInputError, match=r"id at position 1 is not valid UTF-8"):
        store.delete(bad)
    assert store.count() == 1  # nothing deleted: the whole list is checked first


async def test_lone_surrogate_id_is_refused_by_async_get_and_delete(
    store: TiDBVectorStore,
) -> None:
    await store.aadd_texts(["kept"], ids=["a"])
    with pytest.raises(InvalidInputError, match=r"id at position 0 is not valid UTF-8"):
        await store.aget_by_ids(["\udfff"])
    with pytest.raises(InvalidInputError, match=r"id at position 2 is not valid UTF-8"):
        await store.adelete(["a", "b", "\udfff"])
    assert await store.aget_by_ids(["a"])


# ------------------------------------------------------------------------------- numbers

# Doubles TiDB's JSON comparison takes for the integer next to them (it compares an integer
# with a double within 1e-8), and the integers and doubles around them.
NUMBERS: list[Any] = [
    0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-9, -1e-9, 1, 1.0, 1.000000001,
    0.999999999, 0.5, 3, 2**53, 2**53 + 1, 2.0**53, -(2**63), 2**64 - 1, 2.0**64,
]  # fmt: skip
_NEAR_INTEGER = {5e-324, -5e-324, 2.2250738585072014e-308, 1e-9, -1e-9, 1.000000001, 0.999999999}


def test_numbers_next_to_integers_compare_exactly(store: TiDBVectorStore) -> None:
    metadatas = [{"x": v, "t": [v]} for v in NUMBERS]
    ids = [f"n{i}" for i in range(len(NUMBERS))]
    store.add_texts([f"number {v!r}" for v in NUMBERS], metadatas=metadatas, ids=ids)
    checked = 0
    for value in NUMBERS:
        filters: list[dict[str, Any]] = [
            {"x": value},
            {"x": {"$ne": value}},
            {"x": {"$gt": value}},
            {"x": {"$gte": value}},
            {"x": {"$lt": value}},
            {"x": {"$lte": value}},
            {"x": {"$in": [value, 7]}},
            {"x": {"$nin": [value, 7]}},
            {"x": {"$between": [value, 2**53]}},
        ]
        if value not in _NEAR_INTEGER:
            filters.append({"t": {"$contains": value}})
        for f in filters:
            got = {d.id for d in store.get(filter=f)}
            want = {i for i, md in zip(ids, metadatas, strict=True) if matches(f, md)}
            assert got == want, f
            checked += 1
    assert checked == 10 * len(NUMBERS) - len(_NEAR_INTEGER)
    # The finding itself: a stored 5e-324 is not 0, and is above it.
    assert {d.id for d in store.get(filter={"x": 0})} == {"n0", "n1"}
    assert "n2" in {d.id for d in store.get(filter={"x": {"$gt": 0}})}


def test_contains_refuses_a_double_next_to_an_integer(store: TiDBVectorStore) -> None:
    with pytest.raises(FilterError, match=r"\$contains 5e-324 .*within 1e-08"):
        store.get(filter={"t": {"$contains": 5e-324}})


# ------------------------------------------------------------------------------- $ilike

# Greek capital and small sigma, final sigma, alpha, omega: written as escapes.
SIGMA, sigma, final_sigma = "\u03a3", "\u03c3", "\u03c2"
ALPHA, alpha, OMEGA, omega = "\u0391", "\u03b1", "\u03a9", "\u03c9"
_WORDS = [
    "İstanbul", "istanbul", "i\u0307stanbul", "ISTANBUL", ALPHA + SIGMA, alpha + final_sigma,
    alpha + sigma, SIGMA + ALPHA, OMEGA + "x",
]  # fmt: skip
_PATTERNS = [
    "istanbul", "İSTANBUL", "i_stanbul", "_stanbul", "i\u0307%", "%" + sigma, "%" + final_sigma,
    sigma + "%", SIGMA + "%", ALPHA + SIGMA, omega + "_", "%",
]  # fmt: skip


def test_ilike_folds_as_tidb_lower_and_the_reference_agree(store: TiDBVectorStore) -> None:
    metadatas = [{"w": w} for w in _WORDS]
    ids = [f"w{i}" for i in range(len(_WORDS))]
    store.add_texts(_WORDS, metadatas=metadatas, ids=ids)
    for pattern in _PATTERNS:
        f = {"w": {"$ilike": pattern}}
        got = {d.id for d in store.get(filter=f)}
        want = {i for i, md in zip(ids, metadatas, strict=True) if matches(f, md)}
        assert got == want, pattern
    # Documented: one character for one, "İ" is "i" and a capital sigma is the small sigma
    # wherever it stands (Python's lower() makes a word-final one the final sigma).
    hits = {d.page_content for d in store.get(filter={"w": {"$ilike": "istanbul"}})}
    assert hits == {"İstanbul", "istanbul", "ISTANBUL"}
    final = {d.page_content for d in store.get(filter={"w": {"$ilike": "%" + final_sigma}})}
    assert final == {alpha + final_sigma}
    assert ilike_fold("İ" + SIGMA) == "i" + sigma != ("İ" + SIGMA).lower()


# ------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_tidb() -> Iterator[LocalTiDB]:
    with LocalTiDB(tls=True) as server:
        yield server


def _tls_store(url: str, ca: str) -> TiDBVectorStore:
    return TiDBVectorStore(
        DeterministicFakeEmbedding(size=4),
        connection_string=url,
        table_name=f"tls_{uuid.uuid4().hex[:12]}",
        tls=True,
        ca_path=ca,
    )


def _sync_error(url: str, ca: str) -> str:
    store = _tls_store(url, ca)
    try:
        with pytest.raises(sa.exc.OperationalError) as info:
            store.similarity_search("x", k=1)
    finally:
        store.close()
    return str(info.value.orig)


async def _async_error(url: str, ca: str) -> str:
    store = _tls_store(url, ca)
    try:
        with pytest.raises(sa.exc.OperationalError) as info:
            await store.asimilarity_search("x", k=1)
    finally:
        await store.aclose()
    return str(info.value.orig)


@pytest.mark.parametrize("case", ["other CA", "host mismatch", "no TLS"])
async def test_async_tls_failure_names_its_cause_as_sync_does(
    case: str, tls_tidb: LocalTiDB, local_tidb: LocalTiDB, tmp_path: Path
) -> None:
    assert tls_tidb.ca_path is not None
    ca = str(tls_tidb.ca_path)
    if case == "other CA":
        ca = str(make_test_certificates(tmp_path / "other")[0])
        url = tls_tidb.url
    elif case == "host mismatch":  # 0.0.0.0 reaches this machine, the certificate is not for it
        url = tls_tidb.url.replace("127.0.0.1", "0.0.0.0")  # noqa: S104
    else:
        url = local_tidb.url
    sync_message = _sync_error(url, ca)
    async_message = await _async_error(url, ca)
    if case == "no TLS":  # worded by each driver; both say the server offers none
        assert "doesn't support" in sync_message
        assert "does not offer TLS" in async_message
        return
    cause = "unable to get local issuer" if case == "other CA" else "IP address mismatch"
    assert "CERTIFICATE_VERIFY_FAILED" in sync_message
    assert cause in sync_message
    assert async_message == sync_message  # aiomysql alone said only "Can't connect"
