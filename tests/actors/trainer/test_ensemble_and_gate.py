"""The deploy-if-better gate, versions and rollback, and where the ensemble weights go."""

from __future__ import annotations

import sqlite3
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.learner import LearnerAgent
from actors.trainer.trainer import Trainer, judge
from cycle.messages import TrainerBatch, TrainingMode
from tests.actors.trainer.helpers import (
    FakeClock,
    deliver,
    market,
    run_ensemble,
    two_strategy_config,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=60),
    st.lists(st.floats(0.0, 1e3, allow_nan=False), min_size=60, max_size=60),
    st.floats(0.0, 3.0),
)
def test_gate_never_deploys_a_candidate_that_scores_worse_or_equal(
    live: list[float], drop: list[float], margin: float
) -> None:
    before = np.array(live)
    after = before - np.array(drop[: len(live)])
    assert not judge(before, after, margin).deploy


def test_gate_deploys_a_clear_improvement_and_reports_its_size() -> None:
    before = np.array([0.0, 1.0, 0.0, 1.0])
    verdict = judge(before, before + np.array([0.9, 1.1, 0.9, 1.1]), margin_se=2.0)
    assert verdict.deploy
    assert verdict.score_before == pytest.approx(0.5)
    assert verdict.score_after == pytest.approx(1.5)
    assert verdict.diff_se == pytest.approx(0.0577350269, rel=1e-6)


def setup_ensemble(tmp_path, edge: float, cycles: int, seed: int = 0, **trainer):
    config = two_strategy_config(tmp_path, **trainer)
    learner = LearnerAgent(config)
    learner.initialize()
    trainer_ = Trainer(config, "run", clock=FakeClock(0.25))
    history = run_ensemble(trainer_, learner, market(seed, edge), cycles)
    return config, learner, trainer_, history


def test_every_session_is_recorded_with_windows_scores_versions_and_fake_clock_duration(
    tmp_path,
) -> None:
    _, _, trainer, _ = setup_ensemble(tmp_path, edge=0.3, cycles=200)
    sessions = trainer.store.sessions("ensemble")
    modes = [s.mode for s in sessions]
    assert (modes.count(TrainingMode.CONTINUOUS), modes.count(TrainingMode.BATCH)) == (19, 2)
    assert [s.cycle for s in sessions if s.mode is TrainingMode.BATCH] == [141, 182]
    assert [s.outcome for s in sessions[:3]] == ["skipped"] * 3
    assert {s.duration_s for s in sessions} == {0.25}
    deployed = [s for s in sessions if s.outcome == "deployed"]
    assert [s.cycle for s in deployed] == [60, 90, 110, 151]
    assert [s.version_after for s in deployed] == [1, 2, 3, 4]
    for s in deployed:
        assert s.score_after > s.score_before
        assert s.score_after - s.score_before > s.diff_se
        assert s.live_effect is not None and s.live_effect > 0
        assert s.window_end == s.cycle and s.holdout_from > s.window_start
        assert s.params_after == trainer.store.version("ensemble", s.version_after).params
    rejected = [s for s in sessions if s.outcome == "rejected"]
    assert all(s.version_after is None and s.score_before is not None for s in rejected)


def test_a_rollback_restores_the_earlier_weights_exactly(tmp_path) -> None:
    _, learner, trainer, _ = setup_ensemble(tmp_path, edge=0.3, cycles=200)
    live, stack = trainer.store.active("ensemble")
    assert live >= 2 and learner.weights_version == live
    earlier = trainer.store.version("ensemble", stack[-1]).params["weights"]
    assert learner.weights != earlier

    command = trainer.rollback("ensemble")
    trainer.record(TrainerBatch(acks=tuple(deliver(trainer, learner))))

    assert command.kind == "rollback" and command.version == stack[-1]
    assert learner.weights == earlier
    assert learner.weights_version == stack[-1]
    assert trainer.store.active("ensemble") == (stack[-1], stack[:-1])
    assert trainer.store.version("ensemble", live).applied == "rolled back"
    assert trainer.store.version("ensemble", stack[-1]).applied == "applied (rollback)"
    assert trainer.feedback().deployments == ()


def test_rollback_to_a_named_version_and_to_nothing(tmp_path) -> None:
    _, learner, trainer, _ = setup_ensemble(tmp_path, edge=0.3, cycles=200)
    trainer.rollback("ensemble", version=0)
    deliver(trainer, learner)
    total = sum(s.weight for s in trainer.config.strategies)
    assert learner.weights == {s.name: s.weight / total for s in trainer.config.strategies}
    with pytest.raises(ValueError, match="already live"):
        trainer.rollback("ensemble", version=0)


def test_a_deployment_the_agent_refuses_leaves_the_live_version_in_place(tmp_path) -> None:
    config, learner, trainer, _ = setup_ensemble(tmp_path, edge=0.3, cycles=120)
    live = trainer.store.active("ensemble")
    bad = {"weights": {"good": 0.99, "noise": 0.01}}
    trainer._deploy("ensemble", bad, None, live[0], live[1])
    acks = deliver(trainer, learner)
    trainer.record(TrainerBatch(acks=tuple(acks)))

    assert [a.ok for a in acks] == [False] and "outside [0.05, 0.9]" in acks[0].error
    assert trainer.store.active("ensemble") == live
    refused = trainer.store.versions("ensemble")[-1]
    assert refused.applied.startswith("refused: ValueError")
    assert learner.weights_version == live[0]
    assert trainer._deploy("ensemble", bad, None, live[0] + 1, live[1]) is None
    assert trainer.feedback().deployments == ()


@pytest.mark.parametrize("seed", range(6))
def test_weights_move_to_the_clearly_better_strategy_within_400_cycles(tmp_path, seed) -> None:
    """Stated: with a per-cycle Sharpe of 0.3 for one strategy and 0 for the other, its weight
    reaches 0.75 within 400 cycles (first crossings of these seeds: 111 to 390 cycles)."""
    _, _, _, history = setup_ensemble(tmp_path, edge=0.3, cycles=400, seed=seed)
    good = [w["good"] for w in history]
    assert max(good) >= 0.75
    assert good[-1] >= 0.75
    assert min(good) >= 0.5 - 1e-12


def test_on_noise_the_weights_stay_within_0_15_of_uniform_over_1000_cycles(tmp_path) -> None:
    """Stated: on pure noise no weight leaves [0.35, 0.65] in 1000 cycles (8 seeds)."""
    deviations, deployments = [], []
    for seed in range(8):
        _, _, trainer, history = setup_ensemble(tmp_path / str(seed), edge=0.0, cycles=1000,
                                                seed=seed)
        deviations.append(max(abs(w["good"] - 0.5) for w in history))
        sessions = trainer.store.sessions()
        assert len(sessions) >= 99
        deployments.append(sum(s.outcome == "deployed" for s in sessions))
    assert max(deviations) <= 0.15
    assert max(deployments) <= 3
    assert statistics.median(deviations) <= 0.05


def test_sessions_land_in_the_ledger_file(tmp_path) -> None:
    config, _, trainer, _ = setup_ensemble(tmp_path, edge=0.3, cycles=100)
    db = sqlite3.connect(config.ledger.resolved())
    rows = db.execute(
        "SELECT agent, mode, outcome FROM trainer_sessions WHERE run_id='run' ORDER BY seq"
    ).fetchall()
    assert len(rows) == 10 and rows[0] == ("ensemble", "continuous", "skipped")
    observed = db.execute("SELECT COUNT(*) FROM trainer_observations").fetchone()[0]
    assert observed == 100
    assert trainer.train("ensemble", TrainingMode.BATCH).mode is TrainingMode.BATCH
