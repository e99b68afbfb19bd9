"""Adapters agent: where orders meet the brokers, without ever losing or doubling one.

Each cycle, ``sync`` asks every pool member for what happened since the last cycle (fills and
order changes, delivered at least once and de-duplicated here by fill id), looks up every order
left UNKNOWN, and re-learns each broker's score and retry schedule from what it has shown.
``execute`` sends the plan in one batch: cancels to the member holding each order, and each new
order through the learning layer:

* :class:`BrokerRouter` picks the broker by the configured policy (priority, best score, cheapest,
  fastest, round robin), never one the :class:`HealthChecker` calls down, healthy ones before
  degraded ones, and never one known to refuse the symbol (KYC);
* :class:`PooledBroker` sends it to that broker's member with the most room, through
  :class:`RetryHandler` (backoff learnt per broker; before any re-send the order is looked up by
  client order id on the member that was sent it);
* a broker that certainly did not take it is failed over; an answer that never came (a timeout,
  a lost member, an unreadable answer after an API change) leaves the order UNKNOWN until a
  lookup settles it; a refusal of the order itself rejects it with the broker's reason.

Every call is journaled to one JSON-lines log per broker under ``<report folder>/brokers`` and
feeds the :class:`PerformanceTracker` and the :class:`HealthChecker`; changes of a venue's API
shape reach the :class:`APIMonitor`, which holds that broker degraded until a human clears it.
What the agent reports to the desk is kept consistent with the desk's state table: an order never
claims fills the desk has not been given, and a stale or repeated update is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from actors.adapters.learning import (
    APIMonitor,
    BrokerIntelligence,
    BrokerLogger,
    BrokerRouter,
    HealthChecker,
    HealthParams,
    HealthState,
    PatternReport,
    PerformanceTracker,
    Recommendation,
    RetryHandler,
    RetryParams,
    RouterConfig,
    RoutingStrategy,
)
from actors.adapters.learning.intelligence import AvoidWindow
from actors.adapters.learning.logs import load_learned
from actors.adapters.member import broker_of
from actors.adapters.pool import BrokerPool, RayPool
from actors.adapters.pooled import PooledBroker
from actors.base import Agent
from cycle.config import FluxtradeConfig
from cycle.errors import (
    APIChangedError,
    BrokerTimeoutError,
    ConfigError,
    FluxtradeError,
    InvalidOrderError,
    TemporaryError,
)
from cycle.messages import (
    ORDER_TRANSITIONS,
    TRAINER_DEPLOY_TOPIC,
    AgentMessage,
    Bar,
    BrokerReport,
    DeployCommand,
    ExecutionPlan,
    Fill,
    MessageKind,
    Order,
    OrderStatus,
    utc_now,
)

LOST_ORDER_REASON = "the broker never saw it (looked up by client order id); not re-sent"
LOST_MEMBER_REASON = "the pool member that held it was lost with its venue; not re-sent"
DEADLINE_SHARE = 0.8
"""An order's routing must end within this share of the step timeout, so the cycle hears back."""
HEALTH_LEVEL = {HealthState.HEALTHY: 0.0, HealthState.DEGRADED: 1.0, HealthState.DOWN: 2.0}
FILLED_STATES = frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED})


class AdaptersAgent(Agent):
    """The desk's door to its brokers; see the module docstring.

    Args:
        config: The run's config (brokers, routing, report folder).
        agent_id: Actor id; the role by default.
        pool: The broker pool; a :class:`RayPool` of the named members by default.
        clock: Monotonic seconds for health windows and UNKNOWN ages (tests pass a fake one).
        journal_clock: Timestamps of the broker logs (training passes the replayed bar time).
    """

    role = "adapters"
    operations = frozenset({"sync", "execute"})

    def __init__(
        self,
        config: FluxtradeConfig,
        agent_id: str | None = None,
        pool: BrokerPool | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        journal_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(config, agent_id)
        self.pool = pool
        self.clock = clock
        self.journal_clock = journal_clock

    def setup(self) -> None:
        routing = self.config.routing
        self.pool = self.pool or RayPool(self.config)
        self.loop = asyncio.new_event_loop()
        self.call_timeout_s = routing.call_timeout_s
        self.deadline_s = self.config.ray.step_timeout_s * DEADLINE_SHARE
        retry = RetryParams(**routing.retry.model_dump())
        self.venue_health = HealthChecker(
            HealthParams(**routing.health.model_dump()), clock=self.clock
        )
        self.tracker = PerformanceTracker(routing.performance_window)
        self.intelligence = BrokerIntelligence(default_retry=retry)
        self.retry = RetryHandler(retry)
        self.api = APIMonitor({}, health=self.venue_health)
        self.journal = BrokerLogger(
            self.config.report.resolved() / "brokers", clock=self.journal_clock
        )
        self.owner: dict[str, str] = {}
        self.orders: dict[str, Order] = {}
        self.unknown: dict[str, float] = {}
        self.filled: dict[str, float] = {}
        self.fill_ids: dict[str, set[str]] = {}
        self.acks: dict[str, list[int]] = {}
        self.counts: dict[str, Counter[str]] = {b.name: Counter() for b in self.config.brokers}
        self.fees: dict[str, float] = {b.name: 0.0 for b in self.config.brokers}
        self.patterns: dict[str, PatternReport] = {}
        self.recovery: dict[str, float] = {}
        self.trained_avoid: dict[str, tuple[AvoidWindow, ...]] = {}
        self.deployment: DeployCommand | None = None
        venues = {
            b.name: PooledBroker(
                b.name,
                self.pool.members[b.name],
                self._call,
                self.pool.choose,
                self.retry,
                self.owner,
            )
            for b in self.config.brokers
        }
        self.router = BrokerRouter(
            venues,
            RouterConfig(
                strategy=RoutingStrategy(routing.policy),
                fees={b.name: b.taker_fee for b in self.config.brokers},
                priorities={b.name: b.priority for b in self.config.brokers},
            ),
            self.venue_health,
            self.tracker,
            self.intelligence,
            record_outcomes=False,
        )
        self._load_learned()

    def _load_learned(self) -> None:
        """Start from what training learnt: scores, windows to avoid, retry schedules."""
        path = self.config.routing.learned_path()
        if path is None:
            return
        for name, learned in load_learned(path).items():
            if name not in self.counts:
                continue
            self.intelligence.restore({name: learned.recommendation.model_dump(mode="json")})
            self.retry.set_params(name, learned.recommendation.retry)
            self.patterns[name] = learned.patterns
            if learned.recovery_s is not None:
                self.recovery[name] = learned.recovery_s
        self.log.info("loaded what training learnt about {} from {}", sorted(self.patterns), path)

    def teardown(self) -> None:
        assert self.pool is not None
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()
        self.journal.close()

    # operations -----------------------------------------------------------------------------

    def sync(self, bars: dict[str, Bar]) -> BrokerReport:
        """Fills and order changes since the last cycle, and the fate of UNKNOWN orders."""
        return self.loop.run_until_complete(self._sync(bars))

    def execute(self, plan: ExecutionPlan) -> BrokerReport:
        """Cancel stale orders and route new ones, all in flight at once."""
        return self.loop.run_until_complete(self._execute(plan))

    async def _sync(self, bars: dict[str, Bar]) -> BrokerReport:
        assert self.pool is not None
        members = [m for ms in self.pool.members.values() for m in ms]
        reports = list(await asyncio.gather(*(self._member_sync(m, bars) for m in members)))
        reports.extend(await asyncio.gather(*(self._look_up(cid) for cid in list(self.unknown))))
        reports.append(await self._reconcile_replaced())
        self._learn()
        return self._absorb(reports)

    async def _member_sync(self, member: str, bars: dict[str, Bar]) -> BrokerReport:
        try:
            report: BrokerReport = await self._call(member, "sync", bars)
        except FluxtradeError:
            return BrokerReport()
        return report

    async def _execute(self, plan: ExecutionPlan) -> BrokerReport:
        for order in plan.new_orders:
            self.orders[order.client_order_id] = order
        reports = list(
            await asyncio.gather(
                *(self._cancel(order) for order in plan.cancels),
                *(self._route(order) for order in plan.new_orders),
            )
        )
        reports.append(await self._reconcile_replaced())
        return self._absorb(reports)

    # routing --------------------------------------------------------------------------------

    async def _route(self, order: Order) -> BrokerReport:
        """Place one new order through the router; every way out leaves it accounted for."""
        cid = order.client_order_id
        try:
            routed = await asyncio.wait_for(self.router.submit(order.request), self.deadline_s)
        except (BrokerTimeoutError, APIChangedError, TimeoutError) as error:
            if cid not in self.owner:
                return self._rejected(order, f"not sent: routing ran out of time ({error})")
            broker = broker_of(self.owner[cid])
            self.log.warning("order {} is UNKNOWN at {}: {}", cid, broker, error)
            reason = f"outcome unknown: {type(error).__name__}: {error}"
            return BrokerReport(
                orders=(order.transition(OrderStatus.UNKNOWN, broker=broker, reason=reason),)
            )
        except FluxtradeError as error:
            self.owner.pop(cid, None)
            return self._rejected(order, f"{type(error).__name__}: {error}")
        self.counts[routed.broker]["routed"] += 1
        if routed.passed_over:
            self.log.info("order {} went to {} past {}", cid, routed.broker, routed.passed_over)
        return routed.report

    def _rejected(self, order: Order, reason: str) -> BrokerReport:
        self.log.warning("order {} rejected: {}", order.client_order_id, reason)
        return BrokerReport(orders=(order.transition(OrderStatus.REJECTED, reason=reason),))

    async def _cancel(self, order: Order) -> BrokerReport:
        """Cancel at the member holding the order; an order no venue holds ends cancelled."""
        cid, symbol = order.client_order_id, order.request.symbol
        member = self.owner.get(cid)
        if member is None:
            return BrokerReport(orders=(self._ended(order, LOST_ORDER_REASON),))
        broker = broker_of(member)

        async def cancel() -> BrokerReport:
            report: BrokerReport = await self._call(member, "cancel", cid, symbol, cid=cid)
            return report

        try:
            return await self.retry.run(broker, cancel)
        except InvalidOrderError:
            return BrokerReport(orders=(self._ended(order, LOST_ORDER_REASON),))
        except FluxtradeError as error:
            self.log.warning("cancel of {} failed, asked again next cycle: {}", cid, error)
            return BrokerReport()

    def _ended(self, order: Order, reason: str) -> Order:
        known = self.orders.get(order.client_order_id, order)
        return known.transition(OrderStatus.CANCELLED, reason=reason)

    # settling what is not known -------------------------------------------------------------

    async def _look_up(self, cid: str, lost: str = LOST_ORDER_REASON) -> BrokerReport:
        """Ask the member that holds an UNKNOWN order; it ends cancelled (for the reason ``lost``)
        once it surely never reached the venue: for a real venue, only after the signed request
        could no longer land."""
        order, member = self.orders.get(cid), self.owner.get(cid)
        if order is None or member is None:
            self.unknown.pop(cid, None)
            return BrokerReport()
        broker = broker_of(member)

        async def fetch() -> Order | None:
            found: Order | None = await self._call(
                member, "fetch_order", cid, order.request.symbol, cid=cid
            )
            return found

        try:
            found = await self.retry.run(broker, fetch)
        except FluxtradeError as error:
            self.log.info("order {} still UNKNOWN: {}", cid, error)
            return BrokerReport()
        if found is not None:
            return BrokerReport(orders=(found,))
        if self.clock() - self.unknown.get(cid, self.clock()) < self._grace_s(broker):
            return BrokerReport()
        return BrokerReport(orders=(self._ended(order, lost),))

    def _grace_s(self, broker: str) -> float:
        spec = next(b for b in self.config.brokers if b.name == broker)
        return spec.venue().recv_window_ms / 1000 if spec.kind == "ccxt" else 0.0

    async def _reconcile_replaced(self) -> BrokerReport:
        """Orders held by members that came back new: tracked again, then looked up there."""
        assert self.pool is not None
        replaced = set(self.pool.drain_replaced())
        held = [
            cid for cid, member in self.owner.items() if member in replaced and cid in self.orders
        ]
        if not held:
            return BrokerReport()
        self.log.warning("{} orders were held by replaced members {}", len(held), sorted(replaced))
        now = self.clock()
        for cid in held:
            self.unknown.setdefault(cid, now)
            try:
                await self._call(self.owner[cid], "track", self.orders[cid])
            except FluxtradeError as error:
                self.log.warning("could not track {} on {}: {}", cid, self.owner[cid], error)
        reports = await asyncio.gather(*(self._look_up(cid, LOST_MEMBER_REASON) for cid in held))
        return _merge(reports)

    # one call, recorded ---------------------------------------------------------------------

    async def _call(self, member: str, method: str, *args: Any, cid: str | None = None) -> Any:
        """One call to one member: acknowledgements out, journal and learning in, errors raised."""
        assert self.pool is not None
        acks = tuple(self.acks.pop(member, ()))
        answer = await self.pool.call(
            member, method, args, timeout_s=self.call_timeout_s, acks=acks
        )
        pending = list(acks if not answer.incarnation else ()) + list(answer.seqs)
        if pending:
            self.acks.setdefault(member, []).extend(pending)
        broker = broker_of(member)
        for diff in answer.api_changes:
            self.api.record(broker, diff)
        if method != "track":
            self._observe(
                broker, member, method, answer.value, answer.error, answer.latency_ms, cid
            )
        if answer.error is not None:
            raise answer.error
        return answer.value

    def _observe(
        self,
        broker: str,
        member: str,
        method: str,
        value: Any,
        error: FluxtradeError | None,
        latency_ms: float,
        cid: str | None,
    ) -> None:
        fee = sum(f.fee for f in value.fills) if isinstance(value, BrokerReport) else 0.0
        if error is None:
            self.journal.response(
                broker, method, latency_ms, fee=fee, client_order_id=cid, member=member
            )
        else:
            self.journal.error(broker, method, latency_ms, error, client_order_id=cid)
            self.log.warning("{} {} failed: {}", member, method, error)
        venue_fine = not isinstance(error, TemporaryError)
        self.tracker.record_response(broker, latency_ms, venue_fine, fee)
        self.venue_health.record(broker, success=venue_fine, latency_ms=latency_ms)

    def _learn(self) -> None:
        """Fresh score and retry schedule per broker from its recent record (and training)."""
        for name in self.counts:
            metrics = self.tracker.metrics(name)
            if metrics.count == 0:
                continue
            recommendation = self.intelligence.update_recommendations(
                name, metrics, self.patterns.get(name), self.recovery.get(name),
                self.trained_avoid.get(name, ()),
            )
            self.retry.set_params(name, recommendation.retry)

    # what the desk is told ------------------------------------------------------------------

    def _absorb(self, reports: Iterable[BrokerReport]) -> BrokerReport:
        """New fills once each, then the order updates the desk's state table accepts."""
        reports = list(reports)
        fills = [f for r in reports for f in r.fills if self._new_fill(f)]
        now = self.clock()
        orders = [step for r in reports for o in r.orders for step in self._steps(o, now)]
        return BrokerReport(orders=tuple(orders), fills=tuple(fills))

    def _new_fill(self, fill: Fill) -> bool:
        cid = fill.client_order_id
        if cid in self.orders:
            seen = self.fill_ids.setdefault(cid, set())
            if fill.fill_id in seen:
                return False
            seen.add(fill.fill_id)
            self.filled[cid] = self.filled.get(cid, 0.0) + fill.quantity
        self.journal.fill(fill.broker, fill)
        self.counts.setdefault(fill.broker, Counter())["fills"] += 1
        self.fees[fill.broker] = self.fees.get(fill.broker, 0.0) + fill.fee
        return True

    def _steps(self, order: Order, now: float) -> list[Order]:
        """The updates to pass on for one broker answer about an order (possibly none)."""
        cid = order.client_order_id
        known = self.orders.get(cid)
        if known is None:
            return [order]
        order = self._capped(order)
        if not _newer(known, order):
            return []
        steps = [order]
        if known.status is OrderStatus.NEW and order.status in FILLED_STATES:
            steps.insert(0, order.model_copy(update={"status": OrderStatus.ACCEPTED}))
        self.orders[cid] = order
        if order.status is OrderStatus.UNKNOWN:
            self.unknown.setdefault(cid, now)
        else:
            self.unknown.pop(cid, None)
        if order.broker is not None:
            for step in steps:
                self.journal.order(order.broker, step)
        if order.status.terminal:
            self._forget(cid)
        return steps

    def _capped(self, order: Order) -> Order:
        """Never claim more filled quantity than the fills the desk has been given: the rest
        arrives with a later sync, and the order stays live until it has."""
        delivered = self.filled.get(order.client_order_id, 0.0)
        if order.filled_quantity <= delivered + 1e-12 * max(order.request.quantity, 1.0):
            return order
        status = OrderStatus.ACCEPTED if delivered <= 0 else OrderStatus.PARTIALLY_FILLED
        return order.model_copy(update={"status": status, "filled_quantity": delivered})

    def _forget(self, cid: str) -> None:
        for table in (self.orders, self.owner, self.unknown, self.filled, self.fill_ids):
            table.pop(cid, None)

    # observation ----------------------------------------------------------------------------

    def extra_metrics(self) -> dict[str, float]:
        out = {
            "brokers_down": float(
                sum(self.venue_health.status(b) is HealthState.DOWN for b in self.counts)
            ),
            "unknown_orders": float(len(self.unknown)),
            "live_orders": float(len(self.orders)),
        }
        for name, counts in self.counts.items():
            metrics = self.tracker.metrics(name)
            out |= {
                f"{name}_routed": float(counts["routed"]),
                f"{name}_fills": float(counts["fills"]),
                f"{name}_fees": self.fees.get(name, 0.0),
                f"{name}_score": self.intelligence.score(name),
                f"{name}_health": HEALTH_LEVEL[self.venue_health.status(name)],
                f"{name}_success_rate": metrics.success_rate,
                f"{name}_p50_latency_ms": metrics.p50_latency_ms,
                f"{name}_api_changes": float(len(self.api.changes(name))),
            }
        return out

    def on_message(self, message: AgentMessage) -> dict[str, Any]:
        """``brokers``: each broker's health, score, retry schedule and flags.
        ``clear_flags`` (payload ``broker``): a human has looked at a flagged broker.
        COMMAND ``trainer.deploy``: the trainer's recommendations per broker."""
        if message.kind is MessageKind.COMMAND and message.topic == TRAINER_DEPLOY_TOPIC:
            return self.deploy(DeployCommand.model_validate(message.payload))
        if message.topic == "clear_flags":
            broker = str(message.payload["broker"])
            self.venue_health.clear(broker)
            return {"broker": broker, "health": self.venue_health.status(broker).value}
        if message.topic == "brokers":
            return {
                name: {
                    "health": self.venue_health.status(name).value,
                    "flags": self.venue_health.flags(name),
                    "score": self.intelligence.score(name),
                    "retry": self.retry.params(name).model_dump(mode="json"),
                    "restricted": sorted(self.router.restricted.get(name, ())),
                }
                for name in self.counts
            }
        return super().on_message(message)

    def deploy(self, command: DeployCommand) -> dict[str, Any]:
        """Install a trained version's recommendations: score, windows to avoid, retry schedule.

        Each broker's recommendation is applied exactly as sent; live learning then goes on from
        it (scores and retry schedules follow the broker's record, the trained windows to avoid
        stay until the next deployment). A broker the version does not name loses its trained
        windows: a version is the whole of the trained advice (version 0 is none).

        Raises:
            ConfigError: Not the adapters agent's command, an unknown broker or an invalid
                recommendation; nothing is applied.
        """
        if command.agent != "adapters":
            raise ConfigError(f"the adapters agent runs its brokers, not {command.agent!r}")
        if self.deployment is not None and self.deployment.deployment_id == command.deployment_id:
            return {"version": self.deployment.version, "brokers": sorted(self.trained_avoid)}
        raw = command.params["recommendations"]
        unknown = sorted(set(raw) - set(self.counts))
        if unknown:
            raise ConfigError(f"trainer.deploy: unknown brokers {unknown}")
        recommendations = {b: Recommendation.model_validate(r) for b, r in raw.items()}
        mismatched = sorted(b for b, r in recommendations.items() if r.broker != b)
        if mismatched:
            raise ConfigError(f"trainer.deploy: recommendations filed under others {mismatched}")
        self.intelligence.restore(
            {b: r.model_dump(mode="json") for b, r in recommendations.items()}
        )
        for broker, recommendation in recommendations.items():
            self.retry.set_params(broker, recommendation.retry)
        self.trained_avoid = {b: r.avoid for b, r in recommendations.items()}
        self.deployment = command
        self.log.info(
            "{} of broker recommendations version {}: {}", command.kind, command.version,
            {b: round(r.score, 3) for b, r in recommendations.items()} or "none",
        )
        return {"version": command.version, "brokers": sorted(recommendations)}

    # persistence ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        assert self.pool is not None
        now = self.clock()
        return {
            "owner": dict(self.owner),
            "orders": {cid: o.model_dump(mode="json") for cid, o in self.orders.items()},
            "unknown": {cid: now - since for cid, since in self.unknown.items()},
            "filled": dict(self.filled),
            "fill_ids": {cid: sorted(ids) for cid, ids in self.fill_ids.items()},
            "acks": {member: list(seqs) for member, seqs in self.acks.items()},
            "counts": {name: dict(c) for name, c in self.counts.items()},
            "fees": dict(self.fees),
            "pool": self.pool.snapshot(),
            "health": self.venue_health.snapshot(),
            "performance": self.tracker.snapshot(),
            "intelligence": self.intelligence.snapshot(),
            "retry": self.retry.snapshot(),
            "api": self.api.snapshot(),
            "router": self.router.snapshot(),
            "trained_avoid": {
                b: [w.model_dump(mode="json") for w in windows]
                for b, windows in self.trained_avoid.items()
            },
            "deployment": self.deployment.model_dump(mode="json") if self.deployment else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.pool is not None
        now = self.clock()
        self.owner.clear()
        self.owner.update(state["owner"])
        self.orders = {cid: Order.model_validate(o) for cid, o in state["orders"].items()}
        self.unknown = {cid: now - age for cid, age in state["unknown"].items()}
        self.filled = dict(state["filled"])
        self.fill_ids = {cid: set(ids) for cid, ids in state["fill_ids"].items()}
        self.acks = {member: list(seqs) for member, seqs in state["acks"].items()}
        self.counts = {name: Counter(c) for name, c in state["counts"].items()}
        self.fees = dict(state["fees"])
        self.pool.restore(state["pool"])
        self.venue_health.restore(state["health"])
        self.tracker.restore(state["performance"])
        self.intelligence.restore(state["intelligence"])
        self.retry.restore(state["retry"])
        self.api.restore(state["api"])
        self.router.restore(state["router"])
        self.trained_avoid = {
            b: tuple(AvoidWindow.model_validate(w) for w in windows)
            for b, windows in state.get("trained_avoid", {}).items()
        }
        if state.get("deployment"):
            self.deployment = DeployCommand.model_validate(state["deployment"])


def _newer(known: Order, order: Order) -> bool:
    """Whether a broker's answer moves the desk's order forward (not stale, not a repeat)."""
    if order.status is known.status:
        return order.filled_quantity > known.filled_quantity * (1 + 1e-12)
    if known.status is OrderStatus.NEW and order.status in FILLED_STATES:
        return True
    return order.status in ORDER_TRANSITIONS[known.status]


def _merge(reports: Iterable[BrokerReport]) -> BrokerReport:
    reports = list(reports)
    return BrokerReport(
        orders=tuple(o for r in reports for o in r.orders),
        fills=tuple(f for r in reports for f in r.fills),
    )
