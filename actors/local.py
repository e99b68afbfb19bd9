"""Every agent as a plain object in this process, behind the same gateway the coordinator uses.

This is how the cycle is tested without Ray: the runner cannot tell the difference, so the whole
nine-step logic, accounting and order safety are checked in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.adapters.agent import AdaptersAgent
from actors.adapters.pool import LocalPool
from actors.base import Agent
from actors.registry import AGENT_CLASSES
from actors.trainer.trainer import TrainerAgent
from cycle.config import ROLES, FluxtradeConfig
from cycle.messages import AgentMessage, HealthReport, StepOutcome
from cycle.steps import Call


def build_local_agents(config: FluxtradeConfig, run_id: str = "local") -> dict[str, Agent]:
    """Every agent of the desk, initialised; the trainer too when the config turns it on (it then
    trains inline, between the cycles it observes, instead of on a background loop)."""
    agents: dict[str, Agent] = {}
    for role in ROLES:
        cls = AGENT_CLASSES[role]
        agents[role] = AdaptersAgent(config, pool=LocalPool(config)) if cls is AdaptersAgent else cls(config)
        agents[role].initialize()
    if config.trainer.enabled:
        agents["trainer"] = TrainerAgent(config, run_id=run_id)
        agents["trainer"].initialize()
    return agents


class LocalGateway:
    """Calls run one after another in this process; timeouts cannot happen."""

    def __init__(self, agents: dict[str, Agent]) -> None:
        self.agents = agents

    def submit(self, calls: Sequence[Call], market_flux: float | None) -> list[StepOutcome]:
        return [self.agents[c.role].invoke(c.operation, c.payload, market_flux) for c in calls]

    def gather(self, pending: list[StepOutcome], timeout_s: float) -> list[StepOutcome]:
        return pending

    def health(self, timeout_s: float) -> dict[str, HealthReport | str]:
        return {role: agent.health() for role, agent in self.agents.items()}

    def snapshots(self, timeout_s: float) -> dict[str, dict[str, Any]]:
        return {role: agent.snapshot() for role, agent in self.agents.items()}

    def restore(self, role: str, snapshot: dict[str, Any], cycle: int, timeout_s: float) -> bool:
        self.agents[role].restore(snapshot, cycle)
        return True

    def message(self, role: str, message: AgentMessage, timeout_s: float) -> AgentMessage:
        return self.agents[role].handle(message)
