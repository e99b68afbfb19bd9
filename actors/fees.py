"""Fees monitor: what each broker costs, and the desk's PnL before and after fees."""

from __future__ import annotations

from typing import Any

from actors.base import Agent
from cycle.messages import BrokerFees, FeeReport, FeesInputs


class FeesAgent(Agent):
    role = "fees"

    def setup(self) -> None:
        self.by_broker: dict[str, BrokerFees] = {}

    def step(self, inputs: FeesInputs) -> FeeReport:
        for fill in inputs.fills:
            seen = self.by_broker.get(fill.broker, BrokerFees(fills=0, notional=0.0, fees=0.0))
            self.by_broker[fill.broker] = BrokerFees(
                fills=seen.fills + 1,
                notional=seen.notional + fill.quantity * fill.price,
                fees=seen.fees + fill.fee,
            )
        account = inputs.account
        net = account.equity - account.initial_cash
        return FeeReport(
            by_broker=dict(self.by_broker),
            total_fees=account.fees_paid,
            gross_pnl=net + account.fees_paid,
            net_pnl=net,
        )

    def extra_metrics(self) -> dict[str, float]:
        return {f"{name}_fee_bps": b.fee_bps for name, b in self.by_broker.items()}

    def state_dict(self) -> dict[str, Any]:
        return {name: b.model_dump() for name, b in self.by_broker.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.by_broker = {name: BrokerFees.model_validate(b) for name, b in state.items()}
