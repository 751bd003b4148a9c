"""Folder ingest and stored sources: the library API behind ``tidb-bedrock ingest``.

``files`` finds files, names their sources and splits them; ``pipeline`` embeds and stores
them incrementally (``ingest_paths``); ``sources`` lists, matches and deletes what is stored.
"""

from langchain_tidb_bedrock.errors import IngestInterrupted, SourceNameError
from langchain_tidb_bedrock.ingest.files import (
    SUPPORTED_SUFFIXES,
    IngestPlan,
    IngestRoot,
    chunk_id,
    discover_files,
    markdown_sections,
    plan_ingest,
    rst_sections,
    source_name,
    split_file,
)
from langchain_tidb_bedrock.ingest.pipeline import (
    IngestSummary,
    add_new_documents,
    ingest_paths,
    ingest_plan,
)
from langchain_tidb_bedrock.ingest.sources import (
    StoredSource,
    closest_sources,
    delete_sources,
    list_sources,
    match_sources,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "IngestInterrupted",
    "IngestPlan",
    "IngestRoot",
    "IngestSummary",
    "SourceNameError",
    "StoredSource",
    "add_new_documents",
    "chunk_id",
    "closest_sources",
    "delete_sources",
    "discover_files",
    "ingest_paths",
    "ingest_plan",
    "list_sources",
    "markdown_sections",
    "match_sources",
    "plan_ingest",
    "rst_sections",
    "source_name",
    "split_file",
]
