"""The RAG answer's stream under throttling: retried before the first token, explained after.

A throttle or a transient fault (5xx, a model stream error, a dropped connection) that arrives
before anything was streamed costs the caller nothing, so the answer is requested again (with
backoff). An exhausted daily quota, an access error or a refused request is raised at once: no
retry cures it (the kinds come from ``langchain_tidb_bedrock._bedrock_faults``, shared with the
embeddings). Once text has gone out, a retry would repeat it, so the caller gets
:class:`AnswerStreamError`, naming the model and how much was streamed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableGenerator

from langchain_tidb_bedrock._bedrock_faults import retryable
from langchain_tidb_bedrock.errors import AnswerStreamError

__all__ = ["AnswerStreamError", "retrying_stream"]


def _model_name(llm: Any) -> str:
    for attr in ("model_id", "model", "model_name"):
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(llm).__name__


def _merge(chunks: Iterator[Any] | list[Any]) -> Any:
    value: Any = None
    for chunk in chunks:
        value = chunk if value is None else {**value, **chunk}
    return value


def retrying_stream(
    chain: Runnable[Any, str],
    llm: Any,
    *,
    max_retries: int = 3,
    backoff: float = 0.5,
) -> Runnable[Any, str]:
    """Wrap ``chain`` (which ends in ``llm``) so a throttle before the first chunk is retried.

    Args:
        chain: The answer chain; it streams strings.
        llm: The model, only to name it in errors.
        max_retries: Retries of a throttle or transient fault before anything was streamed
            (a daily-quota throttle is never retried).
        backoff: First retry's backoff ceiling in seconds (doubles per retry, full jitter).

    Returns:
        A runnable with the same input and output; ``invoke`` streams internally.
    """
    model = _model_name(llm)

    def retry_delay(err: Exception, chars: int, chunks: int, attempt: int) -> float:
        """Seconds to wait before a retry; else raises what the caller should see."""
        if chunks == 0 and retryable(err) and attempt < max_retries:
            return random.uniform(0, backoff * 2**attempt)  # noqa: S311 - jitter, not security
        if chunks:
            raise AnswerStreamError(model, chars, chunks, err) from err
        raise err

    def transform(inputs: Iterator[Any], config: RunnableConfig) -> Iterator[str]:
        value = _merge(inputs)
        attempt = 0
        while True:
            chars = chunks = 0
            try:
                for piece in chain.stream(value, config):
                    if piece:  # an empty chunk (message start) is not text the caller saw
                        chars, chunks = chars + len(piece), chunks + 1
                    yield piece
                return
            except Exception as err:
                time.sleep(retry_delay(err, chars, chunks, attempt))
                attempt += 1

    async def atransform(inputs: AsyncIterator[Any], config: RunnableConfig) -> AsyncIterator[str]:
        value = _merge([chunk async for chunk in inputs])
        attempt = 0
        while True:
            chars = chunks = 0
            try:
                async for piece in chain.astream(value, config):
                    if piece:  # an empty chunk (message start) is not text the caller saw
                        chars, chunks = chars + len(piece), chunks + 1
                    yield piece
                return
            except Exception as err:
                await asyncio.sleep(retry_delay(err, chars, chunks, attempt))
                attempt += 1

    # RunnableGenerator passes the config to functions that take one; its stubs do not say so.
    return RunnableGenerator(transform, atransform, name="answer")  # type: ignore[arg-type]
