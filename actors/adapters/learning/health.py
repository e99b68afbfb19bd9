"""Healthy, degraded or down: the one judgement the router needs about each broker.

The state is derived from what actually happened (pings and real calls) inside a sliding window, so
an outage is seen within ``down_after_failures`` failed calls and a recovery within one successful
call (back to degraded) plus at most ``window_s`` (back to healthy, once old errors age out).
The clock is injected so these bounds are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from actors.adapters.broker import Broker
from cycle.errors import FluxtradeError


class HealthState(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


class HealthParams(BaseModel):
    """Thresholds of the health judgement.

    Attributes:
        window_s: How far back errors and latencies count.
        down_after_failures: Consecutive failed calls that make a broker DOWN.
        degraded_error_rate: Error rate in the window that makes a broker DEGRADED.
        min_samples: Calls needed in the window before the error rate is judged (one early
            failure is not a 100% error rate).
        degraded_latency_ms: Median latency in the window above which a broker is DEGRADED.
        max_samples: Memory bound per broker.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_s: PositiveFloat = 60.0
    down_after_failures: PositiveInt = 3
    degraded_error_rate: float = Field(default=0.2, gt=0.0, le=1.0)
    min_samples: PositiveInt = 5
    degraded_latency_ms: PositiveFloat = 2000.0
    max_samples: PositiveInt = 10_000


@dataclass
class _BrokerHealth:
    """One broker's window, with its failure count and sorted success latencies kept up to date
    as samples come and go, so a judgement costs a lookup rather than a pass over the window."""

    samples: deque[tuple[float, bool, float]] = field(default_factory=deque)
    consecutive_failures: int = 0
    flags: dict[str, str] = field(default_factory=dict)
    state: HealthState = HealthState.HEALTHY
    failures: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, sample: tuple[float, bool, float]) -> None:
        self.samples.append(sample)
        if sample[1]:
            bisect.insort(self.latencies, sample[2])
        else:
            self.failures += 1

    def drop_oldest(self) -> None:
        _, ok, latency = self.samples.popleft()
        if ok:
            del self.latencies[bisect.bisect_left(self.latencies, latency)]
        else:
            self.failures -= 1


class HealthChecker:
    """Tracks every broker's health from recorded outcomes and pings."""

    def __init__(
        self, params: HealthParams | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.params = params or HealthParams()
        self._clock = clock
        self._brokers: dict[str, _BrokerHealth] = {}

    def record(self, broker: str, *, success: bool, latency_ms: float) -> HealthState:
        """Count one call's outcome; returns the broker's state after it."""
        health = self._brokers.setdefault(broker, _BrokerHealth())
        health.add((self._clock(), success, latency_ms))
        if len(health.samples) > self.params.max_samples:
            health.drop_oldest()
        health.consecutive_failures = 0 if success else health.consecutive_failures + 1
        return self.status(broker)

    async def ping(self, name: str, broker: Broker) -> HealthState:
        """Ping one broker and record the outcome; any fluxtrade error counts as a failure."""
        started = time.perf_counter()
        try:
            latency_ms = await broker.ping()
        except FluxtradeError as error:
            logger.bind(broker=name).info("ping failed: {}", type(error).__name__)
            elapsed_ms = (time.perf_counter() - started) * 1000
            return self.record(name, success=False, latency_ms=elapsed_ms)
        return self.record(name, success=True, latency_ms=latency_ms)

    async def ping_all(self, brokers: Mapping[str, Broker]) -> dict[str, HealthState]:
        """Ping every broker concurrently, so one slow venue does not delay the others' verdict."""
        states = await asyncio.gather(*(self.ping(n, b) for n, b in brokers.items()))
        return dict(zip(brokers, states, strict=True))

    def flag(self, broker: str, reason: str) -> None:
        """Hold a broker at least DEGRADED until :meth:`clear` (e.g. its API changed)."""
        self._brokers.setdefault(broker, _BrokerHealth()).flags[reason] = reason
        self.status(broker)

    def clear(self, broker: str) -> None:
        """Drop every flag of a broker (a human has looked)."""
        self._brokers.setdefault(broker, _BrokerHealth()).flags.clear()
        self.status(broker)

    def flags(self, broker: str) -> list[str]:
        return list(self._brokers.get(broker, _BrokerHealth()).flags)

    def error_rate(self, broker: str) -> float:
        """Share of failed calls in the window; 0 for a broker with no calls."""
        health = self._window(broker)
        if health is None or not health.samples:
            return 0.0
        return health.failures / len(health.samples)

    def status(self, broker: str) -> HealthState:
        """The broker's state now; a broker never seen is HEALTHY (innocent until it fails)."""
        health = self._window(broker)
        if health is None:
            return HealthState.HEALTHY
        latencies = health.latencies
        slow = bool(latencies) and latencies[len(latencies) // 2] > self.params.degraded_latency_ms
        erring = (
            len(health.samples) >= self.params.min_samples
            and self.error_rate(broker) >= self.params.degraded_error_rate
        )
        if health.consecutive_failures >= self.params.down_after_failures:
            state = HealthState.DOWN
        elif erring or slow or health.flags or health.consecutive_failures:
            state = HealthState.DEGRADED
        else:
            state = HealthState.HEALTHY
        if state is not health.state:
            logger.bind(broker=broker).warning("health {} -> {}", health.state.value, state.value)
            health.state = state
        return state

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state; sample times are kept as ages, since clocks differ between processes."""
        now = self._clock()
        return {
            broker: {
                "samples": [[now - at, ok, latency] for at, ok, latency in health.samples],
                "consecutive_failures": health.consecutive_failures,
                "flags": list(health.flags),
                "state": health.state.value,
            }
            for broker, health in self._brokers.items()
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`snapshot`, on this process's clock."""
        now = self._clock()
        self._brokers = {}
        for broker, saved in state.items():
            health = _BrokerHealth(
                consecutive_failures=int(saved["consecutive_failures"]),
                flags={flag: flag for flag in saved["flags"]},
                state=HealthState(saved["state"]),
            )
            for age, ok, latency in saved["samples"]:
                health.add((now - age, bool(ok), float(latency)))
            self._brokers[broker] = health

    def _window(self, broker: str) -> _BrokerHealth | None:
        """The broker's record with samples older than the window dropped (None if unseen)."""
        health = self._brokers.get(broker)
        if health is None:
            return None
        horizon = self._clock() - self.params.window_s
        while health.samples and health.samples[0][0] < horizon:
            health.drop_oldest()
        return health
