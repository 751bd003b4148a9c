"""The LlamaIndex store against ``SimpleVectorStore``, LlamaIndex's reference, on the same nodes.

Random nested filters over every ``FilterOperator`` and ``FilterCondition``, random queries,
DEFAULT and MMR: the same node ids in the same order (exact search on the local server).
``SimpleVectorStore`` refuses nested filters, so those are evaluated leaf by leaf with
LlamaIndex's own ``build_metadata_filter_fn`` and combined as its conditions define, and the
reference then ranks the matching ids (``node_ids=``).

Metadata keeps one type per key (strings, numbers, lists), as the reference raises on
comparisons across types (``"a" > 1``), and holds no booleans (Python's ``True == 1``).
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from langchain_tidb_bedrock.errors import FilterError
from langchain_tidb_bedrock.llama_index import TiDBVectorStore, to_filter_dict

# A failing example's filters print long; the repr is still what one needs.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

N_NODES = 120
DIM = 8
STR_KEYS = ("genre", "title.sub")  # a dot in a LlamaIndex key is part of the name
NUM_KEYS = ("year", "rating")
LIST_KEYS = ("tags", "nums")
ALL_KEYS = (*STR_KEYS, *NUM_KEYS, *LIST_KEYS, "ref_doc_id")
_ALPHABET = "aAbé%_É"
_WORDS = ("a", "ab", "Ab", "b%", "x_y", "é", "É", "", "aé")


def _f32(values: np.ndarray) -> list[float]:
    # float32-exact values: TiDB stores float32, the reference keeps the same floats.
    return [float(v) for v in values.astype(np.float32)]


def _metadata(rng: random.Random) -> dict[str, Any]:
    meta: dict[str, Any] = {}

    def maybe(key: str, value: Any) -> None:
        roll = rng.random()
        if roll < 0.15:
            return  # missing
        meta[key] = None if roll < 0.25 else value

    maybe("genre", rng.choice(_WORDS))
    maybe("title.sub", rng.choice(_WORDS))
    maybe("year", rng.randint(1995, 2005))
    maybe("rating", rng.choice([0.5, 1.0, 2.0, 2.5, 3.0, 4.75]))
    maybe("tags", rng.sample(["a", "b", "c", "é", "ab"], rng.randint(0, 3)))
    maybe("nums", rng.sample([0, 1, 2, 3], rng.randint(0, 3)))
    return meta


def _nodes() -> list[TextNode]:
    rng = random.Random(7)
    gen = np.random.default_rng(7)
    nodes = []
    for n in range(N_NODES):
        node = TextNode(
            id_=str(uuid.UUID(int=rng.getrandbits(128))),
            text=f"node {n}",
            metadata=_metadata(rng),
            embedding=_f32(gen.normal(size=DIM)),
            relationships={
                NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{n % 7}"),
            },
        )
        nodes.append(node)
    return nodes


@pytest.fixture(scope="module")
def stores(tidb_url: str, tidb_engine: sa.Engine) -> Iterator[tuple[TiDBVectorStore, Any]]:
    name = f"t_lidiff_{uuid.uuid4().hex[:12]}"
    nodes = _nodes()
    ours = TiDBVectorStore(name, connection_string=tidb_url, indexed_metadata={"year": int})
    ours.add(nodes)
    reference = SimpleVectorStore()
    reference.add(nodes)
    yield ours, reference
    ours.close()
    with tidb_engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))


# --------------------------------------------------------------------------- filters


def _words() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(_WORDS), st.text(alphabet=_ALPHABET, max_size=3))


def _numbers() -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(1994, 2006), st.sampled_from([0.5, 1.0, 2.0, 2.5, 3.5, 2000.0]))


def _scalar() -> st.SearchStrategy[Any]:
    return st.one_of(_words(), _numbers(), st.integers(0, 3))


def _homogeneous_list(max_size: int = 3) -> st.SearchStrategy[list[Any]]:
    # MetadataFilter values are List[str] | List[float] | List[int]: one type per list.
    return st.one_of(
        st.lists(_words(), max_size=max_size),
        st.lists(st.integers(0, 3), max_size=max_size),
        st.lists(st.integers(1994, 2006), max_size=max_size),
        st.lists(st.sampled_from([0.5, 1.0, 2.5]), max_size=max_size),
    )


def _leaf() -> st.SearchStrategy[MetadataFilter]:
    def make(key: str, op: FilterOperator, value: Any) -> MetadataFilter:
        return MetadataFilter(key=key, value=value, operator=op)

    key = st.sampled_from(ALL_KEYS)
    str_key = st.sampled_from(STR_KEYS)
    num_key = st.sampled_from(NUM_KEYS)
    list_key = st.sampled_from(LIST_KEYS)
    compare = st.sampled_from(
        [FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE]
    )
    docs = st.sampled_from([f"doc-{n}" for n in range(8)])
    return st.one_of(
        st.builds(
            make,
            key,
            st.sampled_from([FilterOperator.EQ, FilterOperator.NE]),
            st.one_of(_scalar(), st.none()),
        ),
        st.builds(make, st.just("ref_doc_id"), st.just(FilterOperator.EQ), docs),
        st.builds(make, str_key, compare, _words()),
        st.builds(make, num_key, compare, _numbers()),
        st.builds(
            make,
            key,
            st.sampled_from([FilterOperator.IN, FilterOperator.NIN]),
            _homogeneous_list(),
        ),
        st.builds(make, str_key, st.just(FilterOperator.CONTAINS), _words()),
        st.builds(
            make,
            list_key,
            st.just(FilterOperator.CONTAINS),
            st.one_of(_words(), st.integers(0, 3)),
        ),
        st.builds(
            make,
            str_key,
            st.sampled_from([FilterOperator.ANY, FilterOperator.ALL]),
            st.lists(_words(), max_size=3),
        ),
        st.builds(
            make,
            list_key,
            st.sampled_from([FilterOperator.ANY, FilterOperator.ALL]),
            st.one_of(
                st.lists(st.sampled_from(["a", "b", "é", "z"]), max_size=3),
                st.lists(st.integers(0, 4), max_size=3),
            ),
        ),
        st.builds(
            make,
            str_key,
            st.sampled_from([FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE]),
            _words(),
        ),
        st.builds(make, key, st.just(FilterOperator.IS_EMPTY), st.none()),
    )


_CONDITIONS = st.sampled_from([FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT])


def _flat_filters() -> st.SearchStrategy[MetadataFilters]:
    return st.builds(
        lambda fs, c: MetadataFilters(filters=fs, condition=c),
        st.lists(_leaf(), min_size=1, max_size=3),
        _CONDITIONS,
    )


def _nested_filters() -> st.SearchStrategy[MetadataFilters]:
    def group(children: st.SearchStrategy[Any]) -> st.SearchStrategy[MetadataFilters]:
        return st.builds(
            lambda fs, c: MetadataFilters(filters=fs, condition=c),
            st.lists(children, min_size=0, max_size=3),
            _CONDITIONS,
        )

    inner = st.recursive(_leaf(), group, max_leaves=6)
    return st.builds(
        lambda fs, c: MetadataFilters(filters=fs, condition=c),
        st.lists(inner, min_size=0, max_size=3),
        _CONDITIONS,
    )


def _holds(filters: MetadataFilters, meta: dict[str, Any], top: bool = True) -> bool:
    """LlamaIndex's semantics for nested filters: each leaf through the reference's own code."""
    if top and not filters.filters:
        return True  # the reference: no filter list, no filtering
    results = []
    for child in filters.filters:
        if isinstance(child, MetadataFilters):
            results.append(_holds(child, meta, top=False))
        else:
            leaf = build_metadata_filter_fn(lambda _: meta, MetadataFilters(filters=[child]))
            results.append(leaf("node"))
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return all(results)
    if condition == FilterCondition.OR:
        return any(results)
    return not any(results)


def _is_flat(filters: MetadataFilters) -> bool:
    return all(isinstance(f, MetadataFilter) for f in filters.filters)


def _reference(reference: Any, query: VectorStoreQuery, **kwargs: Any) -> list[str]:
    """The reference's ids: its own filters when flat, else the matching ids it then ranks."""
    filters = query.filters
    if filters is None or (_is_flat(filters) and filters.filters):
        return list(reference.query(query, **kwargs).ids)
    meta = reference.data.metadata_dict
    allowed = [i for i in reference.data.embedding_dict if _holds(filters, meta[i])]
    ranked = dataclasses.replace(query, filters=None, node_ids=allowed)
    return list(reference.query(ranked, **kwargs).ids)


_VECTORS = st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=DIM, max_size=DIM).filter(
    lambda v: any(abs(x) > 1e-3 for x in v)
)

_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@_SETTINGS
@given(filters=_flat_filters(), vector=_VECTORS, k=st.integers(1, 12))
def test_flat_filters_match_simple_vector_store(
    stores: tuple[TiDBVectorStore, Any], filters: MetadataFilters, vector: list[float], k: int
) -> None:
    ours, reference = stores
    query = VectorStoreQuery(query_embedding=vector, similarity_top_k=k, filters=filters)
    got = ours.query(query)
    assert list(got.ids or []) == _reference(reference, query)
    expected = reference.query(query)
    assert got.similarities == pytest.approx(expected.similarities, abs=1e-5)


@_SETTINGS
@given(filters=_nested_filters(), vector=_VECTORS, k=st.integers(1, 12))
def test_nested_filters_match_the_reference_semantics(
    stores: tuple[TiDBVectorStore, Any], filters: MetadataFilters, vector: list[float], k: int
) -> None:
    ours, reference = stores
    query = VectorStoreQuery(query_embedding=vector, similarity_top_k=k, filters=filters)
    assert list(ours.query(query).ids or []) == _reference(reference, query)


@_SETTINGS
@given(
    filters=st.one_of(st.none(), _flat_filters()),
    vector=_VECTORS,
    k=st.integers(1, 8),
    # At 0 relevance is ignored and the first pick is the first candidate: the reference's
    # first stored node, ours the nearest; any other threshold picks by score.
    threshold=st.one_of(st.none(), st.floats(0.01, 1)),
)
def test_mmr_matches_simple_vector_store(
    stores: tuple[TiDBVectorStore, Any],
    filters: MetadataFilters | None,
    vector: list[float],
    k: int,
    threshold: float | None,
) -> None:
    ours, reference = stores
    query = VectorStoreQuery(
        query_embedding=vector,
        similarity_top_k=k,
        filters=filters,
        mode=VectorStoreQueryMode.MMR,
        mmr_threshold=threshold,
    )
    # Every candidate (the reference runs MMR over all matching nodes).
    got = ours.query(query, mmr_prefetch_k=N_NODES)
    expected = reference.query(query, mmr_threshold=threshold)
    assert list(got.ids or []) == list(expected.ids or [])
    assert got.similarities == pytest.approx(expected.similarities, abs=1e-6)


def test_doc_ids_and_node_ids_restrict_the_search(stores: tuple[TiDBVectorStore, Any]) -> None:
    ours, reference = stores
    nodes = _nodes()
    vector = nodes[0].embedding
    some = [n.node_id for n in nodes[::5]]
    by_doc = {n.node_id for n in nodes if n.ref_doc_id in ("doc-1", "doc-3")}
    for mode in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
        kw = {"mmr_prefetch_k": N_NODES} if mode is VectorStoreQueryMode.MMR else {}
        q = VectorStoreQuery(query_embedding=vector, similarity_top_k=6, node_ids=some, mode=mode)
        assert ours.query(q, **kw).ids == reference.query(q).ids
        assert len(ours.query(q, **kw).ids or []) == 6
        q = VectorStoreQuery(
            query_embedding=vector, similarity_top_k=50, doc_ids=["doc-1", "doc-3"], mode=mode
        )
        got = ours.query(q, **kw).ids or []
        assert set(got) == by_doc
        ranked = dataclasses.replace(q, doc_ids=None, node_ids=sorted(by_doc))
        assert got == reference.query(ranked).ids
    # node_ids with filters and doc_ids together: the intersection, still ranked.
    year = MetadataFilters(filters=[MetadataFilter(key="year", value=2000, operator=">=")])
    q = VectorStoreQuery(
        query_embedding=vector, similarity_top_k=50, node_ids=some, doc_ids=["doc-0"], filters=year
    )
    meta = reference.data.metadata_dict
    allowed = [
        i for i in some if meta[i]["ref_doc_id"] == "doc-0" and (meta[i].get("year") or 0) >= 2000
    ]
    assert (
        ours.query(q).ids
        == reference.query(
            VectorStoreQuery(query_embedding=vector, similarity_top_k=50, node_ids=allowed)
        ).ids
    )
    # An empty list restricts nothing (VectorIndexRetriever sends node_ids=[] to such stores).
    unrestricted = VectorStoreQuery(query_embedding=vector, similarity_top_k=3)
    for empty in ({"node_ids": []}, {"doc_ids": []}):
        assert ours.query(dataclasses.replace(unrestricted, **empty)).ids == (
            reference.query(unrestricted).ids
        )


@_SETTINGS
@given(filters=_nested_filters())
def test_get_nodes_by_filter_matches_the_reference(
    stores: tuple[TiDBVectorStore, Any], filters: MetadataFilters
) -> None:
    ours, reference = stores
    meta = reference.data.metadata_dict
    expected = sorted(i for i in reference.data.embedding_dict if _holds(filters, meta[i]))
    got = [n.node_id for n in ours.get_nodes(filters=filters)]
    assert got == expected  # id order
    some = list(reference.data.embedding_dict)[::3]
    got = [n.node_id for n in ours.get_nodes(node_ids=some, filters=filters)]
    assert got == [i for i in some if _holds(filters, meta[i])]  # input order


def test_delete_nodes_by_filter_matches_simple_vector_store(tidb_url: str, table_name: str) -> None:
    nodes = _nodes()
    ours = TiDBVectorStore(table_name, connection_string=tidb_url)
    ours.add(nodes)
    reference = SimpleVectorStore()
    reference.add(nodes)
    steps = [
        MetadataFilters(filters=[MetadataFilter(key="genre", value="a", operator="text_match")]),
        MetadataFilters(
            filters=[
                MetadataFilter(key="tags", value=None, operator="is_empty"),
                MetadataFilter(key="year", value=2001, operator="<"),
            ],
            condition="and",
        ),
        MetadataFilters(
            filters=[MetadataFilter(key="nums", value=[1, 2], operator="any")], condition="not"
        ),
    ]
    some = [n.node_id for n in nodes[::4]]
    for n, filters in enumerate(steps):
        ids = some if n == 1 else None
        ours.delete_nodes(node_ids=ids, filters=filters)
        reference.delete_nodes(node_ids=ids, filters=filters)
        expected = sorted(reference.data.embedding_dict)
        assert [node.node_id for node in ours.get_nodes()] == expected
        assert 0 < len(expected) < N_NODES
    ours.close()


# --------------------------------------------------------------------------- the translation


def test_every_operator_and_condition_translates() -> None:
    ops = {
        FilterOperator.EQ: "x",
        FilterOperator.NE: 1,
        FilterOperator.GT: 1,
        FilterOperator.GTE: 1.5,
        FilterOperator.LT: "b",
        FilterOperator.LTE: 2,
        FilterOperator.IN: ["a"],
        FilterOperator.NIN: [1, 2],
        FilterOperator.ANY: ["a"],
        FilterOperator.ALL: ["a", "b"],
        FilterOperator.CONTAINS: "a",
        FilterOperator.TEXT_MATCH: "a%",
        FilterOperator.TEXT_MATCH_INSENSITIVE: "A_",
        FilterOperator.IS_EMPTY: None,
    }
    assert set(ops) == set(FilterOperator)
    leaves = [MetadataFilter(key="k", value=v, operator=op) for op, v in ops.items()]
    for condition in FilterCondition:
        nested = MetadataFilters(
            filters=[*leaves, MetadataFilters(filters=leaves[:3], condition=condition)],
            condition=condition,
        )
        assert to_filter_dict(nested) is not None
    assert to_filter_dict(MetadataFilters(filters=[])) is None
    # LIKE metacharacters are literal in text_match; a dotted key is one key.
    assert to_filter_dict(
        MetadataFilters(filters=[MetadataFilter(key="a.b", value="5%_\\", operator="text_match")])
    ) == {"$and": [{"a\\.b": {"$like": "%5\\%\\_\\\\%"}}]}


@pytest.mark.parametrize(
    ("leaf", "problem"),
    [
        (MetadataFilter(key="k", value=["a"], operator=FilterOperator.EQ), "one value"),
        (MetadataFilter(key="k", value=["a"], operator=FilterOperator.GT), "number or a string"),
        (MetadataFilter(key="k", value="a", operator=FilterOperator.IN), "list of values"),
        (MetadataFilter(key="k", value="ab", operator=FilterOperator.ANY), "list of values"),
        (MetadataFilter(key="k", value=["a"], operator=FilterOperator.CONTAINS), "one value"),
        (MetadataFilter(key="k", value=3, operator=FilterOperator.TEXT_MATCH), "a string"),
        (MetadataFilter(key="k$", value=3, operator=FilterOperator.EQ), "invalid field name"),
    ],
)
def test_unsupported_filters_raise_before_any_sql(
    stores: tuple[TiDBVectorStore, Any], leaf: MetadataFilter, problem: str
) -> None:
    ours, _ = stores
    filters = MetadataFilters(filters=[MetadataFilter(key="year", value=1, operator=">"), leaf])
    with pytest.raises(FilterError, match=problem):
        ours.query(VectorStoreQuery(query_embedding=[1.0] * DIM, filters=filters))
    if "field name" not in problem:  # checked by the filter compiler, the rest up front
        with pytest.raises(FilterError, match=r"filters\.filters\[1\]"):
            to_filter_dict(filters)
