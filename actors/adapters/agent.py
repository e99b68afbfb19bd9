"""Adapters agent: where orders meet the brokers, without ever losing or doubling one.

Each cycle it syncs every pool member with the new bars (fills of earlier orders), then sends the
execution plan: cancels to the member that holds each order, new orders to the best broker by the
routing policy and to that broker's least-loaded member, all in one gathered batch. When a submit
fails with a temporary error the order is first looked up by client order id on the same member and
re-sent to the next broker only if the first never saw it; a broker-side refusal (invalid order,
funds) rejects the order with the broker's reason; an answer that never comes leaves the order
UNKNOWN until the next sync looks it up again. A broker that fails repeatedly is marked down and
routed around until a ping succeeds.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import Field

from actors.adapters.pool import BrokerPool, PoolCall, PoolResult, RayPool
from actors.base import Agent
from cycle.config import FluxtradeConfig
from cycle.errors import OperationalError, TemporaryError
from cycle.messages import Bar, BrokerReport, ExecutionPlan, Fill, Frozen, Order, OrderStatus

DOWN_AFTER_FAILURES = 3
LOST_ORDER_REASON = "lost before the broker acknowledged it; not re-sent, the intent is stale"


class BrokerStats(Frozen):
    submitted: int = Field(0, ge=0)
    rejected: int = Field(0, ge=0)
    fills: int = Field(0, ge=0)
    fees: float = Field(0.0, ge=0.0)
    failures: int = Field(0, ge=0)
    consecutive_failures: int = Field(0, ge=0)
    latency_ms_sum: float = Field(0.0, ge=0.0)


def rank_brokers(config: FluxtradeConfig, down: set[str], turn: int) -> list[str]:
    """Brokers in the order the routing policy prefers them; down brokers are left out."""
    brokers = [b for b in config.brokers if b.name not in down]
    policy = config.routing.policy
    if policy == "cheapest":
        brokers.sort(key=lambda b: (b.taker_fee, b.priority))
    elif policy == "round_robin":
        brokers = brokers[turn % len(brokers) :] + brokers[: turn % len(brokers)] if brokers else []
    else:
        brokers.sort(key=lambda b: b.priority)
    return [b.name for b in brokers]


class AdaptersAgent(Agent):
    role = "adapters"
    operations = frozenset({"sync", "execute"})

    def __init__(self, config: FluxtradeConfig, agent_id: str | None = None, pool: BrokerPool | None = None) -> None:
        super().__init__(config, agent_id)
        self.pool = pool

    def setup(self) -> None:
        self.pool = self.pool or RayPool(self.config)
        self.timeout_s = self.config.ray.step_timeout_s / 2
        self.owner: dict[str, str] = {}
        self.orders: dict[str, Order] = {}
        self.unknown: set[str] = set()
        self.load: Counter[str] = Counter()
        self.stats = {b.name: BrokerStats() for b in self.config.brokers}
        self.down: set[str] = set()
        self.turn = 0

    # operations -----------------------------------------------------------------------------

    def sync(self, bars: dict[str, Bar]) -> BrokerReport:
        """Fills of earlier orders on the new bars, plus the fate of orders left UNKNOWN."""
        self._probe_down_brokers()
        members = [m for name, ms in self.pool.members.items() if name not in self.down for m in ms]
        calls = [PoolCall(m, "sync", (bars,)) for m in members]
        calls += [PoolCall(self.owner[cid], "fetch_order", (cid, self.orders[cid].request.symbol)) for cid in sorted(self.unknown)]
        orders: list[Order] = []
        fills: list[Fill] = []
        for result in self.pool.call_many(calls, self.timeout_s):
            broker = result.call.member.split(":")[1]
            if not result.ok:
                self._failed(broker, result)
                continue
            self._succeeded(broker)
            if result.call.method == "sync":
                orders.extend(result.value.orders)
                fills.extend(result.value.fills)
            else:
                orders.append(self._resolve_unknown(result.call.args[0], result.value))
        for fill in fills:
            self._count_fill(fill)
        return self._track(BrokerReport(orders=tuple(orders), fills=tuple(fills)))

    def execute(self, plan: ExecutionPlan) -> BrokerReport:
        """Cancel stale orders and send new ones, in one gathered batch, with fail-over."""
        calls = [PoolCall(self.owner[o.client_order_id], "cancel", (o.client_order_id, o.request.symbol)) for o in plan.cancels if o.client_order_id in self.owner]
        report: list[Order] = []
        fills: list[Fill] = []
        attempts: dict[str, list[str]] = {}
        for order in plan.new_orders:
            self.orders[order.client_order_id] = order
            ranked = rank_brokers(self.config, self.down, self.turn)
            self.turn += 1
            if not ranked:
                report.append(order.transition(OrderStatus.REJECTED, reason="no broker is up"))
                continue
            attempts[order.client_order_id] = ranked
            calls.append(self._submit_call(order, ranked[0]))
        while calls:
            retry: list[PoolCall] = []
            for result in self.pool.call_many(calls, self.timeout_s):
                outcome, follow_up = self._settle(result, attempts)
                report.extend(outcome.orders)
                fills.extend(outcome.fills)
                retry.extend(follow_up)
            calls = retry
        for fill in fills:
            self._count_fill(fill)
        return self._track(BrokerReport(orders=tuple(report), fills=tuple(fills)))

    # plumbing -------------------------------------------------------------------------------

    def _submit_call(self, order: Order, broker: str) -> PoolCall:
        member = min(self.pool.members[broker], key=lambda m: self.load[m])
        self.owner[order.client_order_id] = member
        self.load[member] += 1
        self.stats[broker] = self.stats[broker].model_copy(update={"submitted": self.stats[broker].submitted + 1})
        return PoolCall(member, "submit", (order.request,))

    def _settle(self, result: PoolResult, attempts: dict[str, list[str]]) -> tuple[BrokerReport, list[PoolCall]]:
        call = result.call
        broker = call.member.split(":")[1]
        if result.ok:
            self._succeeded(broker)
            if call.method == "fetch_order" and result.value is None:
                return BrokerReport(), self._fail_over(call.args[0], attempts)
            if call.method == "fetch_order":
                return BrokerReport(orders=(result.value,)), []
            return result.value, []
        self._failed(broker, result)
        if call.method == "cancel":
            return BrokerReport(), []
        cid = call.args[0].client_order_id if call.method == "submit" else call.args[0]
        order = self.orders[cid]
        if isinstance(result.error, OperationalError):
            return BrokerReport(orders=(order.transition(OrderStatus.REJECTED, reason=f"{broker}: {result.error}"),)), []
        if call.method == "submit":
            return BrokerReport(), [PoolCall(call.member, "fetch_order", (cid, order.request.symbol))]
        self.unknown.add(cid)
        self.log.warning("order {} is UNKNOWN after {}", cid, result.error)
        return BrokerReport(orders=(order.transition(OrderStatus.UNKNOWN, reason=str(result.error)),)), []

    def _fail_over(self, cid: str, attempts: dict[str, list[str]]) -> list[PoolCall]:
        """The broker never saw the order: send it to the next broker, if any is left."""
        ranked = attempts.get(cid, [])
        ranked.pop(0) if ranked else None
        order = self.orders[cid]
        self.load[self.owner[cid]] -= 1
        remaining = [b for b in ranked if b not in self.down]
        if not remaining:
            self.owner.pop(cid, None)
            self.orders[cid] = order.transition(OrderStatus.REJECTED, reason="every broker failed to take the order")
            return []
        return [self._submit_call(order, remaining[0])]

    def _resolve_unknown(self, cid: str, found: Order | None) -> Order:
        self.unknown.discard(cid)
        if found is not None:
            return found
        return self.orders[cid].transition(OrderStatus.CANCELLED, reason=LOST_ORDER_REASON)

    def _track(self, report: BrokerReport) -> BrokerReport:
        """Remember who holds each live order; forget terminal ones."""
        orders = list(report.orders)
        orders.extend(
            o for cid, o in self.orders.items()
            if o.status.terminal and cid not in {x.client_order_id for x in orders}
        )
        for order in orders:
            cid = order.client_order_id
            if order.status.terminal:
                member = self.owner.pop(cid, None)
                if member:
                    self.load[member] -= 1
                self.orders.pop(cid, None)
                if order.status is OrderStatus.REJECTED and order.broker:
                    s = self.stats[order.broker]
                    self.stats[order.broker] = s.model_copy(update={"rejected": s.rejected + 1})
            else:
                self.orders[cid] = order
        return BrokerReport(orders=tuple(orders), fills=report.fills)

    def _count_fill(self, fill: Fill) -> None:
        s = self.stats[fill.broker]
        self.stats[fill.broker] = s.model_copy(
            update={"fills": s.fills + 1, "fees": s.fees + fill.fee, "latency_ms_sum": s.latency_ms_sum + fill.latency_ms}
        )

    def _succeeded(self, broker: str) -> None:
        s = self.stats[broker]
        if s.consecutive_failures:
            self.stats[broker] = s.model_copy(update={"consecutive_failures": 0})

    def _failed(self, broker: str, result: PoolResult) -> None:
        s = self.stats[broker]
        failures = s.consecutive_failures + (1 if isinstance(result.error, TemporaryError) else 0)
        self.stats[broker] = s.model_copy(update={"failures": s.failures + 1, "consecutive_failures": failures})
        self.log.warning("{} {} failed: {}", result.call.member, result.call.method, result.error)
        if failures >= DOWN_AFTER_FAILURES and broker not in self.down:
            self.down.add(broker)
            self.log.error("broker {} marked down after {} failures", broker, failures)

    def _probe_down_brokers(self) -> None:
        if not self.down:
            return
        calls = [PoolCall(self.pool.members[b][0], "ping", ()) for b in sorted(self.down)]
        for result in self.pool.call_many(calls, self.timeout_s):
            broker = result.call.member.split(":")[1]
            if result.ok:
                self.down.discard(broker)
                self._succeeded(broker)
                self.log.info("broker {} is back up", broker)

    def extra_metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"brokers_down": float(len(self.down)), "unknown_orders": float(len(self.unknown))}
        for name, s in self.stats.items():
            out |= {f"{name}_submitted": float(s.submitted), f"{name}_fills": float(s.fills), f"{name}_fees": s.fees}
        return out

    def broker_stats(self) -> dict[str, BrokerStats]:
        return dict(self.stats)

    def state_dict(self) -> dict[str, Any]:
        return {
            "owner": dict(self.owner),
            "orders": {cid: o.model_dump(mode="json") for cid, o in self.orders.items()},
            "unknown": sorted(self.unknown),
            "load": dict(self.load),
            "stats": {n: s.model_dump() for n, s in self.stats.items()},
            "down": sorted(self.down),
            "turn": self.turn,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.owner = dict(state["owner"])
        self.orders = {cid: Order.model_validate(o) for cid, o in state["orders"].items()}
        self.unknown = set(state["unknown"])
        self.load = Counter(state["load"])
        self.stats = {n: BrokerStats.model_validate(s) for n, s in state["stats"].items()}
        self.down = set(state["down"])
        self.turn = state["turn"]
