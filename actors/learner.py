"""Learner: re-weights strategies by the PnL their own signals would have earned.

Each strategy's signal at bar t-1 is scored against the realised log return of bar t (its
"paper" PnL, free of the blend and of execution), and weights follow the multiplicative-weights
rule ``w_i <- w_i * exp(eta * pnl_i)``, renormalised and kept within [min_weight, max_weight] so no
strategy is ever silenced for good.
"""

from __future__ import annotations

import math
from typing import Any

from actors.base import Agent
from cycle.messages import LearnerInputs, LearnerOutput


def multiplicative_update(
    weights: dict[str, float], pnl: dict[str, float], rate: float, low: float, high: float
) -> dict[str, float]:
    """One multiplicative-weights step, then the nearest weights that sum to 1 within bounds."""
    raw = {n: w * math.exp(rate * pnl.get(n, 0.0)) for n, w in weights.items()}
    return bounded_simplex(raw, low, high)


def bounded_simplex(raw: dict[str, float], low: float, high: float) -> dict[str, float]:
    """Scale ``raw`` to sum 1, pinning any weight that would leave [low, high] at the bound.

    Plain clipping followed by renormalising pushes weights back past the bound; instead the
    out-of-bound weights are fixed at their bound and the rest share what remains in proportion.
    """
    fixed: dict[str, float] = {}
    free = dict(raw)
    while free:
        remaining = 1.0 - sum(fixed.values())
        total = sum(free.values())
        proposal = {n: remaining * v / total for n, v in free.items()}
        over = [n for n, v in proposal.items() if v > high]
        under = [n for n, v in proposal.items() if v < low]
        if not over and not under:
            return fixed | proposal
        for name in over or under:
            fixed[name] = high if over else low
            free.pop(name)
    return fixed


class LearnerAgent(Agent):
    role = "learner"

    def setup(self) -> None:
        total = sum(s.weight for s in self.config.strategies)
        self.weights = {s.name: s.weight / total for s in self.config.strategies}
        self.previous_signals: dict[str, dict[str, float]] = {}
        self.previous_closes: dict[str, float] = {}
        self.cumulative = {name: 0.0 for name in self.weights}

    def step(self, inputs: LearnerInputs) -> LearnerOutput:
        pnl = {name: 0.0 for name in self.weights}
        for name, signals in self.previous_signals.items():
            for symbol, signal in signals.items():
                before, now = self.previous_closes.get(symbol), inputs.closes.get(symbol)
                if before and now:
                    pnl[name] += signal * math.log(now / before)
        cfg = self.config.learner
        self.weights = multiplicative_update(self.weights, pnl, cfg.learning_rate, cfg.min_weight, cfg.max_weight)
        for name, value in pnl.items():
            self.cumulative[name] += value
        if inputs.decision is not None:
            self.previous_signals = {n: dict(s) for n, s in inputs.decision.signals.items()}
        self.previous_closes.update(inputs.closes)
        return LearnerOutput(weights=dict(self.weights), last_pnl=pnl, cumulative_pnl=dict(self.cumulative))

    def extra_metrics(self) -> dict[str, float]:
        return {f"weight_{n}": w for n, w in self.weights.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights, "previous_signals": self.previous_signals,
            "previous_closes": self.previous_closes, "cumulative": self.cumulative,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = dict(state["weights"])
        self.previous_signals = {n: dict(s) for n, s in state["previous_signals"].items()}
        self.previous_closes = dict(state["previous_closes"])
        self.cumulative = dict(state["cumulative"])
