"""Failure prevention: resource readings, cycle error rates and the circuit breaker.

The breaker opens (no new orders) when the recent step error rate, a streak of order rejections or
memory pressure crosses its limit; after a cooldown it half-opens and lets orders through again,
re-opening at once if the next cycle fails too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import psutil

from actors.base import Agent
from cycle.config import MonitorConfig
from cycle.messages import BreakerState, FailureInputs, FailureReport, ResourceReading


def read_resources() -> ResourceReading:
    """psutil readings of this node, and Ray's CPU availability when Ray is running."""
    import ray

    available = total = None
    if ray.is_initialized():
        available = ray.available_resources().get("CPU", 0.0)
        total = ray.cluster_resources().get("CPU", 0.0)
    return ResourceReading(
        memory_percent=psutil.virtual_memory().percent,
        cpu_percent=psutil.cpu_percent(interval=None),
        process_rss_mb=psutil.Process().memory_info().rss / 2**20,
        ray_cpus_available=available,
        ray_cpus_total=total,
    )


class CircuitBreaker:
    """closed → open on a breach; open → half_open after ``cooldown`` cycles; half_open → closed
    after a clean cycle, or back to open on the next breach."""

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.state: BreakerState = "closed"
        self.opened_at = 0
        self.reason = ""
        self.outcomes: deque[tuple[int, int]] = deque(maxlen=config.window_cycles)
        self.rejection_streak = 0

    def observe(self, inputs: FailureInputs, resources: ResourceReading) -> FailureReport:
        self.outcomes.append((inputs.steps, inputs.step_errors))
        steps = sum(s for s, _ in self.outcomes)
        error_rate = sum(e for _, e in self.outcomes) / steps if steps else 0.0
        if inputs.orders:
            self.rejection_streak = (
                self.rejection_streak + inputs.rejections if inputs.rejections == inputs.orders else 0
            )
        breach = ""
        if error_rate > self.config.error_rate_threshold:
            breach = f"step error rate {error_rate:.0%} over {self.config.error_rate_threshold:.0%}"
        elif self.rejection_streak >= self.config.max_rejection_streak:
            breach = f"{self.rejection_streak} order rejections in a row"
        elif resources.memory_percent >= self.config.max_memory_percent:
            breach = f"memory at {resources.memory_percent:.0f}%"
        if breach and self.state != "open":
            self.state, self.opened_at, self.reason = "open", inputs.cycle, breach
        elif self.state == "open" and inputs.cycle - self.opened_at >= self.config.breaker_cooldown_cycles:
            self.state, self.reason = "half_open", f"cooling down after: {self.reason}"
        elif self.state == "half_open" and not breach:
            self.state, self.reason = "closed", ""
        return FailureReport(
            breaker=self.state,
            reason=self.reason,
            error_rate=error_rate,
            rejection_streak=self.rejection_streak,
            resources=resources,
        )


class FailureAgent(Agent):
    role = "failure"

    def __init__(self, config: Any, agent_id: str | None = None,
                 reader: Callable[[], ResourceReading] = read_resources) -> None:
        super().__init__(config, agent_id)
        self.reader = reader

    def setup(self) -> None:
        self.breaker = CircuitBreaker(self.config.monitor)

    def step(self, inputs: FailureInputs) -> FailureReport:
        report = self.breaker.observe(inputs, self.reader())
        if report.breaker_open:
            self.log.warning("circuit breaker open: {}", report.reason)
        return report

    def extra_metrics(self) -> dict[str, float]:
        return {"breaker_open": float(self.breaker.state == "open")}

    def state_dict(self) -> dict[str, Any]:
        b = self.breaker
        return {
            "state": b.state, "opened_at": b.opened_at, "reason": b.reason,
            "outcomes": [list(o) for o in b.outcomes], "rejection_streak": b.rejection_streak,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        b = self.breaker
        b.state, b.opened_at, b.reason = state["state"], state["opened_at"], state["reason"]
        b.outcomes.clear()
        b.outcomes.extend(tuple(o) for o in state["outcomes"])
        b.rejection_streak = state["rejection_streak"]
