"""Risk agent (cycle step 5): sizing, limits, stops and the latched drawdown kill switch.

The plain logic lives in :mod:`actors.risk.limits` (orders and decisions) and
:mod:`actors.risk.view` (what the agent knows of the market); this agent keeps the per-symbol
state between cycles, starts the re-entry cooldown of a stopped-out symbol, and reports the book's
tail risk each cycle in ``RiskOutcome.portfolio``: historical and parametric VaR and CVaR at 95%
and 99% per bar, gross, net and correlation-weighted exposure, and the mean entropy scale.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from actors.base import Agent
from actors.risk.limits import STOP_REASONS, plan_orders
from actors.risk.view import RiskTracker, RiskView, book_risk, correlated_exposure, exposures
from cycle.messages import AccountState, AgentMessage, RiskInputs, RiskOutcome

SECONDS_PER_YEAR = 365 * 86400


class RiskAgent(Agent):
    role = "risk"

    def setup(self) -> None:
        self.kill_switch = False
        self.reasons: Counter[str] = Counter()
        self.tracker = RiskTracker(
            self.config.risk, self.config.symbols,
            bars_per_year=SECONDS_PER_YEAR / self.config.data.timeframe_seconds,
        )
        self.portfolio: dict[str, float] = {}

    def step(self, inputs: RiskInputs) -> RiskOutcome:
        self.tracker.update(inputs.frame)
        view = self.tracker.view()
        outcome = plan_orders(
            cycle=inputs.frame.cycle,
            decision=inputs.decision,
            account=inputs.account,
            prices={s: p.mark for s, p in inputs.account.positions.items()} | inputs.frame.closes,
            open_orders=inputs.open_orders,
            risk=self.config.risk,
            execution=self.config.execution,
            flux=self.flux,
            kill_switch=self.kill_switch,
            halted=inputs.halted,
            halt_reason=inputs.halt_reason,
            view=view,
        )
        if outcome.kill_switch and not self.kill_switch:
            self.log.warning(
                "kill switch engaged: drawdown {:.2%} >= {:.2%}",
                inputs.account.drawdown,
                self.config.risk.max_drawdown,
            )
        self.kill_switch = outcome.kill_switch
        for intent in outcome.intents:
            if intent.reason.startswith(STOP_REASONS):
                self.tracker.stopped(intent.symbol)
                self.log.info("{} {}", intent.symbol, intent.reason)
        self.tracker.remember(inputs.decision, inputs.frame)
        self.reasons.update(d.reason.split(":")[0] for d in outcome.decisions)
        self.portfolio = portfolio_report(inputs.account, view)
        return outcome.model_copy(update={"portfolio": self.portfolio})

    def on_message(self, message: AgentMessage) -> dict[str, Any]:
        if message.topic == "reset_kill_switch":
            self.kill_switch = False
            self.log.warning("kill switch reset by {}", message.sender)
            return {"kill_switch": False}
        return super().on_message(message)

    def extra_metrics(self) -> dict[str, float]:
        return (
            {"kill_switch": float(self.kill_switch)}
            | {f"decisions_{k}": float(v) for k, v in self.reasons.items()}
            | self.portfolio
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "kill_switch": self.kill_switch,
            "reasons": dict(self.reasons),
            "tracker": self.tracker.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kill_switch = state["kill_switch"]
        self.reasons = Counter(state["reasons"])
        self.tracker.load_state_dict(state["tracker"])


def portfolio_report(account: AccountState, view: RiskView) -> dict[str, float]:
    """Tail risk and exposures of the book as held, as fractions of equity (finite values only).

    VaR and CVaR revalue today's positions over the recent aligned returns ("what could the book
    we hold lose in one bar"), so they are absent while the book is flat or history is short.
    """
    weights = exposures(account)
    report = book_risk(weights, view)
    report["gross_exposure"] = sum(abs(w) for w in weights.values())
    report["net_exposure"] = sum(weights.values())
    report["correlated_exposure"] = correlated_exposure(weights, view)
    report["entropy_scale_mean"] = float(
        np.mean([s.entropy_scale for s in view.symbols.values()]) if view.symbols else 1.0
    )
    return {k: float(v) for k, v in report.items() if np.isfinite(v)}
