"""Find *when* a broker fails or slows down, and report it only when the data really say so.

Every call is logged with its time, latency and outcome. The analyzer groups calls by hour of the
week (168 cells), tests each cell's failure rate and share of slow calls against the broker's
overall rate with a one-sided exact binomial test, and keeps only what survives a Holm-Bonferroni
correction: with hundreds of cells, some look bad by chance, and a router that avoids chance
patterns just loses liquidity. Cells that are significant explain their hour and weekday, so hours
and weekdays are then tested on the remaining calls only; a broker that is slow on Sunday nights is
reported as "Sunday 20-23h", not also as "every night" and "all Sunday".

A trend (slope of the daily failure rate) is tested with the Mann-Kendall test, which needs no
assumption about the shape of the noise.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

Kind = Literal["failure_rate", "latency"]
Scope = Literal["hour_of_week", "hour", "weekday"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CellStats(_Frozen):
    """Calls in one time cell (an hour of the day or a day of the week)."""

    weekday: int | None = Field(default=None, ge=0, le=6)
    hour: int | None = Field(default=None, ge=0, le=23)
    count: int = Field(ge=0)
    failure_rate: float = Field(ge=0.0, le=1.0)
    mean_latency_ms: float | None


class Pattern(_Frozen):
    """A significant excess of failures or slow calls in a time cell.

    ``observed`` and ``expected`` are rates (failures, or calls slower than the broker's
    ``slow_quantile`` latency); ``p_value`` is the raw one-sided binomial p-value, which passed the
    Holm correction for every cell tested.
    """

    kind: Kind
    scope: Scope
    weekday: int | None = Field(default=None, ge=0, le=6)
    hour: int | None = Field(default=None, ge=0, le=23)
    count: int = Field(ge=1)
    observed: float
    expected: float
    p_value: float

    def describe(self) -> str:
        where = " ".join(
            part
            for part in (
                WEEKDAYS[self.weekday] if self.weekday is not None else None,
                f"{self.hour:02d}:00-{self.hour:02d}:59" if self.hour is not None else None,
            )
            if part
        )
        what = "failures" if self.kind == "failure_rate" else "slow calls"
        return (
            f"{what} {where}: {self.observed:.0%} vs {self.expected:.0%} "
            f"over {self.count} calls (p={self.p_value:.1e})"
        )


class Trend(_Frozen):
    """Direction of the daily failure rate."""

    days: int = Field(ge=0)
    slope_per_day: float
    p_value: float
    significant: bool


class PatternReport(_Frozen):
    """Everything the analyzer knows about one broker."""

    broker: str
    count: int
    failures: int
    failure_rate: float
    error_counts: dict[str, int]
    slow_threshold_ms: float | None
    by_hour: tuple[CellStats, ...]
    by_weekday: tuple[CellStats, ...]
    trend: Trend
    patterns: tuple[Pattern, ...]


@dataclass(frozen=True)
class _Call:
    timestamp: datetime
    success: bool
    latency_ms: float | None
    error_type: str | None

    @property
    def weekday(self) -> int:
        return self.timestamp.weekday()

    @property
    def hour(self) -> int:
        return self.timestamp.hour


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact, summed in log space over the short tail."""
    if k <= 0 or p >= 1.0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)

    def term(j: int) -> float:
        return math.exp(
            math.lgamma(n + 1)
            - math.lgamma(j + 1)
            - math.lgamma(n - j + 1)
            + j * log_p
            + (n - j) * log_q
        )

    def tail(indices: Iterable[int]) -> float:
        total = 0.0
        for j in indices:
            value = term(j)
            total += value
            if value < total * 1e-16:
                break
        return total

    if k > n * p:
        return min(1.0, tail(range(k, n + 1)))
    return max(0.0, 1.0 - tail(range(k - 1, -1, -1)))


def holm_reject(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni: which hypotheses to reject with family-wise error at most ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected


def mann_kendall(values: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Kendall trend test (normal approximation, n >= 3)."""
    n = len(values)
    s = sum(
        (values[j] > values[i]) - (values[j] < values[i])
        for i in range(n - 1)
        for j in range(i + 1, n)
    )
    variance = n * (n - 1) * (2 * n + 5) / 18
    if variance == 0 or s == 0:
        return 1.0
    z = (s - math.copysign(1, s)) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def _parse_context(context: Mapping[str, Any]) -> tuple[datetime, float | None]:
    stamp = context.get("timestamp")
    if isinstance(stamp, str):
        stamp = datetime.fromisoformat(stamp)
    if not isinstance(stamp, datetime) or stamp.tzinfo is None:
        raise ValueError("context['timestamp']: a timezone-aware datetime is required")
    latency = context.get("latency_ms")
    return stamp, None if latency is None else float(latency)


class PatternAnalyzer:
    """Collects call outcomes per broker (bounded) and finds significant time patterns.

    Args:
        alpha: Family-wise error rate of the reported patterns (split over the two stages).
        slow_quantile: A call is "slow" above this quantile of the broker's latencies.
        min_cell_count: Cells with fewer calls are not tested (too little evidence either way).
        min_trend_days: Days with calls needed before a trend is judged.
        max_records: Calls kept per broker; the oldest are forgotten.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.01,
        slow_quantile: float = 0.9,
        min_cell_count: int = 20,
        min_trend_days: int = 8,
        max_records: int = 200_000,
    ) -> None:
        self.alpha = alpha
        self.slow_quantile = slow_quantile
        self.min_cell_count = min_cell_count
        self.min_trend_days = min_trend_days
        self._calls: dict[str, deque[_Call]] = {}
        self._max_records = max_records

    def log_success(self, broker: str, context: Mapping[str, Any]) -> None:
        """Log a successful call; ``context`` holds ``timestamp`` (aware) and ``latency_ms``."""
        stamp, latency = _parse_context(context)
        self._add(broker, _Call(stamp, True, latency, None))

    def log_failure(self, broker: str, error_type: str, context: Mapping[str, Any]) -> None:
        """Log a failed call with its error type; ``context`` as for :meth:`log_success`."""
        stamp, latency = _parse_context(context)
        self._add(broker, _Call(stamp, False, latency, error_type))

    def brokers(self) -> list[str]:
        return list(self._calls)

    def analyze_patterns(self, broker: str) -> PatternReport:
        """Frequencies, tables by hour and weekday, trend, and the significant patterns."""
        calls = list(self._calls.get(broker, ()))
        failures = sum(not call.success for call in calls)
        latencies = [call.latency_ms for call in calls if call.latency_ms is not None]
        threshold = float(np.quantile(latencies, self.slow_quantile)) if latencies else None
        patterns = self._patterns(calls, threshold)
        for pattern in patterns:
            logger.bind(broker=broker).info("pattern: {}", pattern.describe())
        return PatternReport(
            broker=broker,
            count=len(calls),
            failures=failures,
            failure_rate=failures / len(calls) if calls else 0.0,
            error_counts=dict(
                Counter(call.error_type for call in calls if call.error_type is not None)
            ),
            slow_threshold_ms=threshold,
            by_hour=tuple(
                _stats([c for c in calls if c.hour == hour], None, hour) for hour in range(24)
            ),
            by_weekday=tuple(
                _stats([c for c in calls if c.weekday == day], day, None) for day in range(7)
            ),
            trend=self._trend(calls),
            patterns=tuple(patterns),
        )

    def _add(self, broker: str, call: _Call) -> None:
        self._calls.setdefault(broker, deque(maxlen=self._max_records)).append(call)

    def _patterns(self, calls: list[_Call], threshold: float | None) -> list[Pattern]:
        outcomes: dict[Kind, Callable[[_Call], bool | None]] = {
            "failure_rate": lambda call: not call.success,
        }
        if threshold is not None:
            outcomes["latency"] = lambda call: (
                None if call.latency_ms is None else call.latency_ms > threshold
            )
        fine: list[Pattern] = []
        for kind, outcome in outcomes.items():
            fine += self._test_family(
                kind,
                calls,
                outcome,
                [("hour_of_week", day, hour) for day in range(7) for hour in range(24)],
            )
        coarse: list[Pattern] = []
        for kind, outcome in outcomes.items():
            explained = {(p.weekday, p.hour) for p in fine if p.kind == kind}
            rest = [call for call in calls if (call.weekday, call.hour) not in explained]
            coarse += self._test_family(
                kind,
                rest,
                outcome,
                [("hour", None, hour) for hour in range(24)]
                + [("weekday", day, None) for day in range(7)],
            )
        return fine + coarse

    def _test_family(
        self,
        kind: Kind,
        calls: list[_Call],
        outcome: Callable[[_Call], bool | None],
        cells: list[tuple[Scope, int | None, int | None]],
    ) -> list[Pattern]:
        """Test every cell of one family against the family's overall rate, Holm-corrected."""
        marks = [(call, outcome(call)) for call in calls]
        marks = [(call, hit) for call, hit in marks if hit is not None]
        if not marks:
            return []
        expected = sum(hit for _, hit in marks) / len(marks)
        tested: list[tuple[Scope, int | None, int | None, int, int, float]] = []
        counts: Counter[tuple[int | None, int | None]] = Counter()
        hits: Counter[tuple[int | None, int | None]] = Counter()
        for call, hit in marks:
            for key in ((call.weekday, call.hour), (None, call.hour), (call.weekday, None)):
                counts[key] += 1
                hits[key] += hit
        for scope, day, hour in cells:
            n, k = counts[(day, hour)], hits[(day, hour)]
            if n >= self.min_cell_count:
                tested.append((scope, day, hour, n, k, binomial_sf(k, n, expected)))
        rejected = holm_reject([t[5] for t in tested], self.alpha / 2)
        return [
            Pattern(
                kind=kind,
                scope=scope,
                weekday=day,
                hour=hour,
                count=n,
                observed=k / n,
                expected=expected,
                p_value=p,
            )
            for (scope, day, hour, n, k, p), reject in zip(tested, rejected, strict=True)
            if reject
        ]

    def _trend(self, calls: list[_Call]) -> Trend:
        per_day: dict[date, list[bool]] = {}
        for call in calls:
            per_day.setdefault(call.timestamp.date(), []).append(not call.success)
        days = sorted(per_day)
        if len(days) < max(self.min_trend_days, 3):
            return Trend(days=len(days), slope_per_day=0.0, p_value=1.0, significant=False)
        x = np.array([(day - days[0]).days for day in days], dtype=float)
        rates = [sum(per_day[day]) / len(per_day[day]) for day in days]
        slope = float(np.polyfit(x, np.array(rates), 1)[0])
        p_value = mann_kendall(rates)
        return Trend(
            days=len(days), slope_per_day=slope, p_value=p_value, significant=p_value < self.alpha
        )


def _stats(cell: list[_Call], weekday: int | None, hour: int | None) -> CellStats:
    latencies = [call.latency_ms for call in cell if call.latency_ms is not None]
    return CellStats(
        weekday=weekday,
        hour=hour,
        count=len(cell),
        failure_rate=sum(not call.success for call in cell) / len(cell) if cell else 0.0,
        mean_latency_ms=float(np.mean(latencies)) if latencies else None,
    )
