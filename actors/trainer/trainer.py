"""The agent trainer: one place where every learning agent is trained, judged and versioned.

Plain logic, no Ray (the actor in :mod:`actors.trainer.actor` adds nothing but Ray):

* :meth:`Trainer.record` takes the cycle outcomes that step 8 hands over and keeps them in the
  ledger; :meth:`Trainer.feedback` answers with the deployments waiting to be delivered and the
  events (alerts, re-evaluation requests) the ledger must record.
* :meth:`Trainer.run_due` runs the sessions the :class:`TrainingPlanner` says are due, one at a
  time; :meth:`Trainer.train` runs one on request.
* A session fits a candidate on the window minus its held-out tail, scores the live version and
  the candidate on the same held-out samples, and deploys the candidate only when
  :func:`judge` says it is better by ``margin_se`` standard errors of the paired difference. A
  worse or equal candidate is never deployed.
* A deployment stores a new version (the previous one stays), makes it the active one and queues
  a :class:`DeployCommand` for the coordinator to deliver between cycles; an agent that refuses
  it keeps its old version, and the trainer's record says so. :meth:`Trainer.rollback` makes an
  earlier version active again and queues it the same way, parameters exactly as stored.
* Every deployed change's live effect is measured on the cycles that arrive after it and fed to
  the planner, which tunes learning rate and window in adaptive mode.

:class:`TrainingLoop` is the CONTINUOUS mode's background thread; :class:`TrainerAgent` wraps the
trainer in the agent contract (inline for in-process tests, with the loop for the actor).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pydantic import Field

from actors.base import Agent
from actors.trainer.adaptive import TrainingPlanner, Trigger
from actors.trainer.analytics import Analytics, MetricTrend
from actors.trainer.dashboard import render_dashboard, write_dashboard
from actors.trainer.export import Format, export_training
from actors.trainer.store import TrainerStore
from actors.trainer.strategies import FitSettings, TrainingStrategy, build_strategies
from actors.trainer.templates import template_for
from cycle.config import FluxtradeConfig
from cycle.messages import (
    CycleOutcome,
    DeployAck,
    DeployCommand,
    Frozen,
    ReevaluationRequest,
    TrainerBatch,
    TrainerEvent,
    TrainerFeedback,
    TrainingMode,
    TrainingSession,
    utc_now,
)

ROUNDING = 1e-9
"""Relative size below which a score difference is arithmetic, not learning."""

EFFECT_MIN_CYCLES = 20
"""Fewest cycles after a deployment before its live effect is measured."""

REEVALUATION_AGENTS = frozenset({"ensemble", "desk"})
"""Agents whose degradation is the desk's live performance: it triggers a meta re-evaluation."""


@dataclass(frozen=True)
class Verdict:
    """The deploy-if-better gate's decision on one candidate."""

    score_before: float | None
    score_after: float | None
    diff_se: float | None
    samples: int
    deploy: bool
    reason: str


def judge(before: np.ndarray, after: np.ndarray, margin_se: float) -> Verdict:
    """Deploy only if the candidate beats the live version on the same held-out samples.

    The gain is the mean of the paired per-sample differences; it must be positive and larger
    than ``margin_se`` of its standard errors, so a candidate no better than the live version
    (or better by what noise explains) is never deployed. A gain within floating-point rounding
    of the scores (``ROUNDING`` of their size) is no gain: re-normalising equal weights must not
    count as an improvement.
    """
    if len(before) != len(after):
        raise ValueError(f"{len(before)} live samples but {len(after)} candidate samples")
    n = len(before)
    if n < 2:
        return Verdict(None, None, None, n, False, f"only {n} held-out samples")
    diff = after - before
    gain = float(diff.mean())
    se = float(diff.std(ddof=1) / math.sqrt(n))
    rounding = ROUNDING * float(np.mean(np.abs(before) + np.abs(after)))
    deploy = gain > rounding and gain > margin_se * se
    ratio = f"{gain / se:.2f} s.e." if se > 0 else "exact"
    reason = (
        f"held-out {after.mean():.6g} vs live {before.mean():.6g} over {n} samples: gain "
        f"{gain:.3g} ({ratio}; needs > 0 and > {margin_se:g} s.e.)"
    )
    return Verdict(float(before.mean()), float(after.mean()), se, n, deploy, reason)


class TrainerStatus(Frozen):
    """What the trainer is doing, for the driver, the CLI and tests."""

    run_id: str
    cycles_observed: int = Field(ge=0)
    last_cycle: int = Field(ge=0)
    sessions: dict[str, int]
    busy: bool
    loop_alive: bool
    loop_errors: int = Field(ge=0)
    active_versions: dict[str, int]
    learning_rates: dict[str, float]
    windows: dict[str, int]
    pending_deployments: int = Field(ge=0)


class Trainer:
    """Trains every configured agent; see the module docstring. Safe to share across threads."""

    def __init__(
        self,
        config: FluxtradeConfig,
        run_id: str,
        *,
        store: TrainerStore | None = None,
        strategies: dict[str, TrainingStrategy] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.clock = clock
        self.now = now
        self.log = logger.bind(agent_id="trainer")
        self.store = store or TrainerStore(config.ledger.resolved(), run_id)
        self.templates = {a: template_for(a, config) for a in config.trainer.agents}
        artifacts = config.trainer.artifacts_folder() / run_id
        self.strategies = strategies or build_strategies(config, self.templates, artifacts)
        self.planner = TrainingPlanner(
            self.templates, config.trainer.mode, self.store.load_state("planner")
        )
        self.analytics = Analytics(
            [s.name for s in config.strategies],
            config.trainer.analytics_window,
            config.trainer.alert_drop_se,
            365 * 86400 / config.data.timeframe_seconds,
        )
        self.analytics.restore_alerts(self.store.load_state("alerts"))
        self.outcomes: list[CycleOutcome] = self.store.load_outcomes()
        self.requests: deque[tuple[str, TrainingMode]] = deque()
        self.events: list[TrainerEvent] = []
        self.busy = False
        self._lock = threading.RLock()
        self._session_lock = threading.Lock()
        self._alerts_checked = 0
        self.awaiting_effect = [
            s for s in self.store.sessions() if s.outcome == "deployed" and s.live_effect is None
        ]
        for agent, strategy in self.strategies.items():
            if self.store.active(agent) is None:
                version = self.store.add_version(
                    agent, strategy.initial_params(), None, self.now(), applied="initial"
                )
                self.store.set_active(agent, version, [])

    # outcomes in, feedback out --------------------------------------------------------------

    @property
    def last_cycle(self) -> int:
        return self.outcomes[-1].cycle if self.outcomes else 0

    def record(self, batch: TrainerBatch) -> None:
        """Keep the batch's outcomes (ledger first), apply its acks, look for degradation."""
        with self._lock:
            if batch.outcomes:
                self.store.save_outcomes(batch.outcomes)
                for outcome in batch.outcomes:
                    self._insert(outcome)
            for ack in batch.acks:
                self._ack(ack)
            step = max(self.config.trainer.analytics_window // 4, 1)
            if self.last_cycle - self._alerts_checked >= step:
                self._alerts_checked = self.last_cycle
                self._check_alerts()

    def _insert(self, outcome: CycleOutcome) -> None:
        if not self.outcomes or outcome.cycle > self.outcomes[-1].cycle:
            self.outcomes.append(outcome)
            return
        cycles = [o.cycle for o in self.outcomes]
        index = bisect_left(cycles, outcome.cycle)
        if index < len(cycles) and cycles[index] == outcome.cycle:
            self.outcomes[index] = outcome
        else:
            self.outcomes.insert(index, outcome)

    def feedback(self) -> TrainerFeedback:
        """Deployments not yet acknowledged, and the events gathered since the last answer."""
        with self._lock:
            events, self.events = tuple(self.events), []
            return TrainerFeedback(
                deployments=tuple(self.store.pending_deployments()), events=events
            )

    def _ack(self, ack: DeployAck) -> None:
        command = self.store.ack_deployment(ack.deployment_id, ack.ok, ack.error, self.now())
        if command is None:
            return
        if ack.ok:
            self.store.set_applied(command.agent, command.version, f"applied ({command.kind})")
            return
        self.log.warning(
            "{} refused {} of version {}: {}", command.target_role, command.kind,
            command.version, ack.error,
        )
        self.store.set_applied(command.agent, command.version, f"refused: {ack.error}")
        active = self.store.active(command.agent)
        if active is None or active[0] != command.version:
            return
        stack = active[1]
        if command.kind == "deploy":
            stack = stack[:-1] if stack and stack[-1] == command.replaces else stack
        else:
            stack = [*stack, command.version]
        self.store.set_active(command.agent, command.replaces, stack)

    def _check_alerts(self) -> None:
        alerts = self.analytics.alerts(self.outcomes)
        if alerts:
            self.store.save_state("alerts", self.analytics.alert_state())
        for alert in alerts:
            self.log.warning("performance alert: {}", alert.reason)
            self.events.append(TrainerEvent(
                kind="performance_alert", cycle=alert.cycle, payload=alert.model_dump(mode="json")
            ))
            if alert.agent in REEVALUATION_AGENTS:
                request = ReevaluationRequest(run_id=self.run_id, cycle=alert.cycle, alert=alert)
                self.events.append(TrainerEvent(
                    kind="meta_reevaluation_requested", cycle=alert.cycle,
                    payload=request.model_dump(mode="json"),
                ))
                self.planner.degraded("ensemble", alert.reason)
            else:
                self.planner.degraded(alert.agent, alert.reason)

    # sessions -------------------------------------------------------------------------------

    def request(self, agent: str, mode: TrainingMode = TrainingMode.BATCH) -> None:
        """Queue a session (a BATCH re-fit by default); the loop or the next run_due runs it."""
        if agent not in self.strategies:
            raise ValueError(f"{agent!r} is not trained here; trained: {sorted(self.strategies)}")
        with self._lock:
            self.requests.append((agent, TrainingMode(mode)))

    def _next_job(self) -> tuple[str, TrainingMode, Trigger, str] | None:
        with self._lock:
            if self.requests:
                agent, mode = self.requests.popleft()
                return agent, mode, "request", "requested"
            if not self.outcomes:
                return None
            for agent in self.strategies:
                due = self.planner.due(agent, self.last_cycle)
                if due is not None:
                    return agent, *due
        return None

    def run_due(self, should_stop: Callable[[], bool] = lambda: False) -> list[TrainingSession]:
        """Run every due or requested session, then measure the effects that have matured."""
        done = []
        while not should_stop():
            job = self._next_job()
            if job is None:
                break
            done.append(self.train(*job))
        if not should_stop():
            self._measure_effects()
        return done

    def train(
        self, agent: str, mode: TrainingMode | None = TrainingMode.BATCH,
        trigger: Trigger = "request", why: str = "requested",
    ) -> TrainingSession:
        """Run one session now (sessions never overlap) and record it in the ledger.

        ``mode=None`` lets ADAPTIVE mode choose, as it would for a due session.
        """
        if agent not in self.strategies:
            raise ValueError(f"{agent!r} is not trained here; trained: {sorted(self.strategies)}")
        if mode is None:
            with self._lock:
                mode, why = self.planner.choose(agent, self.last_cycle)
            trigger = "adaptive"
        with self._session_lock:
            self.busy = True
            try:
                session = self._session(agent, TrainingMode(mode), trigger, why)
            finally:
                self.busy = False
        self.store.save_session(session)
        with self._lock:
            self.planner.after_session(session)
            self.store.save_state("planner", self.planner.state())
            if session.outcome == "deployed":
                self.awaiting_effect.append(session)
        self.log.info(
            "{} {} session at cycle {}: {} ({})", agent, session.mode.value, session.cycle,
            session.outcome, session.reason,
        )
        return session

    def _session(
        self, agent: str, mode: TrainingMode, trigger: Trigger, why: str
    ) -> TrainingSession:
        strategy, template = self.strategies[agent], self.templates[agent]
        started_at, started = self.now(), self.clock()
        rate, window = self.planner.settings(agent, mode)
        with self._lock:
            history = list(self.outcomes)
            active, stack = self.store.active(agent) or (0, [])
        live = self.store.version(agent, active)
        data = history[-window:] if window else history
        record: dict[str, Any] = {
            "session_id": uuid.uuid4().hex[:16], "run_id": self.run_id, "agent": agent,
            "mode": mode, "trigger": trigger, "cycle": history[-1].cycle if history else 0,
            "window_start": data[0].cycle if data else 0,
            "window_end": data[-1].cycle if data else 0, "holdout_from": 0, "samples": 0,
            "learning_rate": rate, "window": window or max(len(data), 1),
            "params_before": live.params, "version_before": active, "started_at": started_at,
        }

        def finish(outcome: str, reason: str, **more: Any) -> TrainingSession:
            return TrainingSession(
                **record, **more, outcome=outcome, reason=f"{why}: {reason}",
                duration_s=max(self.clock() - started, 0.0),
            )

        reason = strategy.not_ready(data)
        if reason:
            return finish("skipped", reason)
        held_out = max(2, int(round(len(data) * template.holdout_fraction)))
        record["holdout_from"] = data[-held_out].cycle
        train = [o for o in data if o.cycle < record["holdout_from"]]
        settings = FitSettings(rate, record["window"], mode)
        try:
            candidate = strategy.fit(train, live.params, settings)
            before = strategy.score_samples(live.params, data, record["holdout_from"])
            after = strategy.score_samples(candidate, data, record["holdout_from"])
        except Exception as error:  # noqa: BLE001 - a failed fit must not stop the trainer
            self.log.exception("{} session failed", agent)
            return finish("failed", f"{type(error).__name__}: {error}")
        verdict = judge(before, after, template.margin_se)
        record.update(
            params_after=candidate, score_before=verdict.score_before,
            score_after=verdict.score_after, diff_se=verdict.diff_se, samples=verdict.samples,
        )
        if not verdict.deploy:
            strategy.discard(candidate)
            return finish("rejected", verdict.reason)
        version = self._deploy(agent, candidate, record["session_id"], active, stack)
        if version is None:
            strategy.discard(candidate)
            return finish("rejected", "the live version changed while this session trained")
        return finish("deployed", verdict.reason, version_after=version)

    def _deploy(
        self, agent: str, params: dict[str, Any], session_id: str | None, replaces: int,
        stack: list[int],
    ) -> int | None:
        """Store and queue a new live version; None if ``replaces`` is no longer the live one
        (a rollback arrived while the candidate trained, so its comparison is stale)."""
        with self._lock:
            if (self.store.active(agent) or (0, []))[0] != replaces:
                return None
            version = self.store.add_version(agent, params, session_id, self.now())
            self.store.set_active(agent, version, [*stack, replaces])
            self._queue(agent, version, "deploy", params, replaces)
        return version

    def _queue(
        self, agent: str, version: int, kind: str, params: dict[str, Any], replaces: int
    ) -> DeployCommand:
        command = DeployCommand(
            deployment_id=uuid.uuid4().hex, agent=agent,
            target_role=self.templates[agent].target_role, version=version, kind=kind,
            params=params, replaces=replaces,
        )
        self.store.add_deployment(command, self.now())
        return command

    def rollback(self, agent: str, version: int | None = None) -> DeployCommand:
        """Make an earlier version live again: the one before the live one, or ``version``.

        The stored parameters are sent exactly as they were deployed; the version rolled back
        from stays in the store (it can be rolled forward to by number).
        """
        if agent not in self.strategies:
            raise ValueError(f"{agent!r} is not trained here; trained: {sorted(self.strategies)}")
        with self._lock:
            active, stack = self.store.active(agent) or (0, [])
            if version is None:
                if not stack:
                    raise ValueError(f"{agent} has no earlier version to roll back to")
                target, stack = stack[-1], stack[:-1]
            elif version == active:
                raise ValueError(f"{agent} version {version} is already live")
            else:
                target = self.store.version(agent, version).version
                stack = stack[: stack.index(target)] if target in stack else [*stack, active]
            params = self.store.version(agent, target).params
            self.store.set_active(agent, target, stack)
            self.store.set_applied(agent, active, "rolled back")
            command = self._queue(agent, target, "rollback", params, active)
        self.log.warning("{} rolled back from version {} to {}", agent, active, target)
        return command

    def _measure_effects(self) -> None:
        """Live effect of each deployed change once enough cycles have followed it."""
        for session in list(self.awaiting_effect):
            template = self.templates[session.agent]
            horizon = max(template.continuous_every, EFFECT_MIN_CYCLES)
            if self.last_cycle - session.cycle < horizon or session.params_after is None:
                continue
            with self._lock:
                data = [o for o in self.outcomes if o.cycle > session.cycle - session.window]
            strategy = self.strategies[session.agent]
            try:
                before = strategy.score_samples(session.params_before, data, session.cycle + 1)
                after = strategy.score_samples(session.params_after, data, session.cycle + 1)
            except Exception:  # noqa: BLE001 - an unscorable version must not stop the trainer
                self.log.exception("live effect of {} not measurable", session.session_id)
                before = after = np.zeros(0)
            effect = float((after - before).mean()) if len(after) and len(before) else 0.0
            self.store.set_live_effect(session.session_id, effect)
            with self._lock:
                self.awaiting_effect.remove(session)
                self.planner.after_effect(session.agent, effect)
                self.store.save_state("planner", self.planner.state())

    # analytics, dashboard, export -----------------------------------------------------------

    def trends(self) -> list[MetricTrend]:
        with self._lock:
            outcomes = list(self.outcomes)
        return self.analytics.trends(outcomes)

    def dashboard(self, folder: Path | None = None) -> Path:
        """Write ``training.html`` into the run's report folder (or ``folder``)."""
        with self._lock:
            outcomes = list(self.outcomes)
        folder = folder or self.config.report.resolved()
        rolling = {
            "ensemble": self.analytics.history(outcomes, "ensemble", "rolling_sharpe"),
            "desk": self.analytics.history(outcomes, "desk", "rolling_sharpe"),
        }
        page = render_dashboard(
            self.run_id, outcomes, self.store.sessions(),
            {a: self.store.versions(a) for a in self.strategies},
            {a: (self.store.active(a) or (0, []))[0] for a in self.strategies},
            self.analytics.trends(outcomes), {k: v for k, v in rolling.items() if v},
        )
        return write_dashboard(folder / "training.html", page)

    def export(self, folder: Path | None = None, fmt: Format | None = None) -> list[Path]:
        """Training data, sessions and versions as CSV or Parquet (default: config's format)."""
        with self._lock:
            outcomes = list(self.outcomes)
        folder = folder or self.config.report.resolved() / "training_export"
        versions = [v for a in self.strategies for v in self.store.versions(a)]
        return export_training(
            folder, fmt or self.config.trainer.export_format, outcomes, self.store.sessions(),
            versions,
        )

    def status(self, loop_alive: bool = False, loop_errors: int = 0) -> TrainerStatus:
        with self._lock:
            counts: dict[str, int] = {}
            for session in self.store.sessions():
                counts[session.outcome] = counts.get(session.outcome, 0) + 1
            state = self.planner.state()
            return TrainerStatus(
                run_id=self.run_id, cycles_observed=len(self.outcomes),
                last_cycle=self.last_cycle, sessions=counts, busy=self.busy,
                loop_alive=loop_alive, loop_errors=loop_errors,
                active_versions={a: (self.store.active(a) or (0, []))[0] for a in self.strategies},
                learning_rates={a: s["learning_rate"] for a, s in state.items()},
                windows={a: s["window"] for a, s in state.items()},
                pending_deployments=len(self.store.pending_deployments()),
            )

    def close(self) -> None:
        self.store.close()


class TrainingLoop:
    """CONTINUOUS mode: a background thread that runs due sessions while cycles go on.

    The cycle never waits for it: outcomes are recorded under a short lock and the thread is
    woken; sessions copy the data they need and fit outside that lock. :meth:`stop` asks the
    thread to finish after the session in flight (a session is never cut in half, so a version
    is never half written) and joins it.
    """

    def __init__(self, trainer: Trainer, poll_s: float) -> None:
        self.trainer = trainer
        self.poll_s = poll_s
        self.errors = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trainer-loop", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                self.trainer.run_due(self._stop.is_set)
            except Exception:  # noqa: BLE001 - the loop outlives any one failure
                self.errors += 1
                self.trainer.log.exception("training loop iteration failed")

    def stop(self, timeout_s: float) -> bool:
        """Stop after the session in flight; True when the thread has ended."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()


class TrainerAgent(Agent):
    """The trainer behind the agent contract.

    ``background=False`` (in-process tests, benchmarks of the effect) runs due sessions inline
    in :meth:`observe`, deterministically; ``background=True`` (the actor) runs them in a
    :class:`TrainingLoop` so :meth:`observe` returns at once.
    """

    role = "trainer"
    operations = frozenset({"observe"})

    def __init__(
        self,
        config: FluxtradeConfig,
        agent_id: str | None = None,
        *,
        run_id: str = "run",
        background: bool = False,
        trainer: Trainer | None = None,
    ) -> None:
        super().__init__(config, agent_id)
        self.run_id = run_id
        self.background = background
        self.trainer = trainer
        self.loop: TrainingLoop | None = None
        self.final_status: TrainerStatus | None = None

    def setup(self) -> None:
        self.trainer = self.trainer or Trainer(self.config, self.run_id)
        if self.background:
            self.loop = TrainingLoop(self.trainer, self.config.trainer.poll_interval_s)
            self.loop.start()

    def observe(self, batch: TrainerBatch) -> TrainerFeedback:
        assert self.trainer is not None
        self.trainer.record(batch)
        if self.loop is not None:
            self.loop.wake()
        else:
            self.trainer.run_due()
        return self.trainer.feedback()

    def status(self) -> TrainerStatus:
        assert self.trainer is not None
        loop = self.loop
        return self.trainer.status(
            loop_alive=loop.alive if loop else False, loop_errors=loop.errors if loop else 0
        )

    def stop(self) -> TrainerStatus:
        """Stop the loop cleanly, write the dashboard, and report the final status."""
        assert self.trainer is not None
        if self.final_status is not None:
            return self.final_status
        timeout = self.config.trainer.stop_timeout_s
        if self.loop is not None and not self.loop.stop(timeout):
            self.log.error("training loop still busy after {}s", timeout)
        self.trainer.dashboard()
        self.final_status = self.status()
        return self.final_status

    def extra_metrics(self) -> dict[str, float]:
        status = self.status()
        return {
            "cycles_observed": float(status.cycles_observed),
            "sessions": float(sum(status.sessions.values())),
            "deployed": float(status.sessions.get("deployed", 0)),
        }

    def teardown(self) -> None:
        if self.trainer is not None:
            self.stop()
            self.trainer.close()
