"""Execution agent: owns the order book and the portfolio of the desk.

It gives each approved intent a client order id (written to the ledger before anything is sent),
follows every order through the state machine new → accepted → partially filled → filled /
cancelled / rejected, cancels orders that outlive their time-to-live, books each fill exactly once,
and measures slippage and broker latency. Agents that keep positions are single-threaded and
ordered; this is the only one.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from actors.base import Agent
from cycle.accounting import Portfolio
from cycle.messages import (
    ORDER_TRANSITIONS,
    ApplyInputs,
    ExecutionPlan,
    ExecutionState,
    Order,
    OrderRequest,
    OrderStatus,
    PrepareInputs,
    new_client_order_id,
    utc_now,
)


class ExecutionAgent(Agent):
    role = "execution"
    operations = frozenset({"prepare", "apply", "account"})

    def setup(self) -> None:
        self.portfolio = Portfolio(self.config.run.initial_cash)
        self.open: dict[str, Order] = {}
        self.born: dict[str, int] = {}
        self.fills_seen: dict[str, list[str]] = {}
        self.status_counts: Counter[str] = Counter()
        self.slippage_bps_sum = 0.0
        self.latency_ms_sum = 0.0
        self.fill_count = 0
        self.illegal_updates = 0
        self.last_cycle = 0
        self.last_timestamp: datetime | None = None

    def prepare(self, inputs: PrepareInputs) -> ExecutionPlan:
        """Assign client order ids to intents; pick the open orders whose time is up."""
        ttl = self.config.execution.order_ttl_bars
        cancels = tuple(
            o for cid, o in self.open.items()
            if inputs.cycle - self.born[cid] >= ttl and o.status is not OrderStatus.NEW
        )
        now = utc_now()
        new_orders = []
        for intent in inputs.intents:
            request = OrderRequest(
                client_order_id=new_client_order_id(),
                symbol=intent.symbol,
                side=intent.side,
                order_type=intent.order_type,
                quantity=intent.quantity,
                limit_price=intent.limit_price,
                cycle=inputs.cycle,
                strategy=intent.strategy,
                reason=intent.reason,
                created_at=now,
            )
            order = Order(request=request, updated_at=now)
            self.open[request.client_order_id] = order
            self.born[request.client_order_id] = inputs.cycle
            self.fills_seen[request.client_order_id] = []
            new_orders.append(order)
        return ExecutionPlan(cycle=inputs.cycle, new_orders=tuple(new_orders), cancels=cancels)

    def apply(self, inputs: ApplyInputs) -> ExecutionState:
        """Book a broker report: each fill once, each order change if the state table allows it."""
        terminal = []
        for fill in inputs.report.fills:
            seen = self.fills_seen.get(fill.client_order_id)
            if seen is None or fill.fill_id in seen:
                self.log.warning("ignored fill {} for order {}", fill.fill_id, fill.client_order_id)
                continue
            seen.append(fill.fill_id)
            self.portfolio.apply_fill(fill)
            self.fill_count += 1
            self.slippage_bps_sum += fill.slippage_bps
            self.latency_ms_sum += fill.latency_ms
        for order in inputs.report.orders:
            known = self.open.get(order.client_order_id)
            if known is None:
                self.log.warning("update for an order that is not open: {}", order.client_order_id)
                continue
            if order.status is not known.status and order.status not in ORDER_TRANSITIONS[known.status]:
                self.illegal_updates += 1
                self.log.error(
                    "illegal order update {}: {} -> {}", order.client_order_id,
                    known.status.value, order.status.value,
                )
                continue
            if order.status.terminal:
                self._close(order.client_order_id)
                self.status_counts[order.status.value] += 1
                terminal.append(order)
            else:
                self.open[order.client_order_id] = order
        self.portfolio.mark(inputs.marks)
        self.last_cycle, self.last_timestamp = inputs.cycle, inputs.timestamp or self.last_timestamp
        return ExecutionState(
            account=self.portfolio.state(inputs.cycle, self.last_timestamp),
            open_orders=tuple(self.open.values()),
            terminal_orders=tuple(terminal),
        )

    def account(self, close_cycle: bool = False) -> ExecutionState:
        """The account now; ``close_cycle`` also rolls the peak and the day's opening equity."""
        account = (
            self.portfolio.close_cycle(self.last_cycle, self.last_timestamp)
            if close_cycle
            else self.portfolio.state(self.last_cycle, self.last_timestamp)
        )
        return ExecutionState(account=account, open_orders=tuple(self.open.values()), terminal_orders=())

    def _close(self, client_order_id: str) -> None:
        self.open.pop(client_order_id, None)
        self.born.pop(client_order_id, None)
        self.fills_seen.pop(client_order_id, None)

    def extra_metrics(self) -> dict[str, float]:
        fills = max(self.fill_count, 1)
        return {
            "open_orders": float(len(self.open)),
            "fills": float(self.fill_count),
            "mean_slippage_bps": self.slippage_bps_sum / fills,
            "mean_fill_latency_ms": self.latency_ms_sum / fills,
            "illegal_updates": float(self.illegal_updates),
        } | {f"orders_{k}": float(v) for k, v in self.status_counts.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "portfolio": self.portfolio.snapshot(),
            "open": {cid: o.model_dump(mode="json") for cid, o in self.open.items()},
            "born": dict(self.born),
            "fills_seen": {k: list(v) for k, v in self.fills_seen.items()},
            "status_counts": dict(self.status_counts),
            "slippage_bps_sum": self.slippage_bps_sum,
            "latency_ms_sum": self.latency_ms_sum,
            "fill_count": self.fill_count,
            "illegal_updates": self.illegal_updates,
            "last_cycle": self.last_cycle,
            "last_timestamp": self.last_timestamp.isoformat() if self.last_timestamp else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.portfolio = Portfolio.restore(state["portfolio"])
        self.open = {cid: Order.model_validate(o) for cid, o in state["open"].items()}
        self.born = dict(state["born"])
        self.fills_seen = {k: list(v) for k, v in state["fills_seen"].items()}
        self.status_counts = Counter(state["status_counts"])
        self.slippage_bps_sum = state["slippage_bps_sum"]
        self.latency_ms_sum = state["latency_ms_sum"]
        self.fill_count = state["fill_count"]
        self.illegal_updates = state["illegal_updates"]
        self.last_cycle = state["last_cycle"]
        stamp = state["last_timestamp"]
        self.last_timestamp = datetime.fromisoformat(stamp) if stamp else None
