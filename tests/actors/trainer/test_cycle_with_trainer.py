"""Step 8 with the trainer, over the whole desk in this process (no Ray)."""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
import time
from collections.abc import Sequence

from actors.local import LocalGateway, build_local_agents
from actors.trainer.strategies import EnsembleTraining, FitSettings, Params
from actors.trainer.templates import template_for
from actors.trainer.trainer import Trainer, TrainerAgent
from cycle.config import FluxtradeConfig
from cycle.messages import CycleOutcome, PerformanceAlert, ReevaluationRequest, TrainerEvent
from cycle.steps import CycleRunner
from tests.actors.trainer.helpers import trainer_config


def desk(config: FluxtradeConfig, trainer: TrainerAgent) -> tuple[CycleRunner, dict]:
    """The local desk of ``config`` with ``trainer`` in place of the one it builds."""
    agents = build_local_agents(config, run_id="run")
    agents["trainer"].teardown()
    agents["ledger"].start_run({
        "run_id": "run", "config_hash": config.content_hash(),
        "config": config.model_dump(mode="json", by_alias=True),
        "started_at": "2026-01-01T00:00:00+00:00",
    })
    trainer.initialize()
    agents["trainer"] = trainer
    return CycleRunner(config, LocalGateway(agents), "run"), agents


def test_outcomes_reach_the_trainer_and_deployments_reach_the_learner_between_cycles(
    tmp_path,
) -> None:
    config = trainer_config(tmp_path, agents=["ensemble", "conditions"])
    agent = TrainerAgent(config, run_id="run")
    runner, agents = desk(config, agent)
    trainer = agent.trainer
    reports = [runner.run_cycle() for _ in range(60)]

    names = [s.name for s in config.strategies]
    chosen = {n: (0.4 if i == 0 else 0.6 / (len(names) - 1)) for i, n in enumerate(names)}
    live, stack = trainer.store.active("ensemble")
    trainer._deploy("ensemble", {"weights": chosen}, None, live, stack)
    trainer._deploy("conditions", {"thresholds": {"window": 24}}, None, 0, [])
    alert = PerformanceAlert(agent="ensemble", metric="rolling_sharpe", cycle=60, current=-1.0,
                             baseline=2.0, z=-4.5, forecast=-2.0, reason="ensemble sagged")
    request = ReevaluationRequest(run_id="run", cycle=60, alert=alert)
    trainer.events.append(TrainerEvent(kind="meta_reevaluation_requested", cycle=60,
                                       payload=request.model_dump(mode="json")))
    reports += [runner.run_cycle() for _ in range(2)]
    report = runner.run_cycle()

    assert all(r.outcome == "ok" for r in reports + [report])
    assert [o.cycle for o in trainer.outcomes] == list(range(1, 64))
    assert agents["learner"].weights == chosen and report.weights == chosen
    assert trainer.store.version("ensemble", live + 1).applied == "applied (deploy)"
    refused = trainer.store.version("conditions", 1).applied
    assert refused.startswith("refused: ConfigError: trainer.deploy: {'window': (48, 24)}")
    assert agents["conditions"].thresholds.window == 48
    assert trainer.store.active("conditions") == (0, [])
    ensemble = trainer.store.sessions("ensemble")
    assert [(s.cycle, s.mode.value, s.outcome) for s in ensemble][3:] == [
        (40, "continuous", "rejected"), (50, "continuous", "rejected"),
        (60, "continuous", "rejected"), (61, "batch", "rejected"),
    ]
    assert trainer.outcomes[-1].broker_calls or any(o.broker_calls for o in trainer.outcomes)
    assert set(trainer.outcomes[-1].ohlcv) == set(config.symbols)
    db = sqlite3.connect(config.ledger.resolved())
    events = db.execute(
        "SELECT cycle, payload FROM events WHERE kind = 'meta_reevaluation_requested'"
    ).fetchall()
    assert [(c, json.loads(p)["alert"]["reason"]) for c, p in events] == [(62, "ensemble sagged")]
    assert runner.state.reevaluation_requests == ["ensemble sagged"]

    status = agent.stop()
    page = (config.report.resolved() / "training.html").read_text()
    assert status.cycles_observed == 63 and not status.loop_alive
    assert page.count("<svg") == 3
    for title in ("ensemble: held-out score per session", "ensemble weights over time",
                  "rolling Sharpe (annualised)"):
        assert f"<h3>{title}</h3><svg" in page


class SlowEnsemble(EnsembleTraining):
    """The ensemble strategy with a fit that takes ``seconds`` of wall time."""

    def __init__(self, config: FluxtradeConfig, seconds: float) -> None:
        super().__init__(config, template_for("ensemble", config))
        self.seconds = seconds
        self.started = threading.Event()
        self.fits = 0

    def fit(self, train: Sequence[CycleOutcome], current: Params, settings: FitSettings) -> Params:
        self.fits += 1
        self.started.set()
        time.sleep(self.seconds)
        return super().fit(train, current, settings)


def test_continuous_training_runs_beside_the_cycle_and_stops_cleanly(tmp_path) -> None:
    """Budget: while a 1.5 s session trains in the loop, the median cycle stays within 2x the
    median of the 40 cycles before it (a cycle here is about 30 ms), no cycle comes near the
    session's length (none waits for it), and stop() ends the loop at once when it is idle."""
    config = trainer_config(tmp_path, agents=["ensemble"], schedules={"ensemble": {
        "continuous_every": 100, "window": 60}})
    slow = SlowEnsemble(config, seconds=1.5)
    agent = TrainerAgent(config, run_id="run", background=True,
                         trainer=Trainer(config, "run", strategies={"ensemble": slow}))
    runner, _ = desk(config, agent)
    before = [runner.run_cycle() for _ in range(100)][60:]
    assert slow.started.wait(5.0)
    during = []
    while agent.trainer.busy:
        during.append(runner.run_cycle())
    stopped = time.perf_counter()
    status = agent.stop()
    stop_s = time.perf_counter() - stopped

    assert len(during) >= 10
    assert statistics.median(r.duration_ms for r in during) < 2 * statistics.median(
        r.duration_ms for r in before
    )
    assert max(r.duration_ms for r in during) < 1500.0 / 3
    assert statistics.median(r.step_ms["learn"] for r in during) < 2 * statistics.median(
        r.step_ms["learn"] for r in before
    ) + 2.0
    assert all(r.outcome == "ok" for r in before + during)
    session = agent.trainer.store.sessions("ensemble")[-1]
    assert session.cycle == 100 and session.duration_s >= 1.5
    assert slow.fits == 1
    assert not status.loop_alive and status.loop_errors == 0
    assert stop_s < 0.5
    assert status.cycles_observed == 100 + len(during)
