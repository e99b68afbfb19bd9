"""Schedules and ADAPTIVE tuning; rolling metrics, trend forecasts and degradation alerts."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from actors.trainer.adaptive import TrainingPlanner
from actors.trainer.analytics import Analytics
from actors.trainer.templates import TEMPLATES
from actors.trainer.trainer import Trainer
from cycle.messages import CycleOutcome, TrainerBatch, TrainingMode, TrainingSession
from tests.actors.trainer.helpers import START, two_strategy_config

ENSEMBLE = {"ensemble": TEMPLATES["ensemble"]}


def session(cycle: int, outcome: str, mode: TrainingMode = TrainingMode.CONTINUOUS):
    return TrainingSession(
        session_id=str(cycle), run_id="run", agent="ensemble", mode=mode, trigger="adaptive",
        cycle=cycle, window_start=0, window_end=cycle, holdout_from=cycle, samples=0,
        learning_rate=1.0, window=200, params_before={}, version_before=0, started_at=START,
        duration_s=0.0, outcome=outcome,
    )


def test_continuous_mode_runs_every_10_cycles_and_batch_every_500() -> None:
    planner = TrainingPlanner(ENSEMBLE, "continuous")
    due = [c for c in range(1, 1001) if planner.due("ensemble", c)]
    kinds = []
    for cycle in range(1, 1001):
        plan = planner.due("ensemble", cycle)
        if plan:
            kinds.append((cycle, plan[0]))
            planner.after_session(session(cycle, "rejected", plan[0]))
    assert due[0] == 10
    assert [c for c, m in kinds if m is TrainingMode.BATCH] == [500, 1000]
    assert len(kinds) == 100
    assert TrainingPlanner(ENSEMBLE, "batch").due("ensemble", 499) is None
    assert TrainingPlanner(ENSEMBLE, "batch").due("ensemble", 500)[0] is TrainingMode.BATCH


def test_adaptive_mode_switches_to_batch_after_three_rejections_and_after_an_alert() -> None:
    planner = TrainingPlanner(ENSEMBLE, "adaptive")
    for cycle in (10, 20, 30):
        assert planner.due("ensemble", cycle)[0] is TrainingMode.CONTINUOUS
        planner.after_session(session(cycle, "rejected"))
    mode, trigger, why = planner.due("ensemble", 31)
    assert (mode, trigger, why) == (
        TrainingMode.BATCH, "adaptive", "3 continuous sessions rejected in a row",
    )
    planner.after_session(session(31, "rejected", TrainingMode.BATCH))
    assert planner.due("ensemble", 40) is None
    planner.degraded("ensemble", "ensemble rolling_sharpe dropped")
    assert planner.due("ensemble", 32)[:2] == (TrainingMode.BATCH, "adaptive")
    assert planner.settings("ensemble", TrainingMode.BATCH) == (1.0, None)


def test_adaptive_tuning_grows_the_step_after_a_good_change_and_widens_after_a_bad_one() -> None:
    planner = TrainingPlanner(ENSEMBLE, "adaptive")
    planner.after_effect("ensemble", 2e-5)
    assert planner.settings("ensemble", TrainingMode.CONTINUOUS) == (1.5, 200)
    for _ in range(5):
        planner.after_effect("ensemble", 1e-5)
    assert planner.settings("ensemble", TrainingMode.CONTINUOUS) == (4.0, 200)
    planner.after_effect("ensemble", -1e-5)
    assert planner.settings("ensemble", TrainingMode.CONTINUOUS) == (2.0, 300)
    for _ in range(10):
        planner.after_effect("ensemble", -1e-5)
    assert planner.settings("ensemble", TrainingMode.CONTINUOUS) == (0.1, 1000)
    restored = TrainingPlanner(ENSEMBLE, "adaptive", planner.state())
    assert restored.state() == planner.state()
    fixed = TrainingPlanner(ENSEMBLE, "continuous")
    fixed.after_effect("ensemble", -1.0)
    assert fixed.settings("ensemble", TrainingMode.CONTINUOUS) == (1.0, 200)


def outcomes_from(pnl: np.ndarray, weights: dict[str, float] | None = None) -> list[CycleOutcome]:
    live = weights or {"good": 0.5, "noise": 0.5}
    return [
        CycleOutcome(
            cycle=i + 1, market_time=START + timedelta(minutes=5 * i),
            strategy_pnl={"good": float(g), "noise": float(n)}, weights=live,
            equity=1.0 + 0.001 * i,
        )
        for i, (g, n) in enumerate(pnl)
    ]


def test_rolling_sharpe_and_hit_rate_have_their_textbook_values() -> None:
    pnl = np.tile([[0.002, -0.001], [-0.001, 0.001]], (25, 1))
    analytics = Analytics(["good", "noise"], window=50, alert_drop_se=3.0, bars_per_year=105120)
    trends = {(t.agent, t.metric): t for t in analytics.trends(outcomes_from(pnl))}

    good = pnl[:, 0]
    expected = good.mean() / good.std(ddof=1) * math.sqrt(105120)
    assert trends[("strategy:good", "rolling_sharpe")].current == pytest.approx(expected)
    assert trends[("strategy:good", "hit_rate")].current == pytest.approx(0.5)
    blend_hits = trends[("ensemble", "hit_rate")]
    assert (blend_hits.current, blend_hits.samples) == (1.0, 25)
    assert trends[("ensemble", "rolling_sharpe")].samples == 50
    assert trends[("strategy:good", "rolling_sharpe")].slope == pytest.approx(0.0, abs=1e-9)
    assert ("adapters", "slippage_bps") not in trends


def test_a_steady_decline_is_forecast_lower_and_raises_one_alert_per_window() -> None:
    rng = np.random.default_rng(4)
    level = np.concatenate([np.full(400, 0.002), np.linspace(0.002, -0.004, 100)])
    pnl = np.stack([level + 0.0005 * rng.standard_normal(500), 0.0005 * rng.standard_normal(500)],
                   axis=1)
    analytics = Analytics(["good", "noise"], window=50, alert_drop_se=4.0, bars_per_year=105120)
    outcomes = outcomes_from(pnl, {"good": 0.9, "noise": 0.1})

    fired = [a for end in range(100, 501, 10) for a in analytics.alerts(outcomes[:end])]

    ensemble = [a for a in fired if a.agent == "ensemble" and a.metric == "rolling_sharpe"]
    assert [a.cycle for a in ensemble] == [420, 470]
    assert all(a.forecast < a.current < a.baseline and a.z < -4.0 for a in ensemble)
    assert min(a.cycle for a in fired) == 420
    trend = next(t for t in analytics.trends(outcomes) if t.agent == "strategy:good"
                 and t.metric == "rolling_sharpe")
    assert trend.slope < 0 and trend.forecast < trend.current


def test_noise_raises_no_alert_in_2000_cycles_at_4_standard_errors() -> None:
    rng = np.random.default_rng(11)
    pnl = 0.001 * rng.standard_normal((2000, 2))
    analytics = Analytics(["good", "noise"], window=50, alert_drop_se=4.0, bars_per_year=105120)
    outcomes = outcomes_from(pnl)
    assert [a for end in range(100, 2001, 12) for a in analytics.alerts(outcomes[:end])] == []


def test_a_drop_in_live_performance_requests_a_meta_reevaluation_and_a_batch_refit(
    tmp_path,
) -> None:
    config = two_strategy_config(tmp_path)
    trainer = Trainer(config, "run")
    level = np.concatenate([np.full(300, 0.002), np.full(60, -0.003)])
    rng = np.random.default_rng(2)
    pnl = np.stack([level + 0.0005 * rng.standard_normal(360), level], axis=1)
    for outcome in outcomes_from(pnl):
        trainer.record(TrainerBatch(outcomes=(outcome,)))

    events = trainer.feedback().events
    kinds = [e.kind for e in events]
    assert "meta_reevaluation_requested" in kinds
    request = next(e for e in events if e.kind == "meta_reevaluation_requested")
    assert request.payload["alert"]["agent"] in ("ensemble", "desk")
    assert request.payload["run_id"] == "run" and 300 < request.cycle <= 360
    assert trainer.planner.plans["ensemble"].wants_batch.startswith("ensemble")
    assert trainer.feedback().events == ()

    fired = dict(trainer.analytics.last_alert)
    trainer.close()
    restarted = Trainer(config, "run")
    last = outcomes_from(pnl)[-1]
    restarted.record(TrainerBatch(outcomes=(last.model_copy(update={"cycle": 361}),)))
    assert {key: restarted.analytics.last_alert[key] for key in fired} == fired
    again = [
        (e.payload["agent"], e.payload["metric"])
        for e in restarted.feedback().events if e.kind == "performance_alert"
    ]
    assert fired and not set(again) & set(fired)
