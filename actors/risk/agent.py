"""Risk agent: pre-trade limits and the latched drawdown kill switch (logic in ``limits``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from actors.base import Agent
from actors.risk.limits import plan_orders
from cycle.messages import AgentMessage, RiskInputs, RiskOutcome


class RiskAgent(Agent):
    role = "risk"

    def setup(self) -> None:
        self.kill_switch = False
        self.reasons: Counter[str] = Counter()

    def step(self, inputs: RiskInputs) -> RiskOutcome:
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
        )
        if outcome.kill_switch and not self.kill_switch:
            self.log.warning(
                "kill switch engaged: drawdown {:.2%} >= {:.2%}",
                inputs.account.drawdown,
                self.config.risk.max_drawdown,
            )
        self.kill_switch = outcome.kill_switch
        self.reasons.update(d.reason.split(":")[0] for d in outcome.decisions)
        return outcome

    def on_message(self, message: AgentMessage) -> dict[str, Any]:
        if message.topic == "reset_kill_switch":
            self.kill_switch = False
            self.log.warning("kill switch reset by {}", message.sender)
            return {"kill_switch": False}
        return super().on_message(message)

    def extra_metrics(self) -> dict[str, float]:
        return {"kill_switch": float(self.kill_switch)} | {
            f"decisions_{k}": float(v) for k, v in self.reasons.items()
        }

    def state_dict(self) -> dict[str, Any]:
        return {"kill_switch": self.kill_switch, "reasons": dict(self.reasons)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kill_switch = state["kill_switch"]
        self.reasons = Counter(state["reasons"])
