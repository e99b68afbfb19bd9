"""When the meta-agent should choose again: every N cycles, or when live Sharpe sags.

Plain logic fed with one equity value per cycle. It fires on a schedule (markets change even when
the desk is doing fine) and early when the annualised Sharpe ratio of the last ``window`` cycles
falls below a threshold (the strategy that was chosen has stopped working). After firing it waits
for a full new window before the Sharpe test can fire again, so one bad stretch asks once, not
every cycle. A request from elsewhere (the trainer's ``meta_reevaluation_requested`` event) makes
the next observation fire.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from tuning.metrics import periods_per_year


class ReevaluationPolicy(BaseModel):
    """Attributes:
    every_cycles: Re-evaluate at least this often (288 five-minute cycles = one day).
    window: Cycles of equity the live Sharpe ratio is measured over.
    sharpe_threshold: Re-evaluate early when the window's annualised Sharpe falls below it.
    bar_seconds: Length of one cycle's bar, for annualisation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    every_cycles: PositiveInt = 288
    window: int = Field(96, ge=3)
    sharpe_threshold: float = 0.0
    bar_seconds: PositiveInt = 300


class ReevaluationTrigger:
    """Says, cycle by cycle, whether the meta-agent should run again, and why."""

    def __init__(self, policy: ReevaluationPolicy | None = None) -> None:
        self.policy = policy or ReevaluationPolicy()
        self.equity: deque[float] = deque(maxlen=self.policy.window + 1)
        self.since = 0
        self.requested = ""

    def request(self, reason: str) -> None:
        """Make the next observation fire (a request from another part of the desk)."""
        self.requested = reason

    def live_sharpe(self) -> float | None:
        """Annualised Sharpe of the window's cycle returns; None until the window is full."""
        if len(self.equity) <= self.policy.window:
            return None
        values = np.asarray(self.equity)
        returns = values[1:] / values[:-1] - 1.0
        std = returns.std(ddof=1)
        if std == 0:
            return 0.0
        return float(returns.mean() / std * math.sqrt(periods_per_year(self.policy.bar_seconds)))

    def observe(self, equity: float) -> str | None:
        """Feed one cycle's equity; returns the reason to re-evaluate now, or None."""
        self.since += 1
        self.equity.append(equity)
        reason = self.requested
        if not reason and self.since >= self.policy.every_cycles:
            reason = f"scheduled: {self.since} cycles since the last evaluation"
        sharpe = self.live_sharpe()
        if not reason and sharpe is not None and sharpe < self.policy.sharpe_threshold:
            reason = (
                f"live Sharpe {sharpe:.2f} over {self.policy.window} cycles "
                f"< {self.policy.sharpe_threshold:.2f}"
            )
        if reason:
            self.since = 0
            self.requested = ""
            last = self.equity[-1]
            self.equity.clear()
            self.equity.append(last)
        return reason or None
