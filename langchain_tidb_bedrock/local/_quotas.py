"""Bedrock's on-demand quotas for LocalBedrock: requests and tokens per minute, tokens per day.

Modelled on the service (per model id; a cross-Region profile id has its own quotas):

* each per-minute quota is a token bucket refilled continuously at ``quota / 60`` per second
  whose capacity is one second of quota (at least 1), so bursts above the steady rate are
  refused within a second instead of once a minute;
* a request reserves its input tokens plus its maximum output at the start (Bedrock's token
  burndown) and is refunded what it did not use when it ends;
* the daily token quota is a counter per UTC day; a request that does not fit is refused with
  "Too many tokens per day", which no retry within the day can cure.

A refused request consumes nothing. Throttles carry no retry-after header: the service model
defines none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "DAILY_TOKENS_MESSAGE",
    "REQUESTS_MESSAGE",
    "TOKENS_MESSAGE",
    "Quotas",
    "TokenBucket",
]

REQUESTS_MESSAGE = "Too many requests, please wait before trying again."
TOKENS_MESSAGE = "Too many tokens, please wait before trying again."
DAILY_TOKENS_MESSAGE = "Too many tokens per day, please wait before trying again."
_DAY = 86_400.0
_N = TypeVar("_N", int, float)


class TokenBucket:
    """A bucket refilled continuously at ``per_minute / 60`` per second, one second deep."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity  # a fresh quota starts full
        self._last = now

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self._last) * self.rate)
        self._last = now

    def has(self, amount: float, now: float) -> bool:
        """Whether ``amount`` may be taken now.

        A request larger than the whole bucket (an 8k-token text against a 5k-token second)
        passes once the bucket is full and leaves it in debt, so it is slow, never impossible.
        """
        self._refill(now)
        return self.level >= min(amount, self.capacity) - 1e-9

    def take(self, amount: float) -> None:
        """Remove ``amount`` (call :meth:`has` first); refunds pass a negative amount."""
        self.level = min(self.capacity, self.level - amount)


@dataclass
class _Day:
    day: int = -1
    used: int = 0


class Quotas:
    """Per-model quotas; ``None`` disables one. Thread-safe; settable while requests run.

    Changing a per-minute quota starts its buckets afresh (full) at the new rate.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        tokens_per_day: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock, self._wall_clock = clock, wall_clock
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}
        self._days: dict[str, _Day] = {}
        self._rpm = _positive(requests_per_minute, "requests_per_minute")
        self._tpm = _positive(tokens_per_minute, "tokens_per_minute")
        self._tpd = _positive(tokens_per_day, "tokens_per_day")

    @property
    def requests_per_minute(self) -> float | None:
        """Requests per minute per model (None: unlimited)."""
        return self._rpm

    @requests_per_minute.setter
    def requests_per_minute(self, value: float | None) -> None:
        with self._lock:
            self._rpm = _positive(value, "requests_per_minute")
            self._requests.clear()

    @property
    def tokens_per_minute(self) -> float | None:
        """Input plus (reserved) output tokens per minute per model (None: unlimited)."""
        return self._tpm

    @tokens_per_minute.setter
    def tokens_per_minute(self, value: float | None) -> None:
        with self._lock:
            self._tpm = _positive(value, "tokens_per_minute")
            self._tokens.clear()

    @property
    def tokens_per_day(self) -> int | None:
        """Tokens per model per UTC day (None: unlimited)."""
        return self._tpd

    @tokens_per_day.setter
    def tokens_per_day(self, value: int | None) -> None:
        with self._lock:
            self._tpd = _positive(value, "tokens_per_day")
            self._days.clear()

    def reset(self) -> None:
        """Refill every bucket and forget the tokens used today."""
        with self._lock:
            self._requests.clear()
            self._tokens.clear()
            self._days.clear()

    def admit(self, model: str, tokens: int) -> str | None:
        """Reserve one request and ``tokens`` for ``model``; the throttle message if refused."""
        with self._lock:
            now = self._clock()
            requests = self._bucket(self._requests, self._rpm, model, now)
            if requests is not None and not requests.has(1, now):
                return REQUESTS_MESSAGE
            budget = self._bucket(self._tokens, self._tpm, model, now)
            if budget is not None and not budget.has(tokens, now):
                return TOKENS_MESSAGE
            day = self._today(model)
            if self._tpd is not None and day.used + tokens > self._tpd:
                return DAILY_TOKENS_MESSAGE
            if requests is not None:
                requests.take(1)
            if budget is not None:
                budget.take(tokens)
            day.used += tokens
            return None

    def settle(self, model: str, reserved: int, used: int) -> None:
        """Give back what a finished request reserved but did not use."""
        unused = reserved - used
        if unused <= 0:
            return
        with self._lock:
            budget = self._tokens.get(model)
            if budget is not None:
                budget.take(-unused)
            day = self._days.get(model)
            if day is not None:
                day.used = max(0, day.used - unused)

    def _bucket(
        self, buckets: dict[str, TokenBucket], quota: float | None, model: str, now: float
    ) -> TokenBucket | None:
        if quota is None:
            return None
        if model not in buckets:
            buckets[model] = TokenBucket(quota, now)
        return buckets[model]

    def _today(self, model: str) -> _Day:
        day = self._days.setdefault(model, _Day())
        today = int(self._wall_clock() // _DAY)
        if day.day != today:  # a new UTC day: the daily quota is whole again
            day.day, day.used = today, 0
        return day


def _positive(value: _N | None, name: str) -> _N | None:
    if value is not None and value <= 0:
        msg = f"{name} must be positive or None, got {value!r}"
        raise ValueError(msg)
    return value
