"""Turn what the desk has measured about each broker into advice the router can act on.

Three recommendations per broker: a priority score (reliability first, then speed, then cost), the
time windows to avoid (from significant patterns only, so the desk does not flee from noise), and
the retry schedule that suits how the broker fails and recovers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from loguru import logger
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PositiveFloat

from actors.adapters.learning.patterns import WEEKDAYS, Pattern, PatternReport
from actors.adapters.learning.performance import BrokerMetrics
from actors.adapters.learning.retry import RetryParams, adapt_retry_params
from cycle.messages import utc_now

UNKNOWN_SCORE = 0.5


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScoringWeights(_Frozen):
    """How the priority score weighs reliability, latency and fees (weights sum to 1).

    ``latency_ref_ms`` and ``fee_ref`` are where the latency and fee parts fall to one half.
    ``avoid_factor`` multiplies the score inside a window to avoid.
    """

    success: float = Field(default=0.6, ge=0.0, le=1.0)
    latency: float = Field(default=0.25, ge=0.0, le=1.0)
    fee: float = Field(default=0.15, ge=0.0, le=1.0)
    latency_ref_ms: PositiveFloat = 500.0
    fee_ref: PositiveFloat = 0.001
    avoid_factor: float = Field(default=0.1, ge=0.0, le=1.0)


class AvoidWindow(_Frozen):
    """A weekly time window (UTC) in which a broker is significantly worse.

    ``weekday`` ``None`` means every day; hours are ``[start_hour, end_hour)``.
    """

    weekday: int | None = Field(default=None, ge=0, le=6)
    start_hour: int = Field(ge=0, le=23)
    end_hour: int = Field(ge=1, le=24)
    reason: str

    def contains(self, moment: datetime) -> bool:
        """Whether an aware ``moment`` falls in the window."""
        return (self.weekday is None or moment.weekday() == self.weekday) and (
            self.start_hour <= moment.hour < self.end_hour
        )

    def describe(self) -> str:
        day = "daily" if self.weekday is None else WEEKDAYS[self.weekday]
        return f"{day} {self.start_hour:02d}:00-{self.end_hour:02d}:00 ({self.reason})"


class Recommendation(_Frozen):
    """The advice for one broker."""

    broker: str
    score: float = Field(ge=0.0, le=1.0)
    avoid: tuple[AvoidWindow, ...]
    retry: RetryParams
    updated_at: AwareDatetime


def priority_score(metrics: BrokerMetrics, weights: ScoringWeights) -> float:
    """Score in [0, 1]: weighted success rate, latency (p95) and fee; unknown brokers get 0.5."""
    if metrics.count == 0:
        return UNKNOWN_SCORE
    latency_part = weights.latency_ref_ms / (weights.latency_ref_ms + metrics.p95_latency_ms)
    fee_part = weights.fee_ref / (weights.fee_ref + metrics.mean_fee)
    total = weights.success + weights.latency + weights.fee
    return (
        weights.success * metrics.success_rate
        + weights.latency * latency_part
        + weights.fee * fee_part
    ) / total


def avoid_windows(patterns: Iterable[Pattern]) -> tuple[AvoidWindow, ...]:
    """Merge significant patterns into windows: adjacent hours of one day become one window."""
    hours: dict[tuple[int | None, str], set[int]] = {}
    windows: list[AvoidWindow] = []
    for pattern in patterns:
        reason = "failures" if pattern.kind == "failure_rate" else "slow"
        if pattern.hour is None:
            windows.append(
                AvoidWindow(weekday=pattern.weekday, start_hour=0, end_hour=24, reason=reason)
            )
        else:
            hours.setdefault((pattern.weekday, reason), set()).add(pattern.hour)
    for (weekday, reason), marked in hours.items():
        start: int | None = None
        for hour in range(25):
            if hour in marked and start is None:
                start = hour
            elif hour not in marked and start is not None:
                windows.append(
                    AvoidWindow(weekday=weekday, start_hour=start, end_hour=hour, reason=reason)
                )
                start = None
    return tuple(windows)


class BrokerIntelligence:
    """Keeps the latest recommendation per broker and ranks brokers by it."""

    def __init__(
        self,
        weights: ScoringWeights | None = None,
        default_retry: RetryParams | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.weights = weights or ScoringWeights()
        self._default_retry = default_retry or RetryParams()
        self._clock = clock
        self._recommendations: dict[str, Recommendation] = {}

    def update_recommendations(
        self,
        broker: str,
        metrics: BrokerMetrics,
        patterns: PatternReport | None = None,
        recovery_s: float | None = None,
        trained_avoid: tuple[AvoidWindow, ...] = (),
    ) -> Recommendation:
        """Recompute a broker's score, windows to avoid and retry schedule.

        Args:
            broker: Broker name.
            metrics: Its recent performance.
            patterns: Its pattern report, if one was analysed.
            recovery_s: Its typical outage length, for the retry patience.
            trained_avoid: Windows a deployed training version says to avoid; kept beside the
                pattern report's (windows come only from these two).
        """
        previous = self._recommendations.get(broker)
        current_retry = previous.retry if previous else self._default_retry
        retry = (
            adapt_retry_params(current_retry, metrics.success_rate, recovery_s)
            if metrics.count
            else current_retry
        )
        recommendation = Recommendation(
            broker=broker,
            score=priority_score(metrics, self.weights),
            avoid=tuple(dict.fromkeys(
                (avoid_windows(patterns.patterns) if patterns else ()) + trained_avoid
            )),
            retry=retry,
            updated_at=self._clock(),
        )
        self._recommendations[broker] = recommendation
        logger.bind(broker=broker).debug(
            "score {:.3f}; avoid {}",
            recommendation.score,
            [window.describe() for window in recommendation.avoid] or "nothing",
        )
        return recommendation

    def recommendation(self, broker: str) -> Recommendation | None:
        return self._recommendations.get(broker)

    def snapshot(self) -> dict[str, Any]:
        """Every recommendation, JSON-able (also the format of a training run's output)."""
        return {b: r.model_dump(mode="json") for b, r in self._recommendations.items()}

    def restore(self, state: dict[str, Any]) -> None:
        """Take recommendations from :meth:`snapshot` (a restart, or what training learnt)."""
        self._recommendations.update(
            {b: Recommendation.model_validate(r) for b, r in state.items()}
        )

    def score(self, broker: str, at: datetime | None = None) -> float:
        """The broker's score at a moment; lowered inside a window to avoid."""
        recommendation = self._recommendations.get(broker)
        if recommendation is None:
            return UNKNOWN_SCORE
        moment = at or self._clock()
        inside = any(window.contains(moment) for window in recommendation.avoid)
        return recommendation.score * (self.weights.avoid_factor if inside else 1.0)

    def ranked(self, brokers: Iterable[str], at: datetime | None = None) -> list[str]:
        """Brokers best first at a moment (ties keep the given order)."""
        return sorted(brokers, key=lambda name: -self.score(name, at))
