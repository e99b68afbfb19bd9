"""The trainer's Ray actor: the plain :class:`TrainerAgent` with its loop, and nothing but Ray.

Named ``trainer`` in the run's namespace and created by the driver (``actors/factory.py``), so a
restarted coordinator finds it again; a restarted trainer rebuilds everything from the ledger.
The CONTINUOUS loop runs in a thread of this actor, so the actor's methods keep answering while a
session trains: ``invoke`` (the cycle's ``observe``), ``status``, ``request``, ``rollback`` and
``trends`` run in the ``io`` concurrency group; ``train`` (a blocking session, for the CLI and
benchmarks), ``export``, ``dashboard`` and ``stop`` in the default one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from actors.trainer.analytics import MetricTrend
from actors.trainer.trainer import Trainer, TrainerAgent, TrainerStatus
from cycle.config import FluxtradeConfig
from cycle.messages import DeployCommand, HealthReport, StepOutcome, TrainingMode, TrainingSession

CONCURRENCY_GROUPS = {"io": 2}


class TrainerActor:
    def __init__(self, config: FluxtradeConfig, run_id: str) -> None:
        self.agent = TrainerAgent(config, "trainer", run_id=run_id, background=True)
        self.agent.initialize()

    @property
    def _trainer(self) -> Trainer:
        assert self.agent.trainer is not None
        return self.agent.trainer

    @ray.method(concurrency_group="io")
    def invoke(
        self, operation: str, payload: Any = None, market_flux: float | None = None
    ) -> StepOutcome:
        return self.agent.invoke(operation, payload, market_flux)

    @ray.method(concurrency_group="io")
    def health(self) -> HealthReport:
        return self.agent.health()

    @ray.method(concurrency_group="io")
    def status(self) -> TrainerStatus:
        return self.agent.status()

    @ray.method(concurrency_group="io")
    def request(self, agent: str, mode: str = TrainingMode.BATCH.value) -> None:
        """Queue a session for the loop (a BATCH re-fit by default); returns at once."""
        self._trainer.request(agent, TrainingMode(mode))
        if self.agent.loop is not None:
            self.agent.loop.wake()

    @ray.method(concurrency_group="io")
    def rollback(self, agent: str, version: int | None = None) -> DeployCommand:
        return self._trainer.rollback(agent, version)

    @ray.method(concurrency_group="io")
    def trends(self) -> list[MetricTrend]:
        return self._trainer.trends()

    def train(self, agent: str, mode: str | None = TrainingMode.BATCH.value) -> TrainingSession:
        """One session now, blocking; ``mode=None`` lets ADAPTIVE mode choose."""
        return self._trainer.train(agent, None if mode is None else TrainingMode(mode))

    def export(self, folder: str | None = None, fmt: str | None = None) -> list[str]:
        paths = self._trainer.export(Path(folder) if folder else None, fmt)
        return [str(p) for p in paths]

    def dashboard(self, folder: str | None = None) -> str:
        return str(self._trainer.dashboard(Path(folder) if folder else None))

    def stop(self) -> TrainerStatus:
        """End the loop cleanly (after the session in flight) and write the dashboard."""
        return self.agent.stop()

    def shutdown(self) -> None:
        self.agent.shutdown()
