from __future__ import annotations

from typing import Any

import pytest

from actors.base import FAULT_AFTER_CONSECUTIVE_ERRORS, Agent
from cycle.config import load_config
from cycle.messages import AgentMessage, AgentState, IllegalTransitionError, MessageKind
from tests.conftest import DEFAULT_CONFIG

CONFIG = load_config(DEFAULT_CONFIG)


class Counter(Agent):
    role = "counter"

    def setup(self) -> None:
        self.total = 0

    def step(self, amount: int) -> int:
        if amount < 0:
            raise ValueError("negative amount")
        self.total += amount
        return self.total

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total = state["total"]

    def on_message(self, message: AgentMessage) -> dict[str, Any]:
        if message.topic == "peek":
            return {"total": self.total}
        return super().on_message(message)


def make() -> Counter:
    agent = Counter(CONFIG, "counter:0")
    agent.initialize()
    return agent


def test_lifecycle_refuses_illegal_transitions() -> None:
    agent = Counter(CONFIG)
    assert agent.state is AgentState.CREATED
    with pytest.raises(IllegalTransitionError, match="created -> running"):
        agent.move_to(AgentState.RUNNING)
    agent.initialize()
    agent.shutdown()
    with pytest.raises(IllegalTransitionError, match="stopped -> ready"):
        agent.move_to(AgentState.READY)


def test_step_error_is_caught_counted_and_reported() -> None:
    agent = make()
    assert agent.invoke("step", 2).output == 2
    failed = agent.invoke("step", -1)
    assert not failed.ok and failed.error == "ValueError: negative amount"
    health = agent.health()
    assert health.state is AgentState.DEGRADED and health.error_count == 1
    assert health.last_error == "ValueError: negative amount"
    assert agent.invoke("step", 3).output == 5
    assert agent.health().state is AgentState.READY


def test_repeated_errors_fault_the_agent_until_restored() -> None:
    agent = make()
    saved = agent.snapshot()
    for _ in range(FAULT_AFTER_CONSECUTIVE_ERRORS):
        agent.invoke("step", -1)
    assert agent.state is AgentState.FAULTED
    refused = agent.invoke("step", 1)
    assert not refused.ok and "faulted" in refused.error
    agent.restore(saved, cycle=7)
    assert agent.state is AgentState.READY and agent.health().restored_from_cycle == 7
    assert agent.invoke("step", 1).ok


def test_unknown_operation_is_an_error_not_a_crash() -> None:
    outcome = make().invoke("launch_missiles")
    assert not outcome.ok and "unknown operation" in outcome.error


def test_snapshot_restore_resumes_where_the_agent_was() -> None:
    agent = make()
    agent.invoke("step", 4)
    fresh = make()
    fresh.restore(agent.snapshot(), cycle=1)
    assert fresh.invoke("step", 1).output == 5
    assert fresh.step_count == 2


def test_flux_blends_market_volatility_with_own_failures() -> None:
    agent = make()
    agent.invoke("step", 1, market_flux=0.0)
    calm = agent.flux
    agent.invoke("step", 1, market_flux=1.0)
    stormy = agent.flux
    agent.invoke("step", -1, market_flux=1.0)
    assert 0.0 <= calm < stormy < agent.flux <= 1.0


def test_messages_are_answered_with_responses() -> None:
    agent = make()
    agent.invoke("step", 9)
    ask = AgentMessage(kind=MessageKind.REQUEST, topic="peek", sender="test")
    assert agent.handle(ask).payload == {"total": 9}
    health = agent.handle(AgentMessage(kind=MessageKind.REQUEST, topic="health", sender="t"))
    assert health.ok and health.payload["state"] == "ready"
    unknown = agent.handle(AgentMessage(kind=MessageKind.COMMAND, topic="dance", sender="t"))
    assert not unknown.ok and "unknown topic" in unknown.error
    assert unknown.kind is MessageKind.RESPONSE and unknown.reply_to is not None
