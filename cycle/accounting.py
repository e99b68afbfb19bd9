"""Cash, positions and equity: the accounting identity every cycle must keep.

``equity = cash + sum(quantity * mark)``; cash moves only by fills (``Fill.cash_delta``), so the
ledger's fills reproduce the cash exactly when replayed in order. Positions use average-cost
accounting, so ``equity - initial_cash = realised + unrealised - fees``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import AwareDatetime

from cycle.messages import AccountState, Fill, PositionState


class Portfolio:
    """Mutable book of one account; only the execution agent owns one."""

    def __init__(self, initial_cash: float) -> None:
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.quantities: dict[str, float] = {}
        self.average_costs: dict[str, float] = {}
        self.marks: dict[str, float] = {}
        self.realised_pnl = 0.0
        self.fees_paid = 0.0
        self.peak_equity = initial_cash
        self.day_start_equity = initial_cash
        self.current_day: str | None = None

    def apply_fill(self, fill: Fill) -> None:
        """Book one fill. The caller guarantees each fill is applied once (see ExecutionAgent)."""
        self.cash += fill.cash_delta
        self.fees_paid += fill.fee
        held = self.quantities.get(fill.symbol, 0.0)
        cost = self.average_costs.get(fill.symbol, 0.0)
        change = fill.side.sign * fill.quantity
        if held == 0.0 or math.copysign(1.0, held) == math.copysign(1.0, change):
            new_quantity = held + change
            cost = (abs(held) * cost + fill.quantity * fill.price) / abs(new_quantity)
        else:
            closed = min(abs(change), abs(held))
            self.realised_pnl += closed * (fill.price - cost) * math.copysign(1.0, held)
            new_quantity = held + change
            if abs(change) > abs(held):
                cost = fill.price
        if abs(new_quantity) <= 1e-15:
            self.quantities.pop(fill.symbol, None)
            self.average_costs.pop(fill.symbol, None)
        else:
            self.quantities[fill.symbol] = new_quantity
            self.average_costs[fill.symbol] = cost
        self.marks.setdefault(fill.symbol, fill.price)

    def mark(self, prices: dict[str, float]) -> None:
        """Mark positions to the latest valid prices; symbols without a price keep their mark."""
        self.marks.update(prices)

    @property
    def equity(self) -> float:
        return self.cash + sum(q * self.marks[s] for s, q in self.quantities.items())

    def close_cycle(self, cycle: int, timestamp: AwareDatetime | None) -> AccountState:
        """Update the peak and the day's opening equity, and freeze the account for this cycle."""
        equity = self.equity
        day = timestamp.date().isoformat() if timestamp else None
        if day is not None and day != self.current_day:
            self.current_day = day
            self.day_start_equity = equity
        self.peak_equity = max(self.peak_equity, equity)
        return self.state(cycle, timestamp)

    def state(self, cycle: int, timestamp: AwareDatetime | None) -> AccountState:
        positions = {
            s: PositionState(
                symbol=s, quantity=q, average_cost=self.average_costs[s], mark=self.marks[s]
            )
            for s, q in self.quantities.items()
        }
        return AccountState(
            cycle=cycle,
            timestamp=timestamp,
            cash=self.cash,
            positions=positions,
            equity=self.equity,
            peak_equity=self.peak_equity,
            day_start_equity=self.day_start_equity,
            realised_pnl=self.realised_pnl,
            fees_paid=self.fees_paid,
            initial_cash=self.initial_cash,
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "initial_cash": self.initial_cash,
            "cash": self.cash,
            "quantities": dict(self.quantities),
            "average_costs": dict(self.average_costs),
            "marks": dict(self.marks),
            "realised_pnl": self.realised_pnl,
            "fees_paid": self.fees_paid,
            "peak_equity": self.peak_equity,
            "day_start_equity": self.day_start_equity,
            "current_day": self.current_day,
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Portfolio:
        portfolio = cls(state["initial_cash"])
        for key in (
            "cash",
            "quantities",
            "average_costs",
            "marks",
            "realised_pnl",
            "fees_paid",
            "peak_equity",
            "day_start_equity",
            "current_day",
        ):
            setattr(portfolio, key, state[key])
        return portfolio
