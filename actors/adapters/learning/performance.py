"""Rolling per-broker performance: how often calls succeed, how fast, and what they cost.

Only the last ``window`` responses of each broker are kept, so memory stays bounded however long the
desk runs, and the numbers describe the broker as it is now rather than as it was last month.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat


class BrokerMetrics(BaseModel):
    """A broker's recent record; latencies in milliseconds, fees in quote currency per response."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker: str
    count: int = Field(ge=0)
    success_rate: float = Field(ge=0.0, le=1.0)
    p50_latency_ms: NonNegativeFloat
    p95_latency_ms: NonNegativeFloat
    mean_fee: NonNegativeFloat


class PerformanceTracker:
    """Records responses per broker in a rolling window and summarises them on demand."""

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise ValueError("window: must keep at least one response")
        self.window = window
        self._responses: dict[str, deque[tuple[float, bool, float]]] = {}

    def record_response(
        self, broker: str, latency_ms: float, success: bool, fee: float = 0.0
    ) -> None:
        """Add one response; the oldest falls out once the window is full."""
        if latency_ms < 0 or fee < 0:
            raise ValueError("latency_ms and fee must be non-negative")
        self._responses.setdefault(broker, deque(maxlen=self.window)).append(
            (latency_ms, success, fee)
        )

    def metrics(self, broker: str) -> BrokerMetrics:
        """Summary of the window; a broker with no responses has count 0 and zeros elsewhere."""
        responses = self._responses.get(broker)
        if not responses:
            return BrokerMetrics(
                broker=broker,
                count=0,
                success_rate=0.0,
                p50_latency_ms=0.0,
                p95_latency_ms=0.0,
                mean_fee=0.0,
            )
        table = np.array(responses, dtype=float)
        p50, p95 = np.percentile(table[:, 0], [50, 95])
        return BrokerMetrics(
            broker=broker,
            count=len(table),
            success_rate=float(table[:, 1].mean()),
            p50_latency_ms=float(p50),
            p95_latency_ms=float(p95),
            mean_fee=float(table[:, 2].mean()),
        )

    def snapshot(self) -> dict[str, Any]:
        """The windows as JSON-able lists, so a restarted desk keeps its measurements."""
        return {broker: [list(r) for r in rows] for broker, rows in self._responses.items()}

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        self._responses = {
            broker: deque(((float(a), bool(b), float(c)) for a, b, c in rows), maxlen=self.window)
            for broker, rows in state.items()
        }
