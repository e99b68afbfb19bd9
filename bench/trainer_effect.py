"""What the agent trainer costs the cycle, how long a forecaster re-fit takes, what one run gains.

Three measurements, one run, one local Ray (2 CPUs):

1. **Cycle time with and without continuous training**, side by side: two desks on the bundled
   data, one without the trainer and one with it (all four agents, schedules short enough that
   sessions, forecaster re-fits included, run during the measured cycles). Their cycles run in
   alternating blocks so both see the same machine. Each cycle of either desk is classed by
   whether a training session of the trained desk was running during it, from the sessions'
   start and duration in the ledger.
2. **Effect of one ADAPTIVE training run on held-out score**: after the measured cycles, one
   session per agent on the trained desk's own history, mode chosen by the adaptive planner.
3. **Time of a forecaster fine-tune and of a BATCH re-fit**: a CONTINUOUS session (warm start
   from the live model on the template's window) and a BATCH session on all bundled bars
   (3 symbols x 5,760 five-minute bars), fit plus held-out scoring, with the trainer's thread
   count, after both desks are stopped.
4. **Effect of one ADAPTIVE run where there is something to learn**: a constructed market in
   which one of two strategies calls the next bar with a per-cycle Sharpe of 0.3; after 200
   cycles at uniform weights, one adaptive ensemble session.

Usage::

    .venv/bin/python bench/trainer_effect.py [--warmup 300] [--cycles 300] [--block 25]
                                             [--parts 1,2,3,4]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import ray
from loguru import logger

from actors.factory import create_desk, destroy
from actors.learner import LearnerAgent
from actors.trainer.store import TrainerStore
from actors.trainer.strategies import replayed_outcomes
from actors.trainer.trainer import Trainer
from cycle.config import PROJECT_ROOT, FluxtradeConfig, load_config
from cycle.messages import (
    CycleOutcome,
    LearnerInputs,
    StrategyDecision,
    TrainerBatch,
    TrainingMode,
    TrainingSession,
)
from cycle.report import CycleReport

SCHEDULES = {
    "forecaster": {"min_cycles": 300, "continuous_every": 150, "window": 600},
    "conditions": {"min_cycles": 300, "continuous_every": 100, "window": 400},
    "adapters": {"continuous_every": 50},
}


@dataclass
class Desk:
    name: str
    config: FluxtradeConfig
    run_id: str
    handles: dict[str, Any]

    @property
    def coordinator(self) -> Any:
        return self.handles["coordinator"]

    def run(self, cycles: int) -> list[CycleReport]:
        return ray.get([self.coordinator.run_cycle.remote() for _ in range(cycles)])


def make_config(folder: Path, trained: bool) -> FluxtradeConfig:
    return load_config(PROJECT_ROOT / "configs" / "default.yaml", {
        "ledger": {"path": str(folder / "ledger.sqlite")},
        "report": {"folder": str(folder / "report")},
        "ray": {"namespace": f"bench-{uuid.uuid4().hex[:8]}", "include_dashboard": False},
        "trainer": {"enabled": trained, "artifacts": str(folder / "artifacts"),
                    "schedules": SCHEDULES},
    })


def start_desk(name: str, config: FluxtradeConfig) -> Desk:
    run_id = f"bench-{name}"
    handles = create_desk(config, run_id)
    ray.get(handles["coordinator"].start.remote())
    return Desk(name, config, run_id, handles)


def overlaps(report: CycleReport, sessions: list[TrainingSession]) -> bool:
    end = report.started_at
    start = end - timedelta(milliseconds=report.duration_ms)
    return any(
        s.started_at < end and start < s.started_at + timedelta(seconds=s.duration_s)
        for s in sessions
    )


def describe(values: list[float]) -> str:
    if not values:
        return f"{0:>6} | {'-':>8} | {'-':>8} | {'-':>8}"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (f"{len(values):>6} | {statistics.median(values):>8.1f} | {p90:>8.1f} | "
            f"{statistics.fmean(values):>8.1f}")


def cycle_time(args: argparse.Namespace, folder: Path) -> Desk:
    """Part 1; returns the trained desk (still running) for part 2."""
    plain = start_desk("plain", make_config(folder / "plain", trained=False))
    trained = start_desk("trained", make_config(folder / "trained", trained=True))
    for desk in (plain, trained):
        desk.run(args.warmup)
    measured: dict[str, list[CycleReport]] = {"plain": [], "trained": []}
    while len(measured["trained"]) < args.cycles:
        for desk in (plain, trained):
            measured[desk.name] += desk.run(args.block)
    ray.get(plain.coordinator.shutdown.remote())
    destroy(plain.handles)
    store = TrainerStore(trained.config.ledger.resolved(), trained.run_id)
    sessions = [s for s in store.sessions() if s.outcome != "skipped"]
    store.close()

    print(f"\n1. cycle time, {args.cycles} cycles per desk after {args.warmup} warm-up cycles, "
          f"alternating blocks of {args.block}")
    counts = {a: sum(s.agent == a for s in sessions) for a in sorted({s.agent for s in sessions})}
    print(f"   {len(sessions)} training sessions of the trained desk ran during warm-up and "
          "measurement: " + ", ".join(f"{a} {n}" for a, n in counts.items()))
    print("   session seconds, median (max): " + ", ".join(
        f"{a} {statistics.median(x):.2f} ({max(x):.2f})"
        for a in counts
        for x in [[s.duration_s for s in sessions if s.agent == a]]
    ))
    print("   desk    | cycles                          | cycles |  p50 ms |  p90 ms | mean ms")
    refits = [s for s in sessions if s.agent == "forecaster"]
    light = [s for s in sessions if s.agent != "forecaster"]
    for name, reports in measured.items():
        during_refit = [r.duration_ms for r in reports if overlaps(r, refits)]
        during_light = [r.duration_ms for r in reports
                        if overlaps(r, light) and not overlaps(r, refits)]
        idle = [r.duration_ms for r in reports if not overlaps(r, sessions)]
        print(f"   {name:<7} | all                             | "
              f"{describe([r.duration_ms for r in reports])}")
        print(f"   {name:<7} | while a forecaster re-fit ran   | {describe(during_refit)}")
        print(f"   {name:<7} | while another session ran       | {describe(during_light)}")
        print(f"   {name:<7} | while the trainer was idle      | {describe(idle)}")
        print(f"   {name:<7} | learn step (all)                | "
              f"{describe([r.step_ms.get('learn', 0.0) for r in reports])}")
    ratio = statistics.median(r.duration_ms for r in measured["trained"]) / statistics.median(
        r.duration_ms for r in measured["plain"]
    )
    print(f"   p50 ratio trained / plain: {ratio:.2f}")
    return trained


def forecaster_refit(folder: Path) -> None:
    config = load_config(PROJECT_ROOT / "configs" / "default.yaml", {
        "ledger": {"path": str(folder / "refit" / "ledger.sqlite")},
        "report": {"folder": str(folder / "refit" / "report")},
        "trainer": {"enabled": True, "agents": ["forecaster"],
                    "artifacts": str(folder / "refit" / "artifacts"),
                    "forecaster_max_seconds": 300.0},
    })
    trainer = Trainer(config, "refit")
    trainer.outcomes = replayed_outcomes(config)
    print(f"\n3. forecaster sessions on the bundled bars ({len(trainer.outcomes)} x "
          f"{len(config.symbols)} symbols), {config.trainer.forecaster_threads} torch thread(s)")
    for mode, what in ((TrainingMode.CONTINUOUS, "fine-tune of the live model, last window"),
                       (TrainingMode.BATCH, "re-fit from scratch, all bars")):
        started = time.perf_counter()
        session = trainer.train("forecaster", mode)
        wall = time.perf_counter() - started
        print(f"   {mode.value} ({what}, {session.window} cycles): session "
              f"{session.duration_s:.1f} s (wall {wall:.1f} s); held-out {session.samples} "
              f"samples: -log-loss {session.score_before:.5f} (live) -> "
              f"{session.score_after:.5f}; {session.outcome}")
        print(f"     {session.reason}")
    trainer.close()


def adaptive_effect(desk: Desk) -> None:
    trainer = desk.handles["trainer"]
    status = ray.get(trainer.status.remote())
    print(f"\n2. one ADAPTIVE session per agent on the trained desk's {status.cycles_observed} "
          "cycles of history (held-out tail, higher is better)")
    print("   agent      | mode       | held-out before | held-out after |  gain s.e. | outcome")
    for agent in desk.config.trainer.agents:
        s = ray.get(trainer.train.remote(agent, None))
        if s.score_before is None:
            print(f"   {agent:<10} | {s.mode.value:<10} | {s.outcome}: {s.reason}")
            continue
        gain = s.score_after - s.score_before
        ratio = gain / s.diff_se if s.diff_se else (0.0 if gain == 0 else float("inf"))
        print(f"   {agent:<10} | {s.mode.value:<10} | {s.score_before:>15.6g} | "
              f"{s.score_after:>14.6g} | {ratio:>10.2f} | {s.outcome} ({s.duration_s:.2f} s)")
    ray.get(desk.coordinator.shutdown.remote())
    destroy(desk.handles)


def constructed_market(folder: Path, edge: float = 0.3, cycles: int = 200) -> None:
    """Part 4: the learner measures two strategies on a market where one has an edge."""
    config = load_config(PROJECT_ROOT / "configs" / "default.yaml", {
        "ledger": {"path": str(folder / "constructed" / "ledger.sqlite")},
        "report": {"folder": str(folder / "constructed" / "report")},
        "strategies": [
            {"name": "good", "class": "actors.strategy.library:SMACrossover", "weight": 0.5},
            {"name": "noise", "class": "actors.strategy.library:Momentum", "weight": 0.5},
        ],
        "trainer": {"enabled": True, "agents": ["ensemble"]},
    })
    learner = LearnerAgent(config)
    learner.initialize()
    trainer = Trainer(config, "constructed")
    rng = np.random.default_rng(0)
    vol, price, start = 0.002, 1.0, datetime(2026, 1, 5).astimezone()
    for cycle in range(1, cycles + 1):
        signals = {"good": float(rng.choice([-1.0, 1.0])), "noise": float(rng.choice([-1.0, 1.0]))}
        decision = StrategyDecision(cycle=cycle, targets={}, weights={},
                                    signals={n: {"X/Y": v} for n, v in signals.items()})
        output = learner.step(LearnerInputs(cycle=cycle, decision=decision, closes={"X/Y": price}))
        trainer.record(TrainerBatch(outcomes=(CycleOutcome(
            cycle=cycle, market_time=start + timedelta(minutes=5 * cycle),
            strategy_pnl=output.last_pnl, weights=output.weights,
        ),)))
        price *= math.exp(edge * vol * signals["good"] + vol * rng.standard_normal())
    s = trainer.train("ensemble", None)
    print(f"\n4. one ADAPTIVE ensemble session on a constructed market ({cycles} cycles, the good "
          f"strategy's per-cycle Sharpe {edge})")
    gain = s.score_after - s.score_before
    print(f"   {s.mode.value}, window {s.window}, held-out {s.samples} cycles: blended PnL per "
          f"cycle {s.score_before:.3e} -> {s.score_after:.3e} (+{gain:.2e}, "
          f"{gain / s.diff_se:.2f} s.e.); {s.outcome}")
    print(f"   weights {s.params_before['weights']} -> {(s.params_after or {}).get('weights')}")
    trainer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--parts", default="1,2,3,4", help="which parts to run (2 needs 1)")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("FLUXTRADE_LOG_LEVEL", "WARNING"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}})
    print(f"trainer benchmark, {datetime.now().astimezone():%Y-%m-%d %H:%M}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "1" in parts:
            trained = cycle_time(args, folder)
            if "2" in parts:
                adaptive_effect(trained)
            else:
                ray.get(trained.coordinator.shutdown.remote())
                destroy(trained.handles)
        if "3" in parts:
            forecaster_refit(folder)
        if "4" in parts:
            constructed_market(folder)
    ray.shutdown()
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
