"""Rate control for the Titan client: how fast to send, how many at once, when to stop.

* Sending rate: :class:`RateLearner`, a client-side token bucket whose rate is the success rate
  measured while being throttled. Bedrock's quota is a bucket refilled at the quota rate and one
  second deep, so what gets through while throttled *is* the sustainable rate. botocore's
  adaptive mode (CUBIC) was measured first and not kept: its rate is capped at twice a measured
  send rate that starts at zero, so a throttle in the first half second drops it to its
  0.5 request/s floor (200 texts with 30% of requests throttled took 159 s instead of ~1 s).
* Concurrency: :class:`AdaptiveWindow` bounds the requests in flight (AIMD, halved once per
  burst of throttles), so a throttled burst does not keep every worker waiting on the bucket.
* Deadline: :class:`Deadline`, the overall time limit of one call.

What a failure means (throttle, exhausted quota, transient...) is decided in one place for every
Bedrock caller: ``langchain_tidb_bedrock._bedrock_faults``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

__all__ = ["AdaptiveWindow", "Deadline", "RateLearner"]


class RateLearner:
    """A token bucket whose rate is learned from throttling; unlimited until the first 429.

    On a throttle (at most once per ``window`` seconds) the rate becomes the recent successes
    per second, a little below (``headroom``): Bedrock's quota bucket refills at the quota rate,
    so that is the sustainable rate, and a one-request bucket (60 requests/min) leaves no slack
    for sending at exactly its rate. Successes are counted over the last ``window``, or over up
    to ``history`` seconds when that window saw fewer than ten. A throttle with no success seen
    yet halves the rate instead (from 1 request/s).

    While no throttle comes the rate is probed upwards: under the last measured rate (or with
    none measured yet) it doubles every ``window``; above it, it grows by ``growth`` once per
    ``probe_requests`` sends (and ``window`` at least), because at a low quota the bucket is one
    request deep and every probe above the quota costs a throttled request. A probe answered by
    a throttle is undone: the rate before it had run a whole interval without one. After
    ``history`` seconds without a throttle, and three slow probe intervals at least, the rate is
    unlimited again. The bucket holds one second
    of the rate, like the quota it follows. Thread-safe.
    """

    def __init__(
        self,
        window: float = 2.0,
        headroom: float = 0.97,
        growth: float = 1.1,
        history: float = 10.0,
        min_rate: float = 0.05,
        probe_requests: int = 30,
        clock: Any = time.monotonic,
    ) -> None:
        self.window, self.headroom, self.growth = window, headroom, growth
        self.history, self.min_rate = history, min_rate
        self.probe_requests = probe_requests
        self.rate: float | None = None
        self._known = 0.0  # the rate measured at the last cut
        self._before_probe: float | None = None  # the rate a probe left, while it is on trial
        self._clock = clock
        self._lock = threading.Lock()
        self._successes: deque[float] = deque()
        self._started: float | None = None
        self._cut = self._grown = self._throttled = 0.0  # when each last happened
        self._tokens = 0.0
        self._filled = 0.0

    @property
    def settled_rate(self) -> float | None:
        """The rate that last ran without a throttle: a probe still on trial is not counted."""
        with self._lock:
            return self._before_probe if self._probe_on_trial() else self.rate

    def _probe_on_trial(self) -> bool:
        # A probe raised the rate since the last cut: the rate before it is the one that held.
        return self._before_probe is not None and self._grown > self._cut

    def delay(self) -> float:
        """Take a send token: 0 if taken, else the seconds until one may be (ask again then).

        No place is reserved, so a rate cut applies at once to every waiting sender.
        """
        with self._lock:
            now = self._clock()
            if self._started is None:
                self._started = now
            if self.rate is None:
                return 0.0
            # Under the last measured rate (or with none measured) probing is cheap: every
            # window. Above it, once per `probe_requests` sends at least.
            fast = self.rate * 2 <= self._known or not self._known
            slow = max(self.window, self.probe_requests / self.rate)
            quiet = now - self._throttled
            if quiet >= max(self.history, 3 * slow):
                self.rate = None  # long quiet: the 429s were a passing fault, not a quota
                return 0.0
            interval = self.window if fast else slow
            if quiet >= interval and now - self._grown >= interval:
                self._before_probe = self.rate
                self.rate *= 2 if fast else self.growth
                self._grown = now
            capacity = max(1.0, self.rate)
            self._tokens = min(capacity, self._tokens + (now - self._filled) * self.rate)
            self._filled = now
            if self._tokens >= 1.0 - 1e-9:  # float refill arithmetic
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def success(self) -> None:
        """Record a request the service accepted."""
        with self._lock:
            now = self._clock()
            self._successes.append(now)
            self._trim(now)

    def throttled(self) -> None:
        """Record a 429: the rate becomes what got through lately."""
        with self._lock:
            now = self._clock()
            self._throttled = now
            if self.rate is not None and now - self._cut < self.window:
                return  # one cut per window: a burst of 429s is one signal
            self._trim(now)
            started = self._started if self._started is not None else now
            # Over a short run divide by one second at least: the quota's bucket is 1 s deep.
            recent = sum(1 for t in self._successes if t >= now - self.window)
            span = self.window if recent >= 10 else self.history
            count = recent if recent >= 10 else len(self._successes)
            measured = count / max(1.0, min(span, now - started))
            if self._probe_on_trial():
                # The last probe met the quota: go back to the rate that ran quietly. (The
                # measured rate here counts the slots the probe's throttles wasted.)
                self.rate = self._before_probe
                self._known = measured or self._known
            elif measured:
                self._known = measured
                self.rate = max(self.min_rate, measured * self.headroom)
            else:
                self.rate = max(self.min_rate, (self.rate or 2.0) / 2)
            self._before_probe = None
            self._cut = now
            self._tokens = 0.0
            self._filled = now

    def _trim(self, now: float) -> None:
        while self._successes and self._successes[0] < now - self.history:
            self._successes.popleft()


class AdaptiveWindow:
    """AIMD concurrency window: halves on throttling, grows by ~1 per window of successes.

    Requests in flight together are throttled together; like TCP's one cut per round trip, only a
    request started after the last cut may cut again, so one burst of 429s halves the window once.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self._active = 0
        self._epoch = 0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait for a slot; returns the epoch to hand back to :meth:`release`."""
        with self._cond:
            while self._active >= int(self.limit):
                self._cond.wait()
            self._active += 1
            return self._epoch

    def release(self, outcome: str, epoch: int) -> None:
        """Free the slot; ``outcome`` is ``"ok"``, ``"throttle"`` or anything else."""
        with self._cond:
            self._active -= 1
            if outcome == "throttle":
                if epoch == self._epoch:
                    self.limit = max(1.0, self.limit / 2)
                    self._epoch += 1
            elif outcome == "ok":
                self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
            self._cond.notify_all()


class Deadline:
    """An overall time limit (``None`` seconds: none)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a deadline."""
        return None if self._end is None else max(0.0, self._end - time.monotonic())

    def passed(self) -> bool:
        """Whether the deadline has passed."""
        return self._end is not None and time.monotonic() >= self._end

    def error(self) -> TimeoutError:
        """The error a text gets when the deadline stops it."""
        return TimeoutError(f"the {self.seconds:g} s timeout passed before this text was embedded")
