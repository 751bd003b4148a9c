"""Amazon Titan Text Embeddings V2 as a LlamaIndex ``BaseEmbedding``, on the package's client.

Every call goes to :class:`~langchain_tidb_bedrock.embeddings.titan.BedrockTitanEmbeddings`:
concurrent requests, the rate learnt from throttling, retries, deduplication, checked vectors and
partial results (:class:`~langchain_tidb_bedrock.errors.PartialEmbeddingError`). LlamaIndex's own
``BedrockEmbedding`` sends Titan one text at a time.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import PrivateAttr

from langchain_tidb_bedrock.embeddings.titan import (
    DEFAULT_EMBEDDING_MODEL_ID,
    BedrockTitanEmbeddings,
)

__all__ = ["BedrockTitanEmbedding"]

# Texts handed to the client per call: enough to keep max_concurrency requests in flight
# (LlamaIndex's default of 10 would cap a 16-wide client at 10).
DEFAULT_EMBED_BATCH_SIZE = 256


class BedrockTitanEmbedding(BaseEmbedding):
    """Amazon Titan Text Embeddings V2 on Bedrock for LlamaIndex: concurrent, rate-adaptive.

    Setup:
        Install the extra and configure AWS credentials and a region with access to
        ``amazon.titan-embed-text-v2:0``:

        ```bash
        pip install -U 'langchain-tidb-bedrock[llama-index]'
        export AWS_REGION=us-east-1
        ```

        Offline, pass ``endpoint_url=`` of a ``LocalBedrock``.

    Key init args — embedding params:
        model_name: str
            Bedrock model id (default ``BEDROCK_EMBEDDING_MODEL_ID`` or Titan Text V2).
        dimensions: int
            256, 512 or 1024 (default 1024); validated.
        normalize: bool
            Titan's ``normalize`` flag (default True); returned vectors are checked for it.
        embed_batch_size: int
            Texts per call to the client (default 256); they run ``max_concurrency`` at once.

    Key init args — client params:
        region_name, endpoint_url, credentials_profile_name, max_concurrency, max_retries,
        timeout, adaptive_rate_limit, on_long_text, config: as for
        :class:`~langchain_tidb_bedrock.embeddings.titan.BedrockTitanEmbeddings`.
        client: BedrockTitanEmbeddings | None
            An existing client to share (its rate learner, pool and usage counts); then the
            settings above come from it.

    Instantiate:
        ```python
        from langchain_tidb_bedrock.llama_index import BedrockTitanEmbedding

        embed_model = BedrockTitanEmbedding(dimensions=512, region_name="us-east-1")
        ```

    Embed:
        ```python
        vector = embed_model.get_query_embedding("What is TiDB?")
        vectors = embed_model.get_text_embedding_batch(["TiDB", "Bedrock"])
        ```

    Async:
        ```python
        vector = await embed_model.aget_query_embedding("What is TiDB?")
        vectors = await embed_model.aget_text_embedding_batch(["TiDB", "Bedrock"])
        ```
    """

    dimensions: int = 1024
    """Output dimensions: 256, 512 or 1024."""

    normalize: bool = True
    """Titan's ``normalize`` flag."""

    _client: BedrockTitanEmbeddings = PrivateAttr()

    def __init__(
        self,
        model_name: str | None = None,
        *,
        dimensions: int | None = None,
        normalize: bool | None = None,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        client: BedrockTitanEmbeddings | None = None,
        callback_manager: Any = None,
        **client_kwargs: Any,
    ) -> None:
        """Build (or adopt) the Titan client; its settings are validated here.

        Args:
            model_name: Bedrock model id (default ``BEDROCK_EMBEDDING_MODEL_ID`` or Titan V2).
            dimensions: 256, 512 or 1024 (default 1024).
            normalize: Titan's ``normalize`` flag (default True).
            embed_batch_size: Texts per call to the client.
            client: An existing :class:`BedrockTitanEmbeddings` to share; ``model_name``,
                ``dimensions``, ``normalize`` and ``client_kwargs`` must then be left out.
            callback_manager: LlamaIndex callback manager.
            **client_kwargs: More ``BedrockTitanEmbeddings`` fields (``region_name``,
                ``endpoint_url``, ``max_concurrency``, ``timeout``...).

        Raises:
            ValueError: An invalid setting (dimensions, normalize in ``model_kwargs``...), or
                settings given together with ``client``.
            BedrockConfigError: No region or credentials (the message names what to set).
        """
        if client is None:
            settings: dict[str, Any] = dict(client_kwargs)
            if model_name is not None:
                settings["model_id"] = model_name
            if dimensions is not None:
                settings["dimensions"] = dimensions
            if normalize is not None:
                settings["normalize"] = normalize
            client = BedrockTitanEmbeddings(**settings)
        else:
            given = [
                name
                for name, value in (
                    ("model_name", model_name),
                    ("dimensions", dimensions),
                    ("normalize", normalize),
                )
                if value is not None
            ] + sorted(client_kwargs)
            if given:
                msg = f"{', '.join(given)} cannot be combined with client=: the client has them"
                raise ValueError(msg)
            if not isinstance(client, BedrockTitanEmbeddings):
                msg = f"client must be a BedrockTitanEmbeddings, got {type(client).__name__}"
                raise TypeError(msg)
        super().__init__(  # type: ignore[call-arg]  # this class's pydantic fields
            model_name=client.model_id or DEFAULT_EMBEDDING_MODEL_ID,
            dimensions=client.dimensions,
            normalize=client.normalize,
            embed_batch_size=embed_batch_size,
            callback_manager=callback_manager,
        )
        self._client = client

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's serialization name."""
        return "BedrockTitanEmbedding"

    @property
    def client(self) -> BedrockTitanEmbeddings:
        """The Titan client (a LangChain ``Embeddings``: share it with the LangChain side)."""
        return self._client

    @property
    def usage(self) -> dict[str, int]:
        """The client's counters: input_tokens, requests, embedded, retries, throttles."""
        return self._client.usage

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._client.embed_query(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self._client.aembed_query(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._client.embed_documents([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._client.aembed_documents([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._client.embed_documents(list(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._client.aembed_documents(list(texts))

    def close(self) -> None:
        """Stop the client's worker threads (a later call starts new ones)."""
        self._client.close()
