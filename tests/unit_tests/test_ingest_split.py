"""The ingest splitter on its own: sections, chunk sizes, overlap, ids, duplicates.

The CLI tests take their expected chunk ids from ``split_file``; these tests pin what it
returns against chunks worked out by hand.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from langchain_tidb_bedrock.ingest import chunk_id, markdown_sections, rst_sections, split_file


def _sha(source: str, text: str) -> str:
    return hashlib.sha256(source.encode() + b"\x00" + text.encode()).hexdigest()[:32]


def test_chunk_id_is_the_sha256_of_source_nul_text() -> None:
    assert (
        chunk_id("docs/a.md", "hello")
        == _sha("docs/a.md", "hello")
        == "929c4afee8293d474494c08796885d03"
    )
    assert chunk_id("docs/a.md", "hello") != chunk_id("docs/b.md", "hello")
    assert len(chunk_id("s", "数据")) == 32


def test_markdown_sections_follow_the_heading_path_outside_code_fences() -> None:
    text = (
        "intro line\n\n"
        "# Guide\n\n"
        "## Empty\n"
        "### Deep\n"
        "body deep\n\n"
        "```\n# not a heading\n```\n"
        "## Next ##\n"
        "next body\n"
        "# Other\n"
        "other body\n"
    )
    assert markdown_sections(text) == [
        ("", "intro line"),
        # "Guide" and "Empty" have no body of their own: their titles live on in the path.
        ("Guide > Empty > Deep", "body deep\n\n```\n# not a heading\n```"),
        ("Guide > Next", "next body"),
        ("Other", "other body"),
    ]


def test_rst_sections_follow_the_adornment_order() -> None:
    text = (
        "=====\nGuide\n=====\n\nintro\n\n"
        "Install\n-------\n\nsteps\n\n"
        "Deep\n~~~~\n\ndeep body\n\n"
        "Usage\n-----\n\nuse it\nNot a title\n--\n"  # an underline shorter than its line
    )
    assert rst_sections(text) == [
        ("Guide", "intro"),
        ("Guide > Install", "steps"),
        ("Guide > Install > Deep", "deep body"),
        ("Guide > Usage", "use it\nNot a title\n--"),
    ]


def test_markdown_chunks_fill_up_to_the_size_and_start_with_their_heading(
    tmp_path: Path,
) -> None:
    p1, p2, p3 = "a" * 20, "b" * 20, "c" * 20
    path = tmp_path / "doc.md"
    path.write_text(f"# A\n\n{p1}\n\n{p2}\n\n{p3}\n\n## B\n\nshort\n")
    docs = split_file(path, "docs/doc.md", chunk_size=60, chunk_overlap=0)
    # Room for the body: 60 - len("A") - 2 = 57; p1 + p2 with their blank line is 42, adding
    # p3 would make 64.
    assert [d.page_content for d in docs] == [
        f"A\n\n{p1}\n\n{p2}",
        f"A\n\n{p3}",
        "A > B\n\nshort",
    ]
    assert [d.metadata for d in docs] == [{"source": "docs/doc.md", "chunk": n} for n in range(3)]
    assert [d.id for d in docs] == [_sha("docs/doc.md", d.page_content) for d in docs]


def test_text_chunks_overlap_by_whole_words(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("aaaa bbbb cccc dddd")
    # Each space counts with the word after it: " bbbb" is 5 characters of a chunk.
    docs = split_file(path, "docs/notes.txt", chunk_size=10, chunk_overlap=5)
    assert [d.page_content for d in docs] == ["aaaa bbbb", "bbbb cccc", "cccc dddd"]
    docs = split_file(path, "docs/notes.txt", chunk_size=10, chunk_overlap=0)
    assert [d.page_content for d in docs] == ["aaaa bbbb", "cccc dddd"]


def test_repeated_and_blank_chunks_are_kept_once_or_dropped(tmp_path: Path) -> None:
    path = tmp_path / "twice.md"
    path.write_text("# A\n\nsame\n\n# A\n\nsame\n\n# B\n\n   \n\n# C\n\nlast\n")
    docs = split_file(path, "s", chunk_size=100, chunk_overlap=10, metadata={"path": "/x"})
    assert [(d.page_content, d.metadata) for d in docs] == [
        ("A\n\nsame", {"source": "s", "chunk": 0, "path": "/x"}),
        ("C\n\nlast", {"source": "s", "chunk": 1, "path": "/x"}),
    ]


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        split_file(path, "s")
