"""Performance trends per agent over rolling windows, a forecast of each, and degradation alerts.

Every metric is a statistic of one per-cycle series built from the trainer's observations:

========================  ===============================  ==================================
agent / metric            per-cycle series                 statistic over the last ``W`` cycles
========================  ===============================  ==================================
ensemble rolling_sharpe   blended PnL (live weights)       annualised Sharpe
ensemble hit_rate         blended PnL > 0 (non-zero only)  share
strategy:<n> ...          that strategy's paper PnL        Sharpe, hit rate
desk rolling_sharpe       equity return                    annualised Sharpe
adapters slippage_bps     mean slippage of the fills       mean (lower is better)
adapters fill_success     fills / (fills + rejections)     mean
forecaster accuracy       forecast direction was right     mean
conditions trend_hit      a trend label's next bar agreed  mean
========================  ===============================  ==================================

The *forecast* is where the metric is heading one window ahead: the least-squares slope of the
rolling metric over its last few windows, extrapolated. An *alert* fires when the mean of the
series over the last window sits more than ``alert_drop_se`` standard errors below (above, for
lower-is-better metrics) its mean over the four windows before, and the forecast points further
the wrong way; one alert per metric per window at most. Testing the per-cycle series rather than
the Sharpe ratio itself keeps the test honest: a difference of means has a known standard error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cycle.messages import CycleOutcome, Frozen, PerformanceAlert

BASELINE_WINDOWS = 4
TREND_POINTS = 8


class MetricTrend(Frozen):
    """One metric of one agent now, before, and where it is heading."""

    agent: str
    metric: str
    current: float
    baseline: float | None
    slope: float
    forecast: float
    z: float | None
    samples: int
    higher_is_better: bool
    alert: bool


@dataclass(frozen=True)
class MetricSpec:
    agent: str
    metric: str
    series: str
    statistic: str
    higher_is_better: bool = True


def raw_series(outcomes: Sequence[CycleOutcome], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-cycle series (NaN where a cycle has nothing to say) keyed by name."""
    n = len(outcomes)
    out = {key: np.full(n, np.nan) for key in (
        "blend_pnl", "equity_return", "slippage_bps", "fill_success", "forecast_hit", "trend_hit",
    )}
    for name in names:
        out[f"pnl:{name}"] = np.array([o.strategy_pnl.get(name, 0.0) for o in outcomes])
    for t, outcome in enumerate(outcomes):
        previous = outcomes[t - 1] if t else None
        weights = previous.weights if previous and previous.weights else outcome.weights
        out["blend_pnl"][t] = sum(weights.get(k, 0.0) * v for k, v in outcome.strategy_pnl.items())
        if previous and previous.equity and outcome.equity is not None:
            out["equity_return"][t] = outcome.equity / previous.equity - 1.0
        slippage = [c.slippage_bps for c in outcome.broker_calls if c.slippage_bps is not None]
        if slippage:
            out["slippage_bps"][t] = float(np.mean(slippage))
        if outcome.broker_calls:
            out["fill_success"][t] = float(np.mean([c.success for c in outcome.broker_calls]))
        if previous is not None:
            out["forecast_hit"][t] = _hits(previous, outcome, _forecast_call)
            out["trend_hit"][t] = _hits(previous, outcome, _trend_call)
    return out


def _forecast_call(previous: CycleOutcome, symbol: str) -> int:
    p = previous.forecasts.get(symbol)
    return 0 if p is None else (1 if p > 0.5 else -1)


def _trend_call(previous: CycleOutcome, symbol: str) -> int:
    return {"trending_up": 1, "trending_down": -1}.get(previous.regimes.get(symbol, ""), 0)


def _hits(
    previous: CycleOutcome, outcome: CycleOutcome, call: Callable[[CycleOutcome, str], int]
) -> float:
    """Share of symbols whose directional call at t-1 matched the move of bar t (NaN if none)."""
    hits = []
    for symbol, bar in outcome.ohlcv.items():
        before = previous.ohlcv.get(symbol)
        direction = call(previous, symbol)
        if before is None or direction == 0 or bar[3] == before[3]:
            continue
        hits.append(float((bar[3] > before[3]) == (direction > 0)))
    return float(np.mean(hits)) if hits else math.nan


def _contributions(values: np.ndarray, statistic: str) -> np.ndarray:
    """The per-cycle values whose mean the statistic is a function of (NaNs dropped)."""
    values = values[~np.isnan(values)]
    if statistic == "hit_rate":
        values = values[values != 0]
        return (values > 0).astype(float)
    return values


def _statistic(values: np.ndarray, statistic: str, bars_per_year: float) -> float:
    values = _contributions(values, statistic)
    if len(values) == 0:
        return math.nan
    if statistic == "sharpe":
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        return 0.0 if std == 0 else float(values.mean() / std * math.sqrt(bars_per_year))
    return float(values.mean())


def _z(current: np.ndarray, baseline: np.ndarray) -> float | None:
    if len(current) < 2 or len(baseline) < 2:
        return None
    se = math.sqrt(current.var(ddof=1) / len(current) + baseline.var(ddof=1) / len(baseline))
    if se == 0:
        return None
    return float((current.mean() - baseline.mean()) / se)


class Analytics:
    """Rolling metrics, trends and alerts over the trainer's observations."""

    def __init__(
        self, names: Sequence[str], window: int, alert_drop_se: float, bars_per_year: float
    ) -> None:
        self.names = list(names)
        self.window = window
        self.alert_drop_se = alert_drop_se
        self.bars_per_year = bars_per_year
        self.last_alert: dict[tuple[str, str], int] = {}
        self.specs = [
            MetricSpec("ensemble", "rolling_sharpe", "blend_pnl", "sharpe"),
            MetricSpec("ensemble", "hit_rate", "blend_pnl", "hit_rate"),
            MetricSpec("desk", "rolling_sharpe", "equity_return", "sharpe"),
            MetricSpec("adapters", "slippage_bps", "slippage_bps", "mean", higher_is_better=False),
            MetricSpec("adapters", "fill_success", "fill_success", "mean"),
            MetricSpec("forecaster", "accuracy", "forecast_hit", "mean"),
            MetricSpec("conditions", "trend_hit", "trend_hit", "mean"),
        ] + [
            MetricSpec(f"strategy:{n}", stat, f"pnl:{n}", kind)
            for n in self.names
            for stat, kind in (("rolling_sharpe", "sharpe"), ("hit_rate", "hit_rate"))
        ]

    def trends(self, outcomes: Sequence[CycleOutcome]) -> list[MetricTrend]:
        """Every metric with data over the last window, its baseline, slope and forecast."""
        span = self.window * (BASELINE_WINDOWS + 1) + TREND_POINTS * max(self.window // 4, 1)
        series = raw_series(outcomes[-span:], self.names)
        out = []
        for spec in self.specs:
            trend = self._trend(spec, series[spec.series])
            if trend is not None:
                out.append(trend)
        return out

    def _trend(self, spec: MetricSpec, values: np.ndarray) -> MetricTrend | None:
        w = self.window
        current_values = values[-w:]
        current = _statistic(current_values, spec.statistic, self.bars_per_year)
        if math.isnan(current):
            return None
        base_values = values[-w * (BASELINE_WINDOWS + 1):-w] if len(values) > w else values[:0]
        baseline = _statistic(base_values, spec.statistic, self.bars_per_year)
        z = _z(_contributions(current_values, spec.statistic),
               _contributions(base_values, spec.statistic))
        step = max(w // 4, 1)
        ends = [len(values) - k * step for k in range(TREND_POINTS) if len(values) - k * step >= w]
        points = [
            (e, _statistic(values[e - w:e], spec.statistic, self.bars_per_year)) for e in ends
        ]
        points = [(e, v) for e, v in points if not math.isnan(v)]
        slope = float(np.polyfit(*zip(*points, strict=True), 1)[0]) if len(points) >= 3 else 0.0
        forecast = current + slope * w
        sign = 1.0 if spec.higher_is_better else -1.0
        alert = (
            z is not None
            and sign * z < -self.alert_drop_se
            and sign * (forecast - current) < 0
        )
        return MetricTrend(
            agent=spec.agent, metric=spec.metric, current=current,
            baseline=None if math.isnan(baseline) else baseline, slope=slope, forecast=forecast,
            z=z, samples=int(len(_contributions(current_values, spec.statistic))),
            higher_is_better=spec.higher_is_better, alert=alert,
        )

    def alert_state(self) -> dict[str, int]:
        """When each metric last alerted, JSON-able: a restarted trainer keeps the cooldowns."""
        return {f"{agent}|{metric}": cycle for (agent, metric), cycle in self.last_alert.items()}

    def restore_alerts(self, state: dict[str, int] | None) -> None:
        """Take :meth:`alert_state` back (``None``: nothing saved yet)."""
        self.last_alert = {
            tuple(key.split("|", 1)): int(cycle)  # type: ignore[misc]
            for key, cycle in (state or {}).items()
        }

    def alerts(self, outcomes: Sequence[CycleOutcome]) -> list[PerformanceAlert]:
        """New alerts at the latest cycle (each metric at most once per window)."""
        if len(outcomes) < 2 * self.window:
            return []
        cycle = outcomes[-1].cycle
        fired = []
        for trend in self.trends(outcomes):
            key = (trend.agent, trend.metric)
            if not trend.alert or cycle - self.last_alert.get(key, -self.window) < self.window:
                continue
            self.last_alert[key] = cycle
            fired.append(PerformanceAlert(
                agent=trend.agent, metric=trend.metric, cycle=cycle, current=trend.current,
                baseline=trend.baseline if trend.baseline is not None else math.nan,
                z=trend.z if trend.z is not None else math.nan, forecast=trend.forecast,
                reason=(
                    f"{trend.agent} {trend.metric} {trend.current:.4g} vs baseline "
                    f"{trend.baseline:.4g} (z {trend.z:.2f}), heading to {trend.forecast:.4g}"
                ),
            ))
        return fired

    def history(
        self, outcomes: Sequence[CycleOutcome], agent: str, metric: str
    ) -> list[tuple[int, float]]:
        """The rolling metric at every quarter window of the run, for the dashboard."""
        spec = next(s for s in self.specs if (s.agent, s.metric) == (agent, metric))
        values = raw_series(outcomes, self.names)[spec.series]
        step = max(self.window // 4, 1)
        points = []
        for end in range(self.window, len(values) + 1, step):
            value = _statistic(values[end - self.window:end], spec.statistic, self.bars_per_year)
            if not math.isnan(value):
                points.append((outcomes[end - 1].cycle, value))
        return points
