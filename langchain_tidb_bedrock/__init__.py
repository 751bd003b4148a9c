"""Retrieval-augmented generation on TiDB vector search and Amazon Bedrock for LangChain."""

from importlib import metadata

try:
    __version__ = metadata.version(__package__ or __name__)
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = ""

__all__ = ["__version__"]
