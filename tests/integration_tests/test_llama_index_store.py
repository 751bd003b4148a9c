"""The LlamaIndex TiDBVectorStore on a real TiDB: llama-index-vector-stores-tidbvector's own tests
(ported), upserts, deletes, tables written by that package and by the LangChain store."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from llama_index.core.schema import MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from langchain_tidb_bedrock import TiDBEngine
from langchain_tidb_bedrock.errors import InvalidInputError
from langchain_tidb_bedrock.llama_index import TiDBVectorStore
from langchain_tidb_bedrock.vectorstores.base import TiDBVectorStore as LangChainStore

# --------------------------------------------------------------------------- upstream tests
# llama-index-vector-stores-tidbvector's tests/test_vector_stores_tidbvector.py, on our store:
# same nodes, same queries, same expected values.

ADA_TOKEN_COUNT = 1536


def text_to_embedding(text: str) -> list[float]:
    """Convert text to a unique embedding using ASCII values."""
    ascii_values = [float(ord(char)) for char in text]
    return ascii_values[:ADA_TOKEN_COUNT] + [0.0] * (ADA_TOKEN_COUNT - len(ascii_values))


@pytest.fixture
def node_embeddings() -> list[TextNode]:
    return [
        TextNode(
            text="foo",
            id_="f8e7dee2-63b6-42f1-8b60-2d46710c1971",
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="test-0")},
            metadata={"theme": "Mystery", "location": 11},
            embedding=text_to_embedding("foo"),
        ),
        TextNode(
            text="bar",
            id_="8dde1fbc-2522-4ca2-aedf-5dcb2966d1c6",
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="test-0")},
            metadata={"theme": "Friendship", "location": 121},
            embedding=text_to_embedding("bar"),
        ),
        TextNode(
            text="baz",
            id_="e4991349-d00b-485c-a481-f61695f2b5ae",
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="test-2")},
            metadata={
                "theme": "Friendship",
                "location": 111,
                "doc_id": "b27abe0a-593b-4b6a-8e3c-1d72889d10eb",
            },
            embedding=text_to_embedding("baz"),
        ),
    ]


def test_search(tidb_url: str, table_name: str, node_embeddings: list[TextNode]) -> None:
    tidbvec = TiDBVectorStore(table_name, connection_string=tidb_url)
    tidbvec.add(node_embeddings)
    q = VectorStoreQuery(query_embedding=text_to_embedding("foo"), similarity_top_k=1)
    result = tidbvec.query(q)
    tidbvec.drop_vectorstore()
    assert result.nodes is not None
    assert len(result.nodes) == 1
    assert result.nodes[0].get_content(metadata_mode=MetadataMode.NONE) == node_embeddings[0].text
    assert result.similarities is not None
    assert result.similarities[0] == 1.0
    assert result.ids is not None
    assert result.ids[0] == node_embeddings[0].node_id


def test_delete_doc(tidb_url: str, table_name: str, node_embeddings: list[TextNode]) -> None:
    tidbvec = TiDBVectorStore(table_name, connection_string=tidb_url)
    tidbvec.add(node_embeddings)
    q = VectorStoreQuery(query_embedding=text_to_embedding("foo"), similarity_top_k=3)
    result = tidbvec.query(q)
    assert result.nodes is not None
    assert len(result.nodes) == 3
    assert result.nodes[0].get_content(metadata_mode=MetadataMode.NONE) == node_embeddings[0].text
    assert result.similarities is not None
    assert result.similarities[0] == 1.0
    assert result.ids is not None
    assert result.ids[0] == node_embeddings[0].node_id

    tidbvec.delete(ref_doc_id="test-0")

    result = tidbvec.query(q)
    tidbvec.drop_vectorstore()
    assert result.nodes is not None
    assert len(result.nodes) == 1
    assert result.nodes[0].get_content(metadata_mode=MetadataMode.NONE) == node_embeddings[2].text
    assert result.similarities is not None
    assert result.similarities[0] == 0.9953081577931554
    assert result.ids is not None
    assert result.ids[0] == node_embeddings[2].node_id


def test_search_with_filter(
    tidb_url: str, table_name: str, node_embeddings: list[TextNode]
) -> None:
    tidbvec = TiDBVectorStore(table_name, connection_string=tidb_url)
    tidbvec.add(node_embeddings)
    q = VectorStoreQuery(
        query_embedding=text_to_embedding("foo"),
        similarity_top_k=1,
        filters=MetadataFilters(filters=[MetadataFilter(key="location", value=100, operator=">")]),
    )
    result = tidbvec.query(q)
    assert result.nodes is not None
    assert len(result.nodes) == 1
    assert result.nodes[0].get_content(metadata_mode=MetadataMode.NONE) == node_embeddings[1].text
    assert result.similarities is not None
    assert result.similarities[0] == 0.9977280385800326
    assert result.ids is not None
    assert result.ids[0] == node_embeddings[1].node_id

    both = [
        MetadataFilter(key="location", value=100, operator=">"),
        MetadataFilter(key="theme", value="Mystery", operator="=="),
    ]
    q = VectorStoreQuery(
        query_embedding=text_to_embedding("foo"),
        similarity_top_k=1,
        filters=MetadataFilters(filters=both, condition="and"),
    )
    result = tidbvec.query(q)
    assert result.nodes is not None
    assert len(result.nodes) == 0

    q = VectorStoreQuery(
        query_embedding=text_to_embedding("foo"),
        similarity_top_k=1,
        filters=MetadataFilters(filters=both, condition="or"),
    )
    result = tidbvec.query(q)
    tidbvec.drop_vectorstore()
    assert result.nodes is not None
    assert len(result.nodes) == 1
    assert result.nodes[0].get_content(metadata_mode=MetadataMode.NONE) == node_embeddings[0].text
    assert result.similarities is not None
    assert result.similarities[0] == 1.0
    assert result.ids is not None
    assert result.ids[0] == node_embeddings[0].node_id


# --------------------------------------------------------------------------- our behaviour


def _node(node_id: str, vector: list[float], doc: str = "doc-a", **meta: Any) -> TextNode:
    return TextNode(
        id_=node_id,
        text=f"text of {node_id}",
        metadata=meta,
        embedding=vector,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
    )


def _q(vector: list[float], k: int = 10, **kw: Any) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=vector, similarity_top_k=k, **kw)


def test_add_upserts_by_node_id_and_keeps_the_last_repeat(tidb_url: str, table_name: str) -> None:
    store = TiDBVectorStore(table_name, connection_string=tidb_url)
    assert store.add([]) == []
    first = [_node("a", [1.0, 0.0]), _node("b", [0.0, 1.0])]
    assert store.add(first) == ["a", "b"]
    again = _node("a", [0.6, 0.8], year=2024)
    again.text = "new text"
    last = _node("b", [0.8, 0.6], year=1)
    assert store.add([_node("b", [0.0, 1.0]), again, last]) == ["b", "a", "b"]
    assert store.count() == 2
    nodes = {n.node_id: n for n in store.get_nodes()}
    assert nodes["a"].get_content() == "new text"
    assert nodes["a"].metadata == {"year": 2024}
    assert nodes["b"].metadata == {"year": 1}
    assert nodes["a"].ref_doc_id == "doc-a"
    with pytest.raises(InvalidInputError, match=r"position 1 \('c'\) has no embedding"):
        store.add([_node("d", [1.0, 1.0]), TextNode(id_="c", text="no vector")])
    assert store.count() == 2  # nothing written


def test_delete_by_ref_doc_id_reads_the_index(
    tidb_url: str, table_name: str, tidb_engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    store = TiDBVectorStore(table_name, connection_string=tidb_url)
    with caplog.at_level(logging.WARNING, logger="langchain_tidb_bedrock.vectorstores"):
        store.add([_node(f"n{i}", [1.0, float(i)], doc=f"doc-{i % 3}") for i in range(9)])
    # A new table gets its ref_doc_id index at once, and no warning that it lacks one.
    assert not [r for r in caplog.records if "indexed_metadata" in r.getMessage()]
    assert store.indexed_metadata == {"ref_doc_id": "str"}
    delete = store.langchain_store._table.queries.delete_filter({"ref_doc_id": "doc-1"})
    compiled = delete.compile(tidb_engine, compile_kwargs={"literal_binds": True})
    with tidb_engine.connect() as conn:
        plan = "\n".join(str(r) for r in conn.execute(sa.text(f"EXPLAIN {compiled}")))
    index = store.langchain_store._table.metadata_indexes[("ref_doc_id",)].index
    assert index in plan
    store.delete("doc-1")
    assert sorted(n.node_id for n in store.get_nodes()) == ["n0", "n2", "n3", "n5", "n6", "n8"]
    store.delete("no-such-doc")
    assert store.count() == 6
    with pytest.raises(InvalidInputError, match="ref_doc_id must be a string"):
        store.delete(None)  # type: ignore[arg-type]


def test_get_delete_nodes_and_clear(tidb_url: str, table_name: str) -> None:
    store = TiDBVectorStore(table_name, connection_string=tidb_url)
    assert store.get_nodes() == []
    store.add([_node(f"n{i}", [1.0, float(i)], year=2000 + i) for i in range(6)])
    recent = MetadataFilters(filters=[MetadataFilter(key="year", value=2003, operator=">=")])
    assert [n.node_id for n in store.get_nodes(["n5", "n1", "zz", "n5"])] == ["n5", "n1"]
    assert [n.node_id for n in store.get_nodes(filters=recent)] == ["n3", "n4", "n5"]
    assert [n.node_id for n in store.get_nodes(["n5", "n1", "n4"], recent)] == ["n5", "n4"]
    store.delete_nodes(["n5", "n1"], filters=recent)  # only the listed nodes that match
    assert [n.node_id for n in store.get_nodes()] == ["n0", "n1", "n2", "n3", "n4"]
    store.delete_nodes(filters=recent)
    store.delete_nodes(["n0"])
    store.delete_nodes([])
    assert [n.node_id for n in store.get_nodes()] == ["n1", "n2"]
    with pytest.raises(InvalidInputError, match="use clear"):
        store.delete_nodes()
    with pytest.raises(InvalidInputError, match="use clear"):
        store.delete_nodes(filters=MetadataFilters(filters=[]))
    store.clear()
    assert store.count() == 0


async def test_async_twins(tidb_url: str, table_name: str) -> None:
    store = TiDBVectorStore(table_name, connection_string=tidb_url)
    ids = await store.async_add(
        [_node(f"n{i}", [1.0, float(i)], doc=f"d{i % 2}") for i in range(6)]
    )
    assert ids == [f"n{i}" for i in range(6)]
    result = await store.aquery(_q([1.0, 0.0], k=2))
    assert result.ids == ["n0", "n1"]
    assert result.ids == store.query(_q([1.0, 0.0], k=2)).ids
    mmr = await store.aquery(_q([1.0, 0.0], k=2, mode=VectorStoreQueryMode.MMR))
    assert mmr.ids == store.query(_q([1.0, 0.0], k=2, mode=VectorStoreQueryMode.MMR)).ids
    within = await store.aquery(_q([1.0, 0.0], k=2, node_ids=["n4", "n5", "n3"]))
    assert within.ids == ["n3", "n4"]
    await store.adelete("d1")
    assert [n.node_id for n in await store.aget_nodes()] == ["n0", "n2", "n4"]
    some = await store.aget_nodes(
        ["n4", "n0"], MetadataFilters(filters=[MetadataFilter(key="doc_id", value="d0")])
    )
    assert [n.node_id for n in some] == ["n4", "n0"]
    await store.adelete_nodes(["n2"])
    assert [n.node_id for n in await store.aget_nodes(["n2", "n4"])] == ["n4"]
    await store.aclear()
    assert await store.aget_nodes() == []
    await store.aclose()


def test_query_modes_and_arguments_that_are_refused(tidb_url: str, table_name: str) -> None:
    store = TiDBVectorStore(table_name, connection_string=tidb_url)
    store.add([_node("a", [1.0, 0.0])])
    for mode in ("hybrid", "text_search", "sparse", "semantic_hybrid"):
        with pytest.raises(NotImplementedError, match="keyword"):
            store.query(_q([1.0, 0.0], mode=mode, query_str="a"))
    with pytest.raises(NotImplementedError, match="'svm' is not supported"):
        store.query(_q([1.0, 0.0], mode="svm"))
    with pytest.raises(InvalidInputError, match="query_embedding is required"):
        store.query(VectorStoreQuery(query_str="a"))
    with pytest.raises(InvalidInputError, match="similarity_top_k"):
        store.query(_q([1.0, 0.0], k=0))
    with pytest.raises(InvalidInputError, match="unknown query argument"):
        store.query(_q([1.0, 0.0]), alpha=0.5)
    assert store.query(_q([1.0, 0.0]), filter_strategy="pre").ids == ["a"]


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_similarities_are_llama_index_scores_for_each_metric(
    tidb_url: str, table_name: str, metric: str
) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(12, 6)).astype(np.float32)
    query = rng.normal(size=6).astype(np.float32)
    store = TiDBVectorStore(table_name, connection_string=tidb_url, distance_strategy=metric)
    store.add([_node(str(i), [float(x) for x in v]) for i, v in enumerate(vectors)])
    result = store.query(_q([float(x) for x in query], k=12))
    v64, q64 = vectors.astype(np.float64), query.astype(np.float64)
    expected = {
        "cosine": v64 @ q64 / (np.linalg.norm(v64, axis=1) * np.linalg.norm(q64)),
        "l2": -np.linalg.norm(v64 - q64, axis=1),
        "inner_product": v64 @ q64,
    }[metric]
    order = [str(i) for i in np.argsort(-expected, kind="stable")]
    assert result.ids == order
    assert result.similarities == pytest.approx([expected[int(i)] for i in order], abs=1e-5)


def test_opens_a_table_written_by_llama_index_vector_stores_tidbvector(
    tidb_url: str, table_name: str, node_embeddings: list[TextNode]
) -> None:
    from llama_index.vector_stores.tidbvector import TiDBVectorStore as UpstreamStore

    upstream = UpstreamStore(
        connection_string=tidb_url,
        table_name=table_name,
        distance_strategy="l2",
        vector_dimension=ADA_TOKEN_COUNT,
    )
    upstream.add(node_embeddings)
    q = VectorStoreQuery(query_embedding=text_to_embedding("foo"), similarity_top_k=3)
    theirs = upstream.query(q)
    upstream.client._bind.dispose()

    ours = TiDBVectorStore(table_name, connection_string=tidb_url)
    mine = ours.query(q)
    assert ours.distance_strategy.value == "l2"  # read from the legacy column comment
    assert mine.ids == theirs.ids
    for a, b in zip(mine.nodes or [], theirs.nodes or [], strict=True):
        assert a.node_id == b.node_id
        assert a.get_content() == b.get_content()
        assert a.metadata == b.metadata
        assert a.ref_doc_id == b.ref_doc_id
    # LlamaIndex's scale for L2 is minus the distance (theirs says 1 - distance).
    distance = math.dist(text_to_embedding("foo"), text_to_embedding("bar"))
    assert mine.similarities is not None
    assert mine.similarities[1] == pytest.approx(-distance, rel=1e-6)
    filtered = ours.query(
        VectorStoreQuery(
            query_embedding=text_to_embedding("foo"),
            similarity_top_k=3,
            filters=MetadataFilters(
                filters=[MetadataFilter(key="theme", value="Friend", operator="text_match")]
            ),
        )
    )
    assert filtered.ids == [node_embeddings[1].node_id, node_embeddings[2].node_id]
    ours.delete("test-0")  # no ref_doc_id index on their table: the JSON scan, same result
    assert [n.node_id for n in ours.get_nodes()] == [node_embeddings[2].node_id]
    ours.add([_node("new", text_to_embedding("qux"), doc="test-9")])
    assert ours.count() == 2
    ours.close()


def test_one_table_two_frameworks(tidb_url: str, table_name: str) -> None:
    with TiDBEngine(tidb_url) as engine:
        langchain = LangChainStore(None, engine=engine, table_name=table_name)
        llama = TiDBVectorStore(table_name, engine=engine)
        # Written by LangChain, read by LlamaIndex.
        langchain.add_embeddings(
            ["LangChain wrote this", "and this"],
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            [{"source": "lc.md", "tags": ["x"]}, {"source": "lc.md", "n": 2}],
            ids=["lc-1", "lc-2"],
        )
        result = llama.query(_q([1.0, 0.1, 0.0], k=1))
        assert result.ids == ["lc-1"]
        node = result.nodes[0]  # type: ignore[index]
        assert node.node_id == "lc-1"
        assert node.get_content() == "LangChain wrote this"
        assert node.metadata == {"source": "lc.md", "tags": ["x"]}
        by_tag = MetadataFilters(
            filters=[MetadataFilter(key="tags", value="x", operator="contains")]
        )
        assert [n.node_id for n in llama.get_nodes(filters=by_tag)] == ["lc-1"]

        # Written by LlamaIndex, read by LangChain.
        llama.add([_node("li-1", [0.0, 0.0, 1.0], doc="doc-li", source="li.md", year=2024)])
        docs = langchain.get_by_ids(["li-1"])
        assert docs[0].id == "li-1"
        assert docs[0].page_content == "text of li-1"
        assert {k: docs[0].metadata[k] for k in ("source", "year")} == {
            "source": "li.md",
            "year": 2024,
        }
        assert docs[0].metadata["ref_doc_id"] == "doc-li"
        hits = langchain.similarity_search_by_vector([0.0, 0.1, 1.0], k=1, filter={"year": 2024})
        assert [d.id for d in hits] == ["li-1"]
        # Both see the same rows; neither store closed the shared engine.
        assert langchain.count() == llama.count() == 3
        llama.close()
        langchain.close()
        assert len(langchain.get_by_ids(["lc-2"])) == 1


@pytest.mark.tiflash
def test_vector_index_and_filter_strategies(tidb_url: str, table_name: str) -> None:
    store = TiDBVectorStore(table_name, connection_string=tidb_url, indexed_metadata={"year": int})
    rng = np.random.default_rng(5)
    store.add(
        [
            _node(f"n{i}", [float(x) for x in rng.normal(size=4)], year=2000 + i % 5)
            for i in range(40)
        ]
    )
    assert store.langchain_store._table.index_ready  # HNSW created with the table
    assert store.indexed_metadata == {"ref_doc_id": "str", "year": "int"}
    year = MetadataFilters(filters=[MetadataFilter(key="year", value=2003, operator="==")])
    vector = [float(x) for x in rng.normal(size=4)]
    exact = store.query(_q(vector, k=3, filters=year), filter_strategy="pre")
    post = store.query(_q(vector, k=3, filters=year), filter_strategy="post")
    assert exact.ids == post.ids
    assert len(exact.ids or []) == 3
    assert all(n.metadata["year"] == 2003 for n in post.nodes or [])
    store.close()
