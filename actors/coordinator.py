"""The coordinator actor: supervises the agents and drives the cycle in :mod:`cycle.steps`.

It looks every agent up by name (they are created by the driver, so a coordinator restart finds
them again), gives the runner a gateway that fans calls out and gathers them once with a timeout,
and exports cycle metrics through ``ray.util.metrics`` for the dashboard and Prometheus.
Commands (pause, resume, halt, status) run in their own concurrency group so they are answered
while a cycle is in flight; a halt takes effect before the next step that sends orders.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError
from ray.util import metrics

from cycle.config import ROLES, FluxtradeConfig
from cycle.messages import AgentMessage, HealthReport, StepOutcome, StrategySwap, utc_now
from cycle.report import CycleReport, RunSummary
from cycle.steps import Call, CycleRunner
from tuning.reevaluation import ReevaluationPolicy, ReevaluationTrigger


class RayGateway:
    """Agents as named actors: submit everything, then one ``ray.wait`` with a timeout."""

    def __init__(self, config: FluxtradeConfig) -> None:
        self.handles = {role: ray.get_actor(role, namespace=config.ray.namespace) for role in ROLES}
        self.trainer = (
            ray.get_actor("trainer", namespace=config.ray.namespace)
            if config.trainer.enabled else None
        )

    def _handle(self, role: str) -> Any:
        """The trainer is reached like an agent but is not one of the supervised cycle roles."""
        return self.trainer if role == "trainer" else self.handles[role]

    def submit(self, calls: Sequence[Call], market_flux: float | None) -> list[tuple[Call, Any]]:
        return [
            (c, self._handle(c.role).invoke.remote(c.operation, c.payload, market_flux))
            for c in calls
        ]

    def gather(self, pending: list[tuple[Call, Any]], timeout_s: float) -> list[StepOutcome]:
        refs = [ref for _, ref in pending]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        done = set(ready)
        outcomes = []
        for call, ref in pending:
            if ref not in done:
                outcomes.append(_failed(call, f"no answer within {timeout_s}s", "TimeoutError"))
                continue
            try:
                outcomes.append(ray.get(ref))
            except RayError as error:
                outcomes.append(_failed(call, f"actor lost: {type(error).__name__}", type(error).__name__))
        return outcomes

    def _fan_out(self, method: str, timeout_s: float) -> dict[str, Any]:
        refs = {role: getattr(h, method).remote() for role, h in self.handles.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
        done = set(ready)
        answers: dict[str, Any] = {}
        for role, ref in refs.items():
            if ref not in done:
                answers[role] = f"no answer within {timeout_s}s"
                continue
            try:
                answers[role] = ray.get(ref)
            except RayError as error:
                answers[role] = f"actor lost: {type(error).__name__}"
        return answers

    def health(self, timeout_s: float) -> dict[str, HealthReport | str]:
        return self._fan_out("health", timeout_s)

    def trainer_health(self, timeout_s: float) -> HealthReport | str:
        """The trainer's health, for the run summary (it is not a supervised cycle role)."""
        assert self.trainer is not None
        try:
            return ray.get(self.trainer.health.remote(), timeout=timeout_s)
        except GetTimeoutError:
            return f"no answer within {timeout_s}s"
        except RayError as error:
            return f"actor lost: {type(error).__name__}"

    def snapshots(self, timeout_s: float) -> dict[str, dict[str, Any]]:
        return {r: s for r, s in self._fan_out("snapshot", timeout_s).items() if isinstance(s, dict)}

    def restore(self, role: str, snapshot: dict[str, Any], cycle: int, timeout_s: float) -> bool:
        try:
            return ray.get(self.handles[role].restore.remote(snapshot, cycle), timeout=timeout_s)
        except (RayActorError, GetTimeoutError):
            return False

    def message(self, role: str, message: AgentMessage, timeout_s: float) -> AgentMessage:
        return ray.get(self.handles[role].handle.remote(message), timeout=timeout_s)


def _failed(call: Call, error: str, error_type: str) -> StepOutcome:
    return StepOutcome(
        agent_id=call.role, operation=call.operation, ok=False, error=error, error_type=error_type,
        latency_ms=0.0,
    )


class Coordinator:
    """Drives cycles on request from the driver, one at a time."""

    def __init__(self, config: FluxtradeConfig, run_id: str) -> None:
        self.config = config
        self.run_id = run_id
        self.gateway = RayGateway(config)
        self.runner = CycleRunner(config, self.gateway, run_id)
        self.paused = False
        self.cancel_requested = ""
        self.reevaluation = ReevaluationTrigger(
            ReevaluationPolicy(bar_seconds=config.data.timeframe_seconds)
        )
        self.reevaluation_due = ""
        self.step_ms: dict[str, list[float]] = {}
        tags = ("run",)
        self.cycle_ms = metrics.Histogram(
            "fluxtrade_cycle_duration_ms", "Wall time of one cycle",
            boundaries=[5, 10, 20, 50, 100, 200, 500, 1000, 5000], tag_keys=tags,
        )
        self.orders = metrics.Counter("fluxtrade_orders", "Orders sent", tag_keys=tags)
        self.fills = metrics.Counter("fluxtrade_fills", "Fills booked", tag_keys=tags)
        self.errors = metrics.Counter("fluxtrade_agent_errors", "Failed agent calls", tag_keys=("run", "role"))
        self.equity = metrics.Gauge("fluxtrade_equity", "Marked equity", tag_keys=tags)
        self.fill_latency = metrics.Histogram(
            "fluxtrade_broker_latency_ms", "Broker latency of each fill",
            boundaries=[1, 2, 5, 10, 20, 50, 100, 250, 1000], tag_keys=tags,
        )
        for metric in (self.cycle_ms, self.orders, self.fills, self.equity, self.fill_latency):
            metric.set_default_tags({"run": run_id})
        self.errors.set_default_tags({"run": run_id})
        self._load_snapshots()

    def _load_snapshots(self) -> None:
        """A restarted coordinator continues the run's cycle count and keeps its snapshots."""
        ledger = self.gateway.handles["ledger"]
        saved = ray.get(ledger.invoke.remote("latest_snapshots", self.run_id)).output or {}
        self.runner.state.snapshots = {role: (c, s) for role, (c, s) in saved.items()}
        self.runner.state.cycle = max((c for c, _ in saved.values()), default=0)

    def start(self) -> bool:
        """Record the run in the ledger; when resuming a run, fresh agents get their snapshots."""
        ledger = self.gateway.handles["ledger"]
        ray.get(ledger.invoke.remote("start_run", {
            "run_id": self.run_id, "config_hash": self.config.content_hash(),
            "config": self.config.model_dump(mode="json", by_alias=True),
            "started_at": utc_now().isoformat(),
        }))
        for role, (cycle, snapshot) in self.runner.state.snapshots.items():
            self.gateway.restore(role, snapshot, cycle, self.config.ray.step_timeout_s)
        return bool(self.runner.state.snapshots)

    def run_cycle(self) -> CycleReport | None:
        """One cycle; ``None`` while paused or once the data is exhausted."""
        if self.cancel_requested:
            self.runner.cancel_all(self.cancel_requested)
            self.cancel_requested = ""
        if self.paused or self.runner.state.exhausted:
            return None
        report = self.runner.run_cycle()
        self.cycle_ms.observe(report.duration_ms)
        if report.orders_sent:
            self.orders.inc(report.orders_sent)
        if report.fills:
            self.fills.inc(report.fills)
        self.equity.set(report.equity)
        for latency in report.fill_latency_ms:
            self.fill_latency.observe(latency)
        for role in report.degraded:
            self.errors.inc(1, tags={"role": role})
        for step, ms in report.step_ms.items():
            self.step_ms.setdefault(step, []).append(ms)
        for reason in self.runner.state.reevaluation_requests:
            self.reevaluation.request(f"trainer: {reason}")
        self.runner.state.reevaluation_requests.clear()
        due = self.reevaluation.observe(report.equity)
        if due:
            self.reevaluation_due = f"cycle {report.cycle}: {due}"
        return report

    @ray.method(concurrency_group="health")
    def request_swap(self, swap: StrategySwap) -> None:
        """The meta-agent's choice, applied before the next cycle sees a bar (see CycleRunner)."""
        self.runner.request_swap(swap)
        self.reevaluation_due = ""

    @ray.method(concurrency_group="health")
    def pause(self) -> None:
        self.paused = True

    @ray.method(concurrency_group="health")
    def resume(self, reset_kill_switch: bool = False) -> None:
        self.paused = False
        self.runner.resume(reset_kill_switch)

    @ray.method(concurrency_group="health")
    def halt(self, reason: str = "operator") -> None:
        """Kill switch: no new orders from now on, open orders cancelled before the next cycle."""
        self.runner.state.halted, self.runner.state.halt_reason = True, reason
        self.cancel_requested = f"halt: {reason}"

    @ray.method(concurrency_group="health")
    def status(self) -> dict[str, Any]:
        state = self.runner.state
        return {
            "run_id": self.run_id, "cycle": state.cycle, "paused": self.paused,
            "halted": state.halted, "halt_reason": state.halt_reason, "breaker": state.breaker,
            "exhausted": state.exhausted, "restarts": dict(state.restarts),
            "reevaluation_due": self.reevaluation_due,
        }

    def agent_health(self) -> dict[str, Any]:
        timeout = self.config.ray.health_timeout_s
        answers = self.gateway.health(timeout)
        if self.gateway.trainer is not None:
            answers["trainer"] = self.gateway.trainer_health(timeout)
        return {
            role: h.model_dump(mode="json") if isinstance(h, HealthReport) else {"state": "lost", "error_count": -1, "error": h}
            for role, h in answers.items()
        }

    def shutdown(self) -> RunSummary | None:
        """Cancel open orders so every order ends terminal, snapshot, and write the summary."""
        self.runner.cancel_all("shutdown")
        p50 = {step: statistics.median(v) for step, v in self.step_ms.items()}
        stats = self.runner.run_stats(self.agent_health(), p50)
        if stats is None:
            return None
        outcome = ray.get(self.gateway.handles["reporter"].invoke.remote("summary", stats))
        if self.gateway.trainer is not None:
            self.runner.flush_trainer()
            stop = self.gateway.trainer.stop.remote()
            ray.get(stop, timeout=self.config.trainer.stop_timeout_s + 10)
        for handle in self.gateway.handles.values():
            handle.shutdown.remote()
        return outcome.output
