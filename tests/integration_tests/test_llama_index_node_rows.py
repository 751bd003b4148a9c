"""The LlamaIndex store's node -> row conversion: LlamaIndex's own layout, nodes left as given.

``_rows`` dumps each node from a copy without its vector (the layout drops the vector anyway);
the stored metadata must stay exactly what ``node_to_metadata_dict`` gives for the node itself,
which ``llama-index-vector-stores-tidbvector`` writes and ``metadata_dict_to_node`` reads.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.schema import (
    Document,
    IndexNode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from langchain_tidb_bedrock.llama_index import TiDBVectorStore


def _nodes() -> list[TextNode]:
    source = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id="doc-1")}
    return [
        TextNode(
            id_="n-1",
            text="TiDB stores vectors",
            metadata={"year": 2024, "tags": ["a", "b"], "note": 'quote " tab \t é'},
            embedding=[0.25, -0.5, 1.0],
            relationships=source,
            start_char_idx=3,
            end_char_idx=22,
        ),
        Document(id_="d-1", text="a whole document", metadata={"k": "v"}, embedding=[1.0, 0, 0]),
        IndexNode(id_="i-1", text="see the index", index_id="idx", embedding=[0.0, 1.0, 0.0]),
    ]


def test_rows_keep_llama_index_layout_and_leave_the_nodes_untouched() -> None:
    store = TiDBVectorStore("t", connection_string="mysql+pymysql://root@127.0.0.1:4000/test")
    nodes = _nodes()
    expected = [node_to_metadata_dict(n, remove_text=True) for n in nodes]
    ids, texts, vectors, metas = store._rows(nodes)
    assert ids == ["n-1", "d-1", "i-1"]
    assert texts == ["TiDB stores vectors", "a whole document", "see the index"]
    assert vectors == [[0.25, -0.5, 1.0], [1.0, 0, 0], [0.0, 1.0, 0.0]]
    assert metas == expected  # the same dicts, down to the _node_content JSON text
    assert [n.embedding for n in nodes] == vectors  # the caller's nodes keep their vectors
    back = metadata_dict_to_node(metas[0], text=texts[0])
    assert (back.node_id, back.ref_doc_id, back.metadata) == ("n-1", "doc-1", nodes[0].metadata)
    assert back.embedding is None
