"""Validation bridge: the gate between raw feeds and every agent that trusts prices.

A bad bar skips its symbol for this cycle with the reason recorded; the other symbols go on. The
checks are the ones a quant would run on any candle: finite values, positive prices, a consistent
high/low envelope, strictly increasing timestamps per symbol, and freshness against the replay
clock.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from actors.base import Agent
from cycle.messages import Bar, MarketFrame, ValidatedFrame


def bar_problem(
    bar: Bar, last_timestamp: datetime | None, now: datetime | None, stale_after: timedelta
) -> str | None:
    """Why a bar must not be used, or ``None`` when it is sound."""
    for field in ("open", "high", "low", "close", "volume"):
        if not math.isfinite(getattr(bar, field)):
            return f"{field} is not a finite number"
    for field in ("open", "high", "low", "close"):
        if getattr(bar, field) <= 0:
            return f"{field} is not positive ({getattr(bar, field)})"
    if bar.volume < 0:
        return f"volume is negative ({bar.volume})"
    if bar.high < bar.low:
        return f"high {bar.high} < low {bar.low}"
    if bar.high < max(bar.open, bar.close) or bar.low > min(bar.open, bar.close):
        return "open/close outside the high-low range"
    if last_timestamp is not None:
        if bar.timestamp == last_timestamp:
            return f"duplicate timestamp {bar.timestamp.isoformat()}"
        if bar.timestamp < last_timestamp:
            return (
                f"timestamp {bar.timestamp.isoformat()} not after previous "
                f"{last_timestamp.isoformat()}"
            )
    if now is not None and now - bar.timestamp > stale_after:
        return (
            f"stale: bar at {bar.timestamp.isoformat()} is older than {stale_after} "
            f"at {now.isoformat()}"
        )
    return None


class ValidationAgent(Agent):
    """Checks every bar, keeps the last accepted timestamp per symbol, counts rejections."""

    role = "validation"

    def setup(self) -> None:
        data = self.config.data
        self.stale_after = timedelta(seconds=data.timeframe_seconds * data.stale_after_bars)
        self.last_timestamp: dict[str, datetime] = {}
        self.rejections: Counter[str] = Counter()

    def step(self, frame: MarketFrame) -> ValidatedFrame:
        accepted, rejected = {}, {}
        for symbol, bar in frame.bars.items():
            last = self.last_timestamp.get(symbol)
            problem = bar_problem(bar, last, frame.timestamp, self.stale_after)
            if problem is None:
                accepted[symbol] = bar
                self.last_timestamp[symbol] = bar.timestamp
            else:
                rejected[symbol] = problem
                self.rejections[problem.split(" ")[0]] += 1
                self.log.warning("rejected {} bar: {}", symbol, problem)
        for symbol, reason in frame.missing.items():
            rejected[symbol] = f"missing: {reason}"
        return ValidatedFrame(
            cycle=frame.cycle,
            timestamp=frame.timestamp,
            bars=accepted,
            books={s: b for s, b in frame.books.items() if s in accepted},
            tapes={s: t for s, t in frame.tapes.items() if s in accepted},
            signals={s: v for s, v in frame.signals.items() if s in accepted},
            rejected=rejected,
            degraded={s: d for s, d in frame.degraded.items() if s in accepted},
        )

    def extra_metrics(self) -> dict[str, float]:
        return {f"rejected_{k}": float(v) for k, v in self.rejections.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_timestamp": {s: t.isoformat() for s, t in self.last_timestamp.items()},
            "rejections": dict(self.rejections),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_timestamp = {
            s: datetime.fromisoformat(t) for s, t in state["last_timestamp"].items()
        }
        self.rejections = Counter(state["rejections"])
