"""The embeddings' rate control: the learned send rate (failure classes: test_bedrock_faults)."""

from __future__ import annotations

import pytest

from langchain_tidb_bedrock.embeddings._rate import RateLearner


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_unlimited_until_the_first_throttle_then_the_measured_rate() -> None:
    clock = Clock()
    rate = RateLearner(clock=clock)
    assert all(rate.delay() == 0 for _ in range(100))
    for _ in range(20):  # 20 successes over the last 2 s: 10 per second got through
        clock.now += 0.1
        rate.success()
    rate.throttled()
    learned = rate.rate
    assert learned is not None
    assert learned == pytest.approx(10 * 0.97)
    assert rate.delay() == pytest.approx(1 / learned)  # no burst right after a throttle
    clock.now += 1 / learned
    assert rate.delay() == 0


def test_one_cut_per_window_and_a_halving_when_nothing_got_through() -> None:
    clock = Clock()
    rate = RateLearner(clock=clock)
    rate.delay()
    rate.throttled()  # nothing succeeded yet: 1 request/s
    assert rate.rate == 1.0
    rate.throttled()  # the same burst: ignored
    assert rate.rate == 1.0
    clock.now += 2.0
    rate.throttled()
    assert rate.rate == 0.5


def test_a_quiet_window_grows_the_rate_back_towards_the_measured_one() -> None:
    clock = Clock()
    rate = RateLearner(clock=clock)
    rate.delay()
    for _ in range(40):
        clock.now += 0.05
        rate.success()
    rate.throttled()  # 20 per second got through
    assert rate.rate == pytest.approx(19.4)
    clock.now += 11.0  # all successes are history now
    rate.throttled()
    assert rate.rate == pytest.approx(9.7)  # nothing got through lately: halved
    clock.now += 2.0
    rate.delay()  # a quiet window: doubles while under the measured 20
    assert rate.rate == pytest.approx(19.4)
    clock.now += 2.0
    rate.delay()  # above it: grows slowly, probing for a raised quota
    assert rate.rate == pytest.approx(19.4 * 1.1)


def test_at_a_low_quota_probes_are_rare_and_a_throttled_probe_is_undone() -> None:
    clock = Clock()
    rate = RateLearner(clock=clock)
    rate.delay()
    for _ in range(10):  # one request a second got through (a one-request bucket)
        clock.now += 1.0
        rate.success()
    rate.throttled()
    assert rate.rate == pytest.approx(0.97)
    steady = rate.rate
    for _ in range(25):  # 25 s quiet: fewer than probe_requests (30) sends, no probe yet
        clock.now += 1.0
        rate.delay()
    assert rate.rate == steady
    clock.now += 6.0
    rate.delay()  # 31 s quiet: one slow probe
    assert rate.rate == pytest.approx(steady * 1.1)
    assert rate.settled_rate == steady  # the probe is on trial
    clock.now += 1.0
    rate.throttled()  # the probe met the quota: back to the rate that ran quietly
    assert rate.rate == rate.settled_rate == steady
    clock.now += 60.0
    rate.delay()  # never unlimited while quiet spells are shorter than three probe intervals
    assert rate.rate is not None
    clock.now += 100.0
    rate.delay()
    assert rate.rate is None  # quiet for long: the quota was a passing fault
