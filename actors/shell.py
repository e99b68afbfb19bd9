"""The Ray actor shell around a plain agent: it adds nothing but Ray.

Health answers in its own concurrency group, so a ping is answered even while a long step runs.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.registry import AGENT_CLASSES
from cycle.config import FluxtradeConfig
from cycle.messages import AgentMessage, HealthReport, StepOutcome


class AgentActor:
    def __init__(self, role: str, config: FluxtradeConfig, agent_id: str) -> None:
        self.agent = AGENT_CLASSES[role](config, agent_id)
        self.agent.initialize()

    def invoke(self, operation: str, payload: Any = None, market_flux: float | None = None) -> StepOutcome:
        return self.agent.invoke(operation, payload, market_flux)

    @ray.method(concurrency_group="health")
    def health(self) -> HealthReport:
        return self.agent.health()

    @ray.method(concurrency_group="health")
    def metrics(self) -> dict[str, float]:
        return self.agent.metrics()

    def snapshot(self) -> dict[str, Any]:
        return self.agent.snapshot()

    def restore(self, snapshot: dict[str, Any], cycle: int) -> bool:
        self.agent.restore(snapshot, cycle)
        return True

    def handle(self, message: AgentMessage) -> AgentMessage:
        return self.agent.handle(message)

    def shutdown(self) -> None:
        self.agent.shutdown()
