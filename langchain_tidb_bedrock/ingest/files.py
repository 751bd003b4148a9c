"""Finding the files to ingest, naming their sources, and splitting them into chunks.

Naming: every PATH given is a *root*. A file found in a root folder is stored under the source
``<folder name>/<path inside the folder>`` (a single file given on its own: ``<its folder's
name>/<file name>``); ``name=`` replaces the folder name. So a moved folder keeps its sources
and chunk ids, and the working directory of a run does not matter. Nothing here talks to a
server.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from langchain_tidb_bedrock.errors import InvalidInputError, SourceNameError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "IngestPlan",
    "IngestRoot",
    "SourceNameError",
    "chunk_id",
    "discover_files",
    "markdown_sections",
    "plan_ingest",
    "rst_sections",
    "source_name",
    "split_file",
]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
"""File types ingested by default (``glob=`` selects others, read as plain text)."""

_MARKDOWN = (".md", ".markdown")


def chunk_id(source: str, text: str) -> str:
    """Stable id of a chunk: the first 32 hex digits of ``sha256(source NUL text)``."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class IngestRoot:
    """One PATH given to ingest: a folder, or a single file.

    Attributes:
        path: The resolved absolute path.
        name: The collection name its sources start with (the folder's name, or for a
            single file its folder's name), unless given.
        is_dir: Whether it is a folder.
    """

    path: Path
    name: str
    is_dir: bool

    def source_of(self, file: Path) -> str:
        """The stored source name of ``file`` (resolved, inside this root)."""
        base = self.path if self.is_dir else self.path.parent
        relative = file.relative_to(base).as_posix()
        return f"{self.name}/{relative}" if self.name else relative


@dataclass
class IngestPlan:
    """What an ingest will read, decided before any server is contacted.

    Attributes:
        roots: The PATHs given.
        files: ``(file, source)`` for every selected file, each file once.
        ignored: Files of other types (not reported when ``glob`` chose the files).
    """

    roots: list[IngestRoot]
    files: list[tuple[Path, str]]
    ignored: list[Path]


def source_name(path: str | os.PathLike[str]) -> str:
    """The source of a file ingested on its own: ``<its folder's name>/<file name>``."""
    resolved = Path(path).resolve()
    return IngestRoot(resolved, resolved.parent.name, is_dir=False).source_of(resolved)


def _walk(root: Path) -> list[Path]:
    # Hidden files and folders (names starting with ".") inside a folder are not visited.
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _selected(relative: str, glob: Sequence[str] | None) -> bool:
    """Whether a file (its path inside its root, POSIX) is ingested.

    Without ``glob``: the supported suffixes. With it: a pattern without ``/`` matches the file
    name, one with ``/`` the path inside the folder (``*`` crosses folders there).
    """
    if not glob:
        return Path(relative).suffix.lower() in SUPPORTED_SUFFIXES
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatchcase(relative if "/" in p else name, p) for p in glob)


def discover_files(
    paths: Iterable[str | os.PathLike[str]], *, glob: Sequence[str] | None = None
) -> tuple[list[Path], list[Path]]:
    """Expand files and folders (recursively) into selected files and ignored ones.

    Hidden files and folders (names starting with ``.``) inside a folder are not visited.

    Args:
        paths: Files and folders.
        glob: Patterns choosing the files instead of the supported suffixes.

    Returns:
        ``(files, ignored)``, each sorted and without duplicates.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    files: dict[Path, None] = {}
    ignored: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            msg = f"no such file or directory: {os.fspath(raw)}"
            raise FileNotFoundError(msg)
        for p in _walk(path) if path.is_dir() else [path]:
            relative = p.relative_to(path).as_posix() if path.is_dir() else p.name
            target = files if _selected(relative, glob) else ignored
            target[p] = None
    return sorted(files), sorted(ignored)


def plan_ingest(
    paths: Sequence[str | os.PathLike[str]],
    *,
    name: str | None = None,
    glob: Sequence[str] | None = None,
) -> IngestPlan:
    """Find the files under ``paths`` and name their sources; reads no file content.

    Args:
        paths: Files and folders.
        name: Collection name replacing the folder name (one path only).
        glob: Patterns choosing the files (e.g. ``["*.md", "*.py"]``) instead of the supported
            suffixes; a pattern without ``/`` matches file names, one with ``/`` the path
            inside the folder. Files it does not choose are not reported as ignored.

    Raises:
        FileNotFoundError: A path does not exist.
        SourceNameError: Two different files would get the same source name (e.g. two
            folders called ``docs``), or ``name`` was given with several paths.
        InvalidInputError: A ``glob`` pattern is empty.
    """
    if name is not None and len(paths) != 1:
        msg = f"a collection name applies to one PATH, got {len(paths)}"
        raise SourceNameError(msg)
    patterns = _check_glob(glob)
    roots: list[IngestRoot] = []
    files: list[tuple[Path, str]] = []
    ignored: list[Path] = []
    owner: dict[str, Path] = {}
    seen: set[Path] = set()
    for raw in paths:
        given = Path(raw).expanduser()
        if not given.exists():
            msg = f"no such file or directory: {os.fspath(raw)}"
            raise FileNotFoundError(msg)
        resolved = given.resolve()
        is_dir = resolved.is_dir()
        default = resolved.name if is_dir else resolved.parent.name
        root = IngestRoot(resolved, default if name is None else name, is_dir)
        roots.append(root)
        for found in _walk(given) if is_dir else [given]:
            relative = found.relative_to(given).as_posix() if is_dir else found.name
            if not _selected(relative, patterns):
                if not patterns:
                    ignored.append(found)
                continue
            file = found.resolve()
            if file in seen:  # the same file reached through two of the given paths
                continue
            seen.add(file)
            inside = root.path / found.relative_to(given) if is_dir else file
            source = root.source_of(inside)
            if source in owner:
                msg = (
                    f"{owner[source]} and {file} would both be stored as {source!r}; "
                    "ingest one of their folders on its own with --name"
                )
                raise SourceNameError(msg)
            owner[source] = file
            files.append((inside, source))
    return IngestPlan(roots, files, sorted(dict.fromkeys(ignored)))


def _check_glob(glob: Sequence[str] | None) -> list[str] | None:
    if glob is None:
        return None
    if isinstance(glob, str):
        glob = [glob]
    patterns = [p.strip() for p in glob]
    for n, pattern in enumerate(patterns):
        if not pattern:
            msg = f"glob pattern at position {n} is empty"
            raise InvalidInputError(msg)
    return patterns or None


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = ("```", "~~~")


def markdown_sections(text: str) -> list[tuple[str, str]]:
    """Split Markdown at headings (not inside code fences) into ``(heading path, body)``.

    The heading path joins the enclosing headings, e.g. ``"Guide > Vector search"``; sections
    without a body are dropped (their title lives on in their subsections' paths).
    """
    sections: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append((" > ".join(title for _, title in path), content))

    for line in text.splitlines():
        if line.lstrip().startswith(_FENCE):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        flush()
        body = []
        level = len(match.group(1))
        path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2))]
    flush()
    return sections


# A reStructuredText adornment: one punctuation character repeated (at least twice).
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+\s*$")


def rst_sections(text: str) -> list[tuple[str, str]]:
    """Split reStructuredText at section titles into ``(title path, body)``.

    A title is a line underlined (and optionally overlined) with one punctuation character at
    least as long as it; levels follow the order the adornment styles first appear, as in
    docutils. Sections without a body are dropped, as in :func:`markdown_sections`.
    """
    lines = text.splitlines()
    sections: list[tuple[str, str]] = []
    styles: list[tuple[str, bool]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            sections.append((" > ".join(title for _, title in path), content))

    def adornment(n: int, at_least: int) -> bool:
        return (
            n < len(lines)
            and _RST_ADORNMENT.match(lines[n]) is not None
            and len(lines[n].rstrip()) >= at_least
        )

    i = 0
    while i < len(lines):
        line = lines[i]
        title = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if adornment(i, len(title)) and title and lines[i + 2 : i + 3] == [line]:
            style, nxt = (line[0], True), i + 3  # overline, title, underline
        elif line.strip() and not adornment(i, 1) and adornment(i + 1, len(line.rstrip())):
            title, style, nxt = line.strip(), (lines[i + 1][0], False), i + 2
        else:
            body.append(line)
            i += 1
            continue
        flush()
        body = []
        if style not in styles:
            styles.append(style)
        level = styles.index(style)
        path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
        i = nxt
    flush()
    return sections


def _split_text(path: Path, text: str, chunk_size: int, chunk_overlap: int) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".rst":
        sections, language = rst_sections(text), Language.RST
    elif suffix in _MARKDOWN:
        sections, language = markdown_sections(text), Language.MARKDOWN
    else:
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
        return splitter.split_text(text)
    # Each chunk starts with its section's heading path: a chunk is understandable (and
    # retrievable) on its own, and no chunk is a lone heading.
    pieces: list[str] = []
    for heading, body in sections:
        room = max(chunk_size - len(heading) - 2, chunk_size // 2)
        splitter = RecursiveCharacterTextSplitter.from_language(
            language, chunk_size=room, chunk_overlap=min(chunk_overlap, room // 2)
        )
        for piece in splitter.split_text(body):
            pieces.append(f"{heading}\n\n{piece}" if heading else piece)
    return pieces


def split_file(
    path: Path,
    source: str,
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 150,
    metadata: Mapping[str, Any] | None = None,
) -> list[Document]:
    """Read a UTF-8 text, Markdown or reStructuredText file and split it into chunk documents.

    Markdown and reStructuredText are cut at headings (section titles) first, and every chunk
    starts with its heading path; anything else is split as plain text.

    Args:
        path: The file.
        source: The ``source`` metadata value (and id salt).
        chunk_size: Characters per chunk at most.
        chunk_overlap: Characters shared by neighbouring chunks.
        metadata: More metadata for every chunk (e.g. ``path``, ``ingested_at``).

    Returns:
        Documents with ``id`` from :func:`chunk_id` and metadata ``{"source", "chunk", ...}``;
        a chunk repeated within the file is kept once.

    Raises:
        UnicodeDecodeError: The file is not UTF-8 text.
    """
    text = path.read_text(encoding="utf-8")
    docs: list[Document] = []
    seen: set[str] = set()
    for piece in _split_text(path, text, chunk_size, chunk_overlap):
        if not piece.strip():
            continue
        doc_id = chunk_id(source, piece)
        if doc_id in seen:
            continue
        seen.add(doc_id)
        docs.append(
            Document(
                id=doc_id,
                page_content=piece,
                metadata={"source": source, "chunk": len(docs), **(metadata or {})},
            )
        )
    return docs
