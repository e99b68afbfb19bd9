"""The agent contract every agent of the desk follows, with no Ray in it.

An agent is a plain class: ``initialize``, operations such as ``step(inputs) -> outputs``,
``health``, ``metrics``, ``snapshot``/``restore``, ``handle(message)`` and ``shutdown``, over a
lifecycle table where an illegal transition raises. :meth:`Agent.invoke` is the one door the
coordinator uses: it times the operation, catches and counts any error (an agent's bug never kills
its actor or the cycle) and answers with a :class:`StepOutcome`.
"""

from __future__ import annotations

import time
import traceback
import uuid
from typing import Any, ClassVar

from loguru import logger

from cycle.config import FluxtradeConfig
from cycle.messages import (
    AgentMessage,
    AgentState,
    HealthReport,
    IllegalTransitionError,
    MessageKind,
    StepOutcome,
)

LIFECYCLE: dict[AgentState, frozenset[AgentState]] = {
    AgentState.CREATED: frozenset({AgentState.READY, AgentState.FAULTED, AgentState.STOPPED}),
    AgentState.READY: frozenset(
        {AgentState.RUNNING, AgentState.FAULTED, AgentState.STOPPED, AgentState.READY}
    ),
    AgentState.RUNNING: frozenset(
        {AgentState.READY, AgentState.DEGRADED, AgentState.FAULTED, AgentState.STOPPED}
    ),
    AgentState.DEGRADED: frozenset(
        {AgentState.RUNNING, AgentState.READY, AgentState.FAULTED, AgentState.STOPPED}
    ),
    AgentState.FAULTED: frozenset({AgentState.READY, AgentState.STOPPED}),
    AgentState.STOPPED: frozenset(),
}

FAULT_AFTER_CONSECUTIVE_ERRORS = 5
SUCCESS_SMOOTHING = 0.2
MARKET_FLUX_SHARE = 0.6


class Agent:
    """Base of every agent. Subclasses set ``role`` and implement their operations."""

    role: ClassVar[str] = "agent"
    operations: ClassVar[frozenset[str]] = frozenset({"step"})

    def __init__(self, config: FluxtradeConfig, agent_id: str | None = None) -> None:
        self.config = config
        self.agent_id = agent_id or self.role
        self.log = logger.bind(agent_id=self.agent_id)
        self.state = AgentState.CREATED
        self.incarnation = uuid.uuid4().hex[:12]
        self.error_count = 0
        self.consecutive_errors = 0
        self.step_count = 0
        self.last_error: str | None = None
        self.last_latency_ms = 0.0
        self.total_latency_ms = 0.0
        self.success_rate = 1.0
        self.market_flux = 0.0
        self.restored_from_cycle: int | None = None

    # lifecycle ------------------------------------------------------------------------------

    def move_to(self, state: AgentState) -> None:
        if state not in LIFECYCLE[self.state]:
            raise IllegalTransitionError(
                f"agent {self.agent_id}: {self.state.value} -> {state.value} is not allowed"
            )
        self.state = state

    def initialize(self) -> None:
        """Acquire what the agent needs (files, models); cheap, so a restart is quick."""
        self.setup()
        self.move_to(AgentState.READY)
        self.log.debug("ready (incarnation {})", self.incarnation)

    def setup(self) -> None:
        """Subclass hook for :meth:`initialize`."""

    def shutdown(self) -> None:
        self.teardown()
        if self.state is not AgentState.STOPPED:
            self.move_to(AgentState.STOPPED)

    def teardown(self) -> None:
        """Subclass hook for :meth:`shutdown`."""

    # the one door ---------------------------------------------------------------------------

    def invoke(self, operation: str, payload: Any = None, market_flux: float | None = None) -> StepOutcome:
        """Run one operation with timing and error capture; the agent survives any failure."""
        if market_flux is not None:
            self.market_flux = min(max(market_flux, 0.0), 1.0)
        started = time.perf_counter()
        if operation not in self.operations:
            return self._outcome(operation, started, error=ValueError(f"unknown operation {operation!r}"))
        if self.state in (AgentState.FAULTED, AgentState.STOPPED, AgentState.CREATED):
            return self._outcome(
                operation, started, error=RuntimeError(f"agent is {self.state.value}")
            )
        self.move_to(AgentState.RUNNING)
        try:
            output = getattr(self, operation)(payload)
        except Exception as error:  # noqa: BLE001 - an agent's bug must not kill the cycle
            return self._outcome(operation, started, error=error)
        return self._outcome(operation, started, output=output)

    def _outcome(
        self, operation: str, started: float, *, output: Any = None, error: Exception | None = None
    ) -> StepOutcome:
        latency = (time.perf_counter() - started) * 1000.0
        self.last_latency_ms = latency
        self.total_latency_ms += latency
        self.step_count += 1
        ok = error is None
        self.success_rate += SUCCESS_SMOOTHING * ((1.0 if ok else 0.0) - self.success_rate)
        if ok:
            self.consecutive_errors = 0
            if self.state is AgentState.RUNNING:
                self.move_to(AgentState.READY)
            return StepOutcome(
                agent_id=self.agent_id, operation=operation, ok=True, output=output,
                latency_ms=latency, incarnation=self.incarnation,
            )
        self.error_count += 1
        self.consecutive_errors += 1
        self.last_error = f"{type(error).__name__}: {error}"
        self.log.error("{} failed: {}\n{}", operation, self.last_error, traceback.format_exc())
        if self.state is AgentState.RUNNING:
            self.move_to(
                AgentState.FAULTED
                if self.consecutive_errors >= FAULT_AFTER_CONSECUTIVE_ERRORS
                else AgentState.DEGRADED
            )
        return StepOutcome(
            agent_id=self.agent_id, operation=operation, ok=False, error=self.last_error,
            error_type=type(error).__name__, latency_ms=latency, incarnation=self.incarnation,
        )

    # observation ----------------------------------------------------------------------------

    @property
    def flux(self) -> float:
        """0 calm .. 1 turbulent: market volatility blended with the agent's own failure rate."""
        own = 1.0 - self.success_rate
        return min(1.0, max(0.0, MARKET_FLUX_SHARE * self.market_flux + (1 - MARKET_FLUX_SHARE) * own))

    def health(self) -> HealthReport:
        return HealthReport(
            agent_id=self.agent_id,
            role=self.role,
            state=self.state,
            incarnation=self.incarnation,
            last_error=self.last_error,
            error_count=self.error_count,
            step_count=self.step_count,
            last_step_latency_ms=self.last_latency_ms,
            flux=self.flux,
            restored_from_cycle=self.restored_from_cycle,
        )

    def metrics(self) -> dict[str, float]:
        mean = self.total_latency_ms / self.step_count if self.step_count else 0.0
        return {
            "steps": float(self.step_count),
            "errors": float(self.error_count),
            "success_rate": self.success_rate,
            "mean_latency_ms": mean,
            "last_latency_ms": self.last_latency_ms,
            "flux": self.flux,
            **self.extra_metrics(),
        }

    def extra_metrics(self) -> dict[str, float]:
        """Subclass hook: agent-specific numbers for :meth:`metrics`."""
        return {}

    # persistence ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state from which a fresh incarnation resumes where this one was."""
        return {
            "base": {
                "incarnation": self.incarnation,
                "error_count": self.error_count,
                "step_count": self.step_count,
                "success_rate": self.success_rate,
                "market_flux": self.market_flux,
            },
            "agent": self.state_dict(),
        }

    def restore(self, snapshot: dict[str, Any], cycle: int | None = None) -> None:
        """Resume from :meth:`snapshot`; a faulted agent comes back ready."""
        base = snapshot["base"]
        self.error_count = base["error_count"]
        self.step_count = base["step_count"]
        self.success_rate = base["success_rate"]
        self.market_flux = base["market_flux"]
        self.load_state_dict(snapshot["agent"])
        self.consecutive_errors = 0
        self.restored_from_cycle = cycle
        if self.state in (AgentState.FAULTED, AgentState.DEGRADED, AgentState.CREATED):
            self.move_to(AgentState.READY)
        self.log.info("restored from the snapshot of cycle {}", cycle)

    def state_dict(self) -> dict[str, Any]:
        """Subclass hook: the agent's own state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Subclass hook: inverse of :meth:`state_dict`."""

    # messages -------------------------------------------------------------------------------

    def handle(self, message: AgentMessage) -> AgentMessage:
        """Answer a REQUEST, EVENT or COMMAND with a RESPONSE; unknown topics get an error reply."""
        if message.kind is MessageKind.RESPONSE:
            return message.reply(self.agent_id, error="an agent does not accept responses")
        try:
            if message.topic == "health":
                payload = self.health().model_dump(mode="json")
            elif message.topic == "metrics":
                payload = self.metrics()
            elif message.topic == "snapshot":
                payload = self.snapshot()
            else:
                payload = self.on_message(message)
        except Exception as error:  # noqa: BLE001 - a bad message must not kill the agent
            self.log.warning("message {} failed: {}", message.topic, error)
            return message.reply(self.agent_id, error=f"{type(error).__name__}: {error}")
        return message.reply(self.agent_id, payload)

    def on_message(self, message: AgentMessage) -> dict[str, Any]:
        """Subclass hook for agent-specific topics; raise to answer with an error."""
        raise ValueError(f"unknown topic {message.topic!r} for {message.kind.value}")
