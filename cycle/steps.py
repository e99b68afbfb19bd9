"""The nine steps of a cycle, as plain code over a :class:`Gateway` to the agents.

The runner never touches Ray: the coordinator actor gives it a gateway of actor handles, tests give
it one of plain agents in this process. Data flows one way: feeds → validation → conditions and
intelligence → strategy → risk → execution → adapters → ledger and reporter.

Policy, from the error tree: a failed optional agent degrades its step (recorded with the reason)
and the cycle goes on; when a critical agent fails, no new orders go out this cycle. Orders, fills
and the account reach the ledger before the step that produced them is acknowledged: a broker
report is recorded before the execution agent books it, and client order ids are recorded before
the orders are sent. A report that could not be booked is kept and booked again next cycle
(the execution agent ignores fills it has already booked).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from cycle.config import ROLES, FluxtradeConfig
from cycle.ledger import LedgerBatch, LedgerEvent
from cycle.messages import (
    STRATEGY_SWAP_TOPIC,
    TRAINER_DEPLOY_TOPIC,
    AccountState,
    AgentMessage,
    Analysis,
    ApplyInputs,
    BrokerCall,
    BrokerReport,
    Conditions,
    CycleOutcome,
    DeployAck,
    DeployCommand,
    ExecutionPlan,
    ExecutionState,
    FailureInputs,
    FailureReport,
    FeesInputs,
    HealthReport,
    LearnerInputs,
    LearnerOutput,
    MarketFrame,
    MessageKind,
    PrepareInputs,
    RiskInputs,
    RiskOutcome,
    StepOutcome,
    StrategyDecision,
    StrategyInputs,
    StrategySwap,
    TrainerBatch,
    TrainerFeedback,
    ValidatedFrame,
    utc_now,
)
from cycle.report import CycleReport, RunStats

STEPS = (
    "initialise", "sense", "analyse", "compose", "risk", "execute", "monitor", "learn", "report",
)


@dataclass(frozen=True)
class Call:
    role: str
    operation: str
    payload: Any = None


class Pending(Protocol):
    """Calls in flight; :meth:`Gateway.gather` waits for them once."""


class Gateway(Protocol):
    """How the runner reaches agents: submit a batch, gather it once, with a timeout."""

    def submit(self, calls: Sequence[Call], market_flux: float | None) -> Pending: ...

    def gather(self, pending: Pending, timeout_s: float) -> list[StepOutcome]: ...

    def health(self, timeout_s: float) -> dict[str, HealthReport | str]: ...

    def snapshots(self, timeout_s: float) -> dict[str, dict[str, Any]]: ...

    def restore(self, role: str, snapshot: dict[str, Any], cycle: int, timeout_s: float) -> bool: ...

    def message(self, role: str, message: AgentMessage, timeout_s: float) -> AgentMessage: ...


class CriticalFailure(Exception):
    """A critical agent failed: the cycle sends no new orders."""


@dataclass
class CycleState:
    """What the runner carries from one cycle to the next."""

    cycle: int = 0
    market_flux: float = 0.0
    weights: dict[str, float] | None = None
    breaker: str = "closed"
    halted: bool = False
    halt_reason: str = ""
    exhausted: bool = False
    incarnations: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    unbooked: list[BrokerReport] = field(default_factory=list)
    last_account: AccountState | None = None
    restarts: dict[str, int] = field(default_factory=dict)
    trainer_call: Pending | None = None
    trainer_sent: TrainerBatch | None = None
    trainer_outbox: list[CycleOutcome] = field(default_factory=list)
    trainer_acks: list[DeployAck] = field(default_factory=list)
    reevaluation_requests: list[str] = field(default_factory=list)
    pending_swap: StrategySwap | None = None


@dataclass
class CycleContext:
    """Everything one cycle has learned so far; steps read it and add to it."""

    cycle: int
    started: float
    step_ms: dict[str, float] = field(default_factory=dict)
    degraded: dict[str, str] = field(default_factory=dict)
    critical_failure: str = ""
    frame: ValidatedFrame | None = None
    conditions: Conditions | None = None
    analysis: Analysis | None = None
    execution: ExecutionState | None = None
    decision: StrategyDecision | None = None
    risk: RiskOutcome | None = None
    plan: ExecutionPlan | None = None
    reports: list[BrokerReport] = field(default_factory=list)
    failure: FailureReport | None = None
    events: list[LedgerEvent] = field(default_factory=list)
    orders_terminal: int = 0
    pending_analysis: Any = None
    unavailable: set[str] = field(default_factory=set)
    round_trips: int = 0


class CycleRunner:
    """Drives one cycle at a time through the nine steps."""

    def __init__(self, config: FluxtradeConfig, gateway: Gateway, run_id: str, state: CycleState | None = None) -> None:
        self.config = config
        self.gateway = gateway
        self.run_id = run_id
        self.state = state or CycleState()
        self.timeout_s = config.ray.step_timeout_s
        self.critical = {r for r in ROLES if config.agents.options_for(r).critical}
        self.log = logger.bind(agent_id="coordinator")

    # plumbing -------------------------------------------------------------------------------

    def _call(self, ctx: CycleContext, calls: Sequence[Call]) -> list[Any]:
        """Run calls in parallel; failures degrade (optional) or abort new orders (critical)."""
        live = [c for c in calls if c.role not in ctx.unavailable]
        ctx.round_trips += 1
        answers = iter(self.gateway.gather(self.gateway.submit(live, self.state.market_flux), self.timeout_s))
        values = []
        for call in calls:
            outcome = None if call.role in ctx.unavailable else next(answers)
            if outcome is not None and self._fresh_incarnation(ctx, call.role, outcome):
                outcome = outcome.model_copy(update={"ok": False, "error": "agent restarted mid-cycle; its answer was discarded"})
            if outcome is not None and outcome.ok:
                values.append(outcome.output)
                continue
            reason = f"{call.operation}: {outcome.error if outcome else 'agent unavailable this cycle'}"
            ctx.degraded[call.role] = reason
            self.log.warning("{} degraded: {}", call.role, reason)
            if call.role in self.critical:
                ctx.critical_failure = ctx.critical_failure or f"{call.role} {reason}"
            values.append(None)
        return values

    def _fresh_incarnation(self, ctx: CycleContext, role: str, outcome: StepOutcome) -> bool:
        """True when the answer came from a new incarnation, which is then restored at once."""
        known = self.state.incarnations.get(role)
        if outcome.incarnation is None or known is None or outcome.incarnation == known:
            return False
        self.state.incarnations[role] = outcome.incarnation
        self._restore(ctx, role)
        return True

    def _one(self, ctx: CycleContext, call: Call) -> Any:
        return self._call(ctx, [call])[0]

    @contextmanager
    def _step(self, ctx: CycleContext, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            ctx.step_ms[name] = ctx.step_ms.get(name, 0.0) + (time.perf_counter() - started) * 1000

    def _record(self, ctx: CycleContext, batch: LedgerBatch) -> bool:
        return self._one(ctx, Call("ledger", "record", batch)) is not None

    def _book(self, ctx: CycleContext, report: BrokerReport, close_cycle: bool = False) -> None:
        """Ledger first, then the execution agent; a report not booked waits for next cycle."""
        if not self._record(ctx, LedgerBatch(run_id=self.run_id, cycle=ctx.cycle, orders=report.orders, fills=report.fills)):
            self.state.unbooked.append(report)
            return
        marks = ctx.frame.closes if ctx.frame else {}
        stamp = ctx.frame.timestamp if ctx.frame else None
        state = self._one(ctx, Call("execution", "apply", ApplyInputs(cycle=ctx.cycle, timestamp=stamp, report=report, marks=marks)))
        if state is None:
            self.state.unbooked.append(report)
            return
        ctx.execution = state
        ctx.reports.append(report)
        ctx.orders_terminal += len(state.terminal_orders)

    # the cycle ------------------------------------------------------------------------------

    def run_cycle(self) -> CycleReport:
        self.state.cycle += 1
        ctx = CycleContext(cycle=self.state.cycle, started=time.perf_counter())
        for name, step in (
            ("initialise", self.initialise),
            ("sense", self.sense),
            ("analyse", self.analyse),
            ("compose", self.compose),
            ("risk", self.evaluate_risk),
            ("execute", self.execute),
            ("monitor", self.monitor),
            ("learn", self.learn),
        ):
            with self._step(ctx, name):
                step(ctx)
            if self.state.exhausted and name == "sense":
                break
        with self._step(ctx, "report"):
            report = self.report(ctx)
        return report.model_copy(update={
            "step_ms": dict(ctx.step_ms),
            "duration_ms": (time.perf_counter() - ctx.started) * 1000,
        })

    def initialise(self, ctx: CycleContext) -> None:
        """Step 1: health of every agent; a restarted agent gets its last snapshot back."""
        ctx.round_trips += 1
        for role, health in self.gateway.health(self.config.ray.health_timeout_s).items():
            if isinstance(health, str):
                ctx.unavailable.add(role)
                ctx.degraded[role] = f"health: {health}"
                if role in self.critical:
                    ctx.critical_failure = ctx.critical_failure or f"{role} did not answer its health check"
                continue
            known = self.state.incarnations.get(role)
            if known is not None and known != health.incarnation:
                self._restore(ctx, role)
            self.state.incarnations[role] = health.incarnation
            if health.state.value == "faulted":
                self._restore(ctx, role)
        if self.state.unbooked:
            for report in self.state.unbooked[:]:
                self.state.unbooked.remove(report)
                self._book(ctx, report)
        self._apply_swap(ctx)

    def request_swap(self, swap: StrategySwap) -> None:
        """Queue the meta-agent's choice; the next cycle applies it before it sees a bar."""
        self.state.pending_swap = swap

    def _apply_swap(self, ctx: CycleContext) -> None:
        """Hand a pending strategy swap to the strategy engine, between cycles.

        It runs after the health checks (a restarted engine is restored first, so the restore
        cannot undo the swap) and before any bar of the cycle. Positions and open orders belong
        to the execution agent and are not touched: the new strategy's targets take over from
        this cycle's compose step. The ledger records the swap, or the engine's refusal; an
        engine that cannot be reached keeps the swap pending for the next cycle.
        """
        swap, self.state.pending_swap = self.state.pending_swap, None
        if swap is None:
            return
        message = AgentMessage(
            kind=MessageKind.COMMAND, topic=STRATEGY_SWAP_TOPIC, sender="coordinator",
            payload=swap.model_dump(mode="json"),
        )
        try:
            if "strategy" in ctx.unavailable:
                raise ConnectionError("strategy engine unavailable this cycle")
            reply = self.gateway.message("strategy", message, self.timeout_s)
        except Exception as error:  # noqa: BLE001 - an unreachable engine must not stop the cycle
            self.state.pending_swap = self.state.pending_swap or swap
            self.log.warning("strategy swap postponed: {}", error)
            return
        payload = {**swap.model_dump(mode="json"), **reply.payload}
        if not reply.ok:
            payload["error"] = reply.error
        self.log.info("strategy swap {}: {}", "applied" if reply.ok else "refused", payload)
        ctx.events.append(LedgerEvent(
            kind="strategy_swap" if reply.ok else "strategy_swap_refused", payload=payload
        ))

    def _restore(self, ctx: CycleContext, role: str) -> None:
        self.state.restarts[role] = self.state.restarts.get(role, 0) + 1
        saved = self.state.snapshots.get(role)
        if saved is None:
            ctx.events.append(LedgerEvent(kind="agent_restarted", payload={"role": role, "restored": False}))
            return
        cycle, snapshot = saved
        ok = self.gateway.restore(role, snapshot, cycle, self.timeout_s)
        self.log.warning("{} restarted; restored snapshot of cycle {}: {}", role, cycle, ok)
        ctx.events.append(LedgerEvent(kind="agent_restarted", payload={"role": role, "restored": ok, "snapshot_cycle": cycle}))
        if not ok:
            ctx.degraded[role] = "restart: snapshot not restored"

    def sense(self, ctx: CycleContext) -> None:
        """Step 2: bars, validation, market conditions and the account after last cycle's fills."""
        raw: MarketFrame | None = self._one(ctx, Call("feeds", "step", ctx.cycle))
        if raw is None:
            return
        if raw.exhausted and not raw.bars:
            self.state.exhausted = True
            return
        ctx.frame = self._one(ctx, Call("validation", "step", raw))
        if ctx.frame is None:
            return
        if "intelligence" not in ctx.unavailable:
            ctx.pending_analysis = self.gateway.submit(
                [Call("intelligence", "step", ctx.frame)], self.state.market_flux
            )
        conditions, synced = self._call(ctx, [Call("conditions", "step", ctx.frame), Call("adapters", "sync", ctx.frame.bars)])
        if conditions is not None:
            ctx.conditions = conditions
            self.state.market_flux = conditions.market_flux
        if synced is not None:
            self._book(ctx, synced)
        if ctx.execution is None:
            ctx.execution = self._one(ctx, Call("execution", "account", False))

    def analyse(self, ctx: CycleContext) -> None:
        """Step 3: indicators and patterns (submitted during step 2, gathered here)."""
        if ctx.frame is None or ctx.pending_analysis is None:
            return
        outcome = self.gateway.gather(ctx.pending_analysis, self.timeout_s)[0]
        if outcome.ok and not self._fresh_incarnation(ctx, "intelligence", outcome):
            ctx.analysis = outcome.output
        else:
            ctx.degraded["intelligence"] = f"step: {outcome.error or 'restarted mid-cycle'}"

    def compose(self, ctx: CycleContext) -> None:
        """Step 4: strategies blended into target positions."""
        if ctx.frame is None or ctx.execution is None:
            return
        ctx.decision = self._one(ctx, Call("strategy", "step", StrategyInputs(
            frame=ctx.frame, conditions=ctx.conditions, analysis=ctx.analysis,
            account=ctx.execution.account, weights=self.state.weights,
        )))

    def _halt_reason(self, ctx: CycleContext) -> str:
        if self.state.halted:
            return self.state.halt_reason or "halted by command"
        if self.state.breaker == "open":
            return "circuit breaker open"
        if ctx.critical_failure:
            return f"critical agent failed: {ctx.critical_failure}"
        return ""

    def evaluate_risk(self, ctx: CycleContext) -> None:
        """Step 5: limits, sizing and the kill switch turn targets into approved orders."""
        if ctx.frame is None or ctx.execution is None:
            return
        reason = self._halt_reason(ctx)
        ctx.risk = self._one(ctx, Call("risk", "step", RiskInputs(
            decision=ctx.decision, account=ctx.execution.account, frame=ctx.frame,
            conditions=ctx.conditions, open_orders=ctx.execution.open_orders,
            halted=bool(reason), halt_reason=reason,
        )))

    def execute(self, ctx: CycleContext) -> None:
        """Step 6: ids to the ledger, then cancels and new orders to the brokers, then booking."""
        if ctx.execution is None:
            return
        intents = ctx.risk.intents if ctx.risk and not self._halt_reason(ctx) else ()
        ctx.plan = self._one(ctx, Call("execution", "prepare", PrepareInputs(cycle=ctx.cycle, intents=intents)))
        if ctx.plan is None:
            return
        decisions = ctx.risk.decisions if ctx.risk else ()
        if not self._record(ctx, LedgerBatch(run_id=self.run_id, cycle=ctx.cycle, orders=ctx.plan.new_orders, risk_decisions=decisions)):
            ctx.plan = ctx.plan.model_copy(update={"new_orders": ()})
        self.send(ctx, ctx.plan)

    def send(self, ctx: CycleContext, plan: ExecutionPlan) -> None:
        if not plan.new_orders and not plan.cancels:
            return
        report = self._one(ctx, Call("adapters", "execute", plan))
        if report is not None:
            self._book(ctx, report)

    def monitor(self, ctx: CycleContext) -> None:
        """Step 7: fees and PnL net of fees, resources, error rates, the circuit breaker."""
        if ctx.execution is None:
            return
        fills = tuple(f for r in ctx.reports for f in r.fills)
        rejections = sum(1 for r in ctx.reports for o in r.orders if o.status.value == "rejected")
        sent = len(ctx.plan.new_orders) if ctx.plan else 0
        _, failure = self._call(ctx, [
            Call("fees", "step", FeesInputs(cycle=ctx.cycle, fills=fills, account=ctx.execution.account)),
            Call("failure", "step", FailureInputs(
                cycle=ctx.cycle, steps=len(ROLES), step_errors=len(ctx.degraded),
                orders=sent, rejections=min(rejections, sent),
            )),
        ])
        if failure is not None:
            ctx.failure = failure
            self.state.breaker = failure.breaker

    def learn(self, ctx: CycleContext) -> None:
        """Step 8: strategy weights follow the PnL of each strategy's own signals.

        With the trainer enabled, the deployments it has queued are delivered first (so this
        cycle's learner output already carries new weights), then the cycle's outcome goes to
        the trainer without waiting for it: at most one call is in flight, its answer is read
        next cycle if it is ready, and outcomes produced meanwhile wait in an outbox.
        """
        if ctx.frame is None:
            return
        if self.config.trainer.enabled:
            self._trainer_feedback(ctx)
        output: LearnerOutput | None = self._one(ctx, Call("learner", "step", LearnerInputs(
            cycle=ctx.cycle, decision=ctx.decision, closes=ctx.frame.closes,
        )))
        if output is not None:
            self.state.weights = output.weights
        if self.config.trainer.enabled:
            self._trainer_outcome(ctx, ctx.frame, output)

    def _trainer_feedback(self, ctx: CycleContext) -> None:
        """Collect the trainer's last answer if it is ready: deliver deployments, keep events."""
        state = self.state
        if state.trainer_call is None:
            return
        answer = self.gateway.gather(state.trainer_call, 0.0)[0]
        if not answer.ok and answer.error_type == "TimeoutError":
            return
        state.trainer_call = None
        if not answer.ok:
            if state.trainer_sent is not None:
                state.trainer_outbox[:0] = state.trainer_sent.outcomes
                state.trainer_acks[:0] = state.trainer_sent.acks
            ctx.degraded["trainer"] = f"observe: {answer.error}"
            return
        state.trainer_sent = None
        feedback: TrainerFeedback = answer.output
        for command in feedback.deployments:
            ack = self._deliver(command)
            if ack is not None:
                state.trainer_acks.append(ack)
        ctx.events.extend(
            LedgerEvent(kind=e.kind, payload={"cycle": e.cycle, **e.payload})
            for e in feedback.events
        )
        state.reevaluation_requests.extend(
            e.payload["alert"]["reason"]
            for e in feedback.events if e.kind == "meta_reevaluation_requested"
        )

    def _deliver(self, command: DeployCommand) -> DeployAck | None:
        """A deployment to its agent as a COMMAND; None when the agent could not be reached
        (the trainer offers it again next cycle), an ack with the error when it refused."""
        message = AgentMessage(
            kind=MessageKind.COMMAND, topic=TRAINER_DEPLOY_TOPIC, sender="trainer",
            payload=command.model_dump(mode="json"),
        )
        try:
            reply = self.gateway.message(command.target_role, message, self.timeout_s)
        except Exception as error:  # noqa: BLE001 - an unreachable agent must not stop the cycle
            self.log.warning("deployment to {} not delivered: {}", command.target_role, error)
            return None
        return DeployAck(deployment_id=command.deployment_id, ok=reply.ok, error=reply.error)

    def _trainer_outcome(
        self, ctx: CycleContext, frame: ValidatedFrame, output: LearnerOutput | None
    ) -> None:
        """The cycle's outcome into the outbox; sent at once unless a call is still in flight."""
        state = self.state
        stamp = frame.timestamp
        calls = [] if stamp is None else [
            BrokerCall(broker=f.broker, at=stamp, success=True, latency_ms=f.latency_ms,
                       slippage_bps=f.slippage_bps, fee=f.fee)
            for r in ctx.reports for f in r.fills
        ] + [
            BrokerCall(broker=o.broker, at=stamp, success=False, error_type="rejected")
            for r in ctx.reports for o in r.orders
            if o.status.value == "rejected" and o.broker
        ]
        state.trainer_outbox.append(CycleOutcome(
            cycle=ctx.cycle, market_time=stamp,
            strategy_pnl=dict(output.last_pnl) if output else {},
            weights=dict(state.weights or {}),
            ohlcv={s: (b.open, b.high, b.low, b.close, b.volume) for s, b in frame.bars.items()},
            broker_calls=tuple(calls),
            equity=ctx.execution.account.equity if ctx.execution else None,
            forecasts=dict(ctx.analysis.forecasts) if ctx.analysis else {},
            regimes=(
                {s: c.regime for s, c in ctx.conditions.by_symbol.items()}
                if ctx.conditions else {}
            ),
        ))
        del state.trainer_outbox[:-self.config.trainer.outbox_limit]
        if state.trainer_call is not None:
            return
        batch = TrainerBatch(outcomes=tuple(state.trainer_outbox), acks=tuple(state.trainer_acks))
        state.trainer_outbox.clear()
        state.trainer_acks.clear()
        state.trainer_sent = batch
        state.trainer_call = self.gateway.submit(
            [Call("trainer", "observe", batch)], state.market_flux
        )

    def flush_trainer(self) -> None:
        """At the end of a run: wait for the call in flight, then hand over the outbox."""
        state = self.state
        if state.trainer_call is not None:
            self.gateway.gather(state.trainer_call, self.timeout_s)
            state.trainer_call = None
        if state.trainer_outbox or state.trainer_acks:
            batch = TrainerBatch(
                outcomes=tuple(state.trainer_outbox), acks=tuple(state.trainer_acks)
            )
            state.trainer_outbox.clear()
            state.trainer_acks.clear()
            pending = self.gateway.submit([Call("trainer", "observe", batch)], state.market_flux)
            self.gateway.gather(pending, self.timeout_s)

    def report(self, ctx: CycleContext) -> CycleReport:
        """Step 9: close the account, snapshot every agent, write the ledger, report the cycle.

        The ledger's copy of the report cannot time its own write: the report the runner returns
        carries the complete step times.
        """
        closing = self._one(ctx, Call("execution", "account", True))
        if closing is not None:
            ctx.execution = closing
        ctx.round_trips += 1
        snapshots = {
            role: snapshot
            for role, snapshot in self.gateway.snapshots(self.timeout_s).items()
            if role not in ctx.unavailable
            and snapshot["base"]["incarnation"] == self.state.incarnations.get(role)
        }
        for role, snapshot in snapshots.items():
            self.state.snapshots[role] = (ctx.cycle, snapshot)
        report = self._cycle_report(ctx)
        account = ctx.execution.account if ctx.execution else None
        self._record(ctx, LedgerBatch(
            run_id=self.run_id, cycle=ctx.cycle, account=account,
            cycle_report=report.model_dump(mode="json"), events=tuple(ctx.events),
            snapshots=snapshots,
        ))
        self._one(ctx, Call("reporter", "step", report))
        return report

    def _cycle_report(self, ctx: CycleContext) -> CycleReport:
        if ctx.execution is not None:
            self.state.last_account = ctx.execution.account
        account = self.state.last_account
        fills = [f for r in ctx.reports for f in r.fills]
        if self.state.exhausted:
            outcome = "exhausted"
        elif self._halt_reason(ctx):
            outcome = "halted" if self.state.halted else "no_orders"
        elif ctx.degraded:
            outcome = "degraded"
        else:
            outcome = "ok"
        decisions: dict[str, int] = {}
        for d in ctx.risk.decisions if ctx.risk else ():
            key = f"{d.action}: {d.reason}"
            decisions[key] = decisions.get(key, 0) + 1
        return CycleReport(
            run_id=self.run_id,
            cycle=ctx.cycle,
            market_time=ctx.frame.timestamp if ctx.frame else None,
            started_at=utc_now(),
            duration_ms=(time.perf_counter() - ctx.started) * 1000,
            step_ms=ctx.step_ms,
            outcome=outcome,
            degraded=ctx.degraded,
            rejected_symbols=ctx.frame.rejected if ctx.frame else {},
            degraded_symbols=ctx.frame.degraded if ctx.frame else {},
            orders_sent=len(ctx.plan.new_orders) if ctx.plan else 0,
            orders_terminal=ctx.orders_terminal,
            open_orders=len(ctx.execution.open_orders) if ctx.execution else 0,
            fills=len(fills),
            fees=sum(f.fee for f in fills),
            equity=account.equity if account else 0.0,
            cash=account.cash if account else 0.0,
            net_pnl=account.equity - account.initial_cash if account else 0.0,
            drawdown=account.drawdown if account else 0.0,
            kill_switch=bool(ctx.risk and ctx.risk.kill_switch),
            breaker=self.state.breaker,
            market_flux=self.state.market_flux,
            regimes={s: c.regime for s, c in ctx.conditions.by_symbol.items()} if ctx.conditions else {},
            weights=self.state.weights or {},
            risk_decisions=decisions,
            portfolio_risk=ctx.risk.portfolio if ctx.risk else {},
            round_trips=ctx.round_trips,
            fill_latency_ms=tuple(f.latency_ms for f in fills),
        )

    # commands -------------------------------------------------------------------------------

    def halt(self, reason: str) -> int:
        """Kill switch by command: cancel every open order and send no new ones until resumed."""
        self.state.halted, self.state.halt_reason = True, reason
        return self.cancel_all(f"halt: {reason}")

    def resume(self, reset_kill_switch: bool = False) -> None:
        self.state.halted, self.state.halt_reason = False, ""
        if reset_kill_switch:
            self.gateway.message("risk", AgentMessage(kind=MessageKind.COMMAND, topic="reset_kill_switch", sender="coordinator"), self.timeout_s)

    def cancel_all(self, why: str) -> int:
        """Cancel every open order (used by halt and at shutdown) so each ends terminal."""
        ctx = CycleContext(cycle=self.state.cycle, started=time.perf_counter())
        state: ExecutionState | None = self._one(ctx, Call("execution", "account", False))
        if state is None or not state.open_orders:
            return 0
        plan = ExecutionPlan(cycle=ctx.cycle, new_orders=(), cancels=state.open_orders)
        ctx.execution = state
        self.send(ctx, plan)
        self.log.info("cancelled {} open orders ({})", len(state.open_orders), why)
        self._record(ctx, LedgerBatch(run_id=self.run_id, cycle=ctx.cycle, events=(LedgerEvent(kind="cancel_all", payload={"why": why, "orders": len(state.open_orders)}),)))
        return len(state.open_orders)

    def run_stats(self, health: dict[str, Any], step_ms_p50: dict[str, float]) -> RunStats | None:
        ctx = CycleContext(cycle=self.state.cycle, started=time.perf_counter())
        stats: RunStats | None = self._one(ctx, Call("ledger", "run_stats", self.run_id))
        return stats.model_copy(update={"agent_health": health, "step_ms_p50": step_ms_p50}) if stats else None

