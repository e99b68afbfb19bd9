"""Shared pieces of the trainer tests: configs, a fake clock, and a constructed market."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from actors.learner import LearnerAgent
from actors.trainer.trainer import Trainer
from cycle.config import FluxtradeConfig
from cycle.messages import (
    TRAINER_DEPLOY_TOPIC,
    AgentMessage,
    CycleOutcome,
    DeployAck,
    LearnerInputs,
    MessageKind,
    StrategyDecision,
    TrainerBatch,
)
from tests.conftest import make_config

START = datetime(2026, 1, 5, tzinfo=UTC)
TWO_STRATEGIES = [
    {"name": "good", "class": "actors.strategy.library:SMACrossover", "weight": 0.5},
    {"name": "noise", "class": "actors.strategy.library:Momentum", "weight": 0.5},
]


def trainer_config(tmp_path: Path, **trainer: Any) -> FluxtradeConfig:
    """The default desk with the trainer on, writing under ``tmp_path``."""
    settings = {"enabled": True, "artifacts": str(tmp_path / "artifacts"), **trainer}
    return make_config(tmp_path, trainer=settings)


def two_strategy_config(tmp_path: Path, **trainer: Any) -> FluxtradeConfig:
    settings = {"enabled": True, "artifacts": str(tmp_path / "artifacts"), "agents": ["ensemble"],
                **trainer}
    return make_config(tmp_path, trainer=settings, strategies=TWO_STRATEGIES)


class FakeClock:
    """Seconds that advance by ``step`` on every reading."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def deliver(trainer: Trainer, learner: LearnerAgent) -> list[DeployAck]:
    """What the learn step does with the trainer's feedback: each deployment to the learner."""
    acks = []
    for command in trainer.feedback().deployments:
        reply = learner.handle(AgentMessage(
            kind=MessageKind.COMMAND, topic=TRAINER_DEPLOY_TOPIC, sender="trainer",
            payload=command.model_dump(mode="json"),
        ))
        acks.append(DeployAck(deployment_id=command.deployment_id, ok=reply.ok, error=reply.error))
    return acks


def market(seed: int, edge: float) -> Iterator[tuple[float, dict[str, float]]]:
    """A price whose next log return the ``good`` strategy calls right with an ``edge``.

    Each bar the good signal is +-1 at random and the next return is ``edge * vol * signal``
    plus Gaussian noise of ``vol``; the ``noise`` strategy's signal is an independent coin.
    With ``edge = 0`` both strategies are pure noise.
    """
    rng = np.random.default_rng(seed)
    vol, price = 0.002, 1.0
    good = float(rng.choice([-1.0, 1.0]))
    while True:
        noise = float(rng.choice([-1.0, 1.0]))
        yield price, {"good": good, "noise": noise}
        price *= math.exp(edge * vol * good + vol * rng.standard_normal())
        good = float(rng.choice([-1.0, 1.0]))


def run_ensemble(
    trainer: Trainer, learner: LearnerAgent, prices: Iterator, cycles: int, first: int = 1
) -> list[dict[str, float]]:
    """Cycles of learner -> trainer -> deployment -> learner; the live weights after each."""
    history = []
    acks: list[DeployAck] = []
    for cycle in range(first, first + cycles):
        price, signals = next(prices)
        decision = StrategyDecision(
            cycle=cycle, targets={}, weights={},
            signals={name: {"X/Y": value} for name, value in signals.items()},
        )
        acks += deliver(trainer, learner)
        output = learner.step(LearnerInputs(cycle=cycle, decision=decision, closes={"X/Y": price}))
        outcome = CycleOutcome(
            cycle=cycle, market_time=START + timedelta(minutes=5 * cycle),
            strategy_pnl=output.last_pnl, weights=output.weights,
            ohlcv={"X/Y": (price, price, price, price, 1.0)},
        )
        trainer.record(TrainerBatch(outcomes=(outcome,), acks=tuple(acks)))
        acks = []
        trainer.run_due()
        history.append(dict(learner.weights))
    return history
