"""LocalBedrock's quota model (token buckets, token burndown, daily quota) on a fake clock."""

from __future__ import annotations

import pytest

from langchain_tidb_bedrock.local._quotas import (
    DAILY_TOKENS_MESSAGE,
    REQUESTS_MESSAGE,
    TOKENS_MESSAGE,
    Quotas,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _quotas(clock: Clock, **kwargs: float) -> Quotas:
    return Quotas(**kwargs, clock=clock, wall_clock=clock)  # type: ignore[arg-type]


def test_request_bucket_holds_one_second_and_refills_continuously(clock: Clock) -> None:
    quotas = _quotas(clock, requests_per_minute=120)  # 2 per second, 2 deep
    assert [quotas.admit("m", 0) for _ in range(3)] == [None, None, REQUESTS_MESSAGE]
    clock.now += 0.25  # half a request refilled: not enough
    assert quotas.admit("m", 0) == REQUESTS_MESSAGE
    clock.now += 0.25
    assert quotas.admit("m", 0) is None
    clock.now += 60  # a long pause refills one second's worth, not a minute's
    assert [quotas.admit("m", 0) for _ in range(3)] == [None, None, REQUESTS_MESSAGE]


def test_small_quota_still_admits_one_request(clock: Clock) -> None:
    quotas = _quotas(clock, requests_per_minute=6)  # one request per 10 s
    assert quotas.admit("m", 0) is None
    clock.now += 9.9
    assert quotas.admit("m", 0) == REQUESTS_MESSAGE
    clock.now += 0.1
    assert quotas.admit("m", 0) is None


def test_quotas_are_per_model(clock: Clock) -> None:
    quotas = _quotas(clock, requests_per_minute=60)
    assert quotas.admit("us.meta.llama3-2-3b-instruct-v1:0", 0) is None
    assert quotas.admit("amazon.titan-embed-text-v2:0", 0) is None
    assert quotas.admit("amazon.titan-embed-text-v2:0", 0) == REQUESTS_MESSAGE


def test_token_bucket_reserves_then_refunds_unused_output(clock: Clock) -> None:
    quotas = _quotas(clock, tokens_per_minute=600)  # 10 tokens per second, 10 deep
    assert quotas.admit("m", 8) is None
    assert quotas.admit("m", 5) == TOKENS_MESSAGE
    quotas.settle("m", reserved=8, used=3)  # 5 given back
    assert quotas.admit("m", 5) is None


def test_a_request_larger_than_the_bucket_passes_when_full_and_leaves_debt(clock: Clock) -> None:
    quotas = _quotas(clock, tokens_per_minute=60)  # 1 token per second
    assert quotas.admit("m", 5) is None
    clock.now += 4.9
    assert quotas.admit("m", 1) == TOKENS_MESSAGE
    clock.now += 0.1
    assert quotas.admit("m", 1) is None


def test_a_refused_request_consumes_nothing(clock: Clock) -> None:
    quotas = _quotas(clock, requests_per_minute=120, tokens_per_minute=120)  # both 2 deep
    assert quotas.admit("m", 2) is None
    clock.now += 0.5  # requests back to 2, tokens to 1
    assert quotas.admit("m", 2) == TOKENS_MESSAGE
    assert quotas.admit("m", 1) is None
    assert quotas.admit("m", 0) is None  # the refused request did not take a request slot
    assert quotas.admit("m", 0) == REQUESTS_MESSAGE


def test_daily_quota_refuses_until_the_next_utc_day(clock: Clock) -> None:
    clock.now = 86_400.0 * 20_000 + 100
    quotas = _quotas(clock, tokens_per_day=10)
    assert quotas.admit("m", 6) is None
    assert quotas.admit("m", 6) == DAILY_TOKENS_MESSAGE
    quotas.settle("m", reserved=6, used=2)
    assert quotas.admit("m", 6) is None  # 2 + 6 <= 10 after the refund
    assert quotas.admit("m", 3) == DAILY_TOKENS_MESSAGE
    clock.now = 86_400.0 * 20_001
    assert quotas.admit("m", 10) is None


def test_settable_quotas_start_afresh_and_reject_non_positive(clock: Clock) -> None:
    quotas = _quotas(clock)
    assert all(quotas.admit("m", 1_000) is None for _ in range(50))  # unlimited by default
    quotas.requests_per_minute = 60
    assert quotas.requests_per_minute == 60
    assert [quotas.admit("m", 0) for _ in range(2)] == [None, REQUESTS_MESSAGE]
    quotas.requests_per_minute = 120  # a new, full bucket at the new rate
    assert [quotas.admit("m", 0) for _ in range(3)] == [None, None, REQUESTS_MESSAGE]
    quotas.requests_per_minute = None
    assert quotas.admit("m", 0) is None
    for name in ("requests_per_minute", "tokens_per_minute", "tokens_per_day"):
        with pytest.raises(ValueError, match=name):
            setattr(quotas, name, 0)
