"""The per-agent training strategies: adapters, market conditions and the forecaster."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from actors.trainer.strategies import (
    AdaptersTraining,
    ConditionsTraining,
    FitSettings,
    ForecasterTraining,
    Params,
    TrainingStrategy,
    replayed_outcomes,
)
from actors.trainer.templates import TEMPLATES, template_for
from actors.trainer.trainer import Trainer, judge
from cycle.messages import BrokerCall, CycleOutcome, TrainingMode
from tests.actors.trainer.helpers import START, FakeClock, trainer_config


def broker_outcomes(days: int, seed: int = 3) -> list[CycleOutcome]:
    """Every 10 minutes one call to each paper broker; paper_fast fails 70% of calls between
    14:00 and 17:00 UTC and 1% otherwise, paper_cheap fails 10% of calls at any hour."""
    rng = np.random.default_rng(seed)
    outcomes = []
    for i in range(days * 144):
        at = START + timedelta(minutes=10 * i)
        bad_hours = 14 <= at.hour < 17
        calls = (
            BrokerCall(broker="paper_fast", at=at, success=bool(rng.random() >= (0.7 if bad_hours
                       else 0.01)), latency_ms=5.0),
            BrokerCall(broker="paper_cheap", at=at, success=bool(rng.random() >= 0.1),
                       latency_ms=25.0),
        )
        outcomes.append(CycleOutcome(cycle=i + 1, market_time=at, strategy_pnl={}, weights={},
                                     broker_calls=calls))
    return outcomes


def test_adapters_learn_to_avoid_a_broker_in_its_bad_hours_and_that_is_deployed(tmp_path) -> None:
    config = trainer_config(tmp_path, agents=["adapters"])
    trainer = Trainer(config, "run", clock=FakeClock(1.0))
    trainer.outcomes = broker_outcomes(days=14)

    session = trainer.train("adapters", TrainingMode.BATCH)

    assert session.outcome == "deployed"
    assert session.score_before == pytest.approx((21 * 0.99 + 3 * 0.3) / 24, abs=0.01)
    assert session.score_after == pytest.approx((21 * 0.99 + 3 * 0.9) / 24, abs=0.01)
    rec = session.params_after["recommendations"]["paper_fast"]
    assert [(w["start_hour"], w["end_hour"]) for w in rec["avoid"]] == [(14, 17)]
    strategy = trainer.strategies["adapters"]
    assert strategy.ranked(session.params_after, START.replace(hour=15)) == [
        "paper_cheap", "paper_fast",
    ]
    assert strategy.ranked(session.params_after, START.replace(hour=9))[0] == "paper_fast"
    assert strategy.ranked(session.params_before, START.replace(hour=15))[0] == "paper_fast"


def test_adapters_without_patterns_keep_the_static_priority(tmp_path) -> None:
    config = trainer_config(tmp_path, agents=["adapters"])
    strategy = AdaptersTraining(config, TEMPLATES["adapters"])
    calm = [
        o.model_copy(update={"broker_calls": tuple(
            c.model_copy(update={"success": True}) for c in o.broker_calls
        )})
        for o in broker_outcomes(days=10)
    ]
    holdout = calm[-400].cycle
    candidate = strategy.fit([o for o in calm if o.cycle < holdout], strategy.initial_params(),
                             FitSettings(1.0, len(calm), TrainingMode.BATCH))
    verdict = judge(strategy.score_samples(strategy.initial_params(), calm, holdout),
                    strategy.score_samples(candidate, calm, holdout), 1.0)
    assert verdict.samples == 800 and verdict.score_before == verdict.score_after == 1.0
    assert not verdict.deploy
    assert strategy.not_ready(calm[:50]) == "50 cycles of history, 100 needed"


def test_conditions_search_stays_on_its_grid_and_scores_on_the_same_bars(tmp_path) -> None:
    config = trainer_config(tmp_path, agents=["conditions"])
    outcomes = replayed_outcomes(config, 1200)
    strategy = ConditionsTraining(config, TEMPLATES["conditions"])
    live = strategy.initial_params()
    candidate = strategy.fit(outcomes[:840], live, FitSettings(0.25, 1200, TrainingMode.BATCH))

    thresholds = candidate["thresholds"]
    assert thresholds["trend_threshold"] in (pytest.approx(1.6), 2.0, 2.5)
    assert thresholds["high_vol_pct"] in (87.5, 90.0, 92.5)
    before = strategy.score_samples(live, outcomes, 841)
    after = strategy.score_samples(candidate, outcomes, 841)
    assert len(before) == len(after) == 3 * (1200 - 840 - 12)
    assert set(np.unique(before)) <= {-0.5, 0.0, 0.5}
    train_live = strategy._mean(RegimeOf(live), outcomes[:840], 1)
    assert strategy._mean(RegimeOf(candidate), outcomes[:840], 1) >= train_live


def RegimeOf(params: Params):  # noqa: N802 - reads like the type it builds
    from actors.conditions.regime import RegimeThresholds

    return RegimeThresholds.model_validate(params["thresholds"])


def test_forecaster_refit_is_judged_on_held_out_bars_and_a_rejected_model_is_removed(
    tmp_path,
) -> None:
    config = trainer_config(tmp_path, agents=["forecaster"],
                            schedules={"forecaster": {"window": 700}})
    trainer = Trainer(config, "run")
    trainer.outcomes = replayed_outcomes(config, 700)

    session = trainer.train("forecaster", TrainingMode.CONTINUOUS)

    assert session.outcome in ("deployed", "rejected"), session.reason
    assert session.samples == 3 * 139
    assert session.holdout_from == 561
    artifact = Path(session.params_after["artifact"])
    assert artifact.is_file() == (session.outcome == "deployed")
    assert artifact.parent == tmp_path / "artifacts" / "run" / "forecaster"
    assert -0.75 < session.score_before < -0.6 and -0.75 < session.score_after < -0.6


def test_a_forecaster_version_without_a_model_predicts_one_half(tmp_path) -> None:
    config = trainer_config(tmp_path, agents=["forecaster"])
    strategy = ForecasterTraining(config, TEMPLATES["forecaster"], tmp_path)
    scores = strategy.score_samples({"artifact": None}, replayed_outcomes(config, 50), 41)
    assert len(scores) == 3 * 9
    assert np.allclose(scores, math.log(0.5))


class Worse(TrainingStrategy):
    """A strategy whose every candidate scores below the live version."""

    agent = "ensemble"
    discarded: list[Params] = []

    def initial_params(self) -> Params:
        return {"level": 1.0}

    def fit(self, train: Sequence[CycleOutcome], current: Params, settings: FitSettings) -> Params:
        return {"level": current["level"] - 0.1}

    def score_samples(
        self, params: Params, outcomes: Sequence[CycleOutcome], holdout_from: int
    ) -> np.ndarray:
        tail = [o for o in outcomes if o.cycle >= holdout_from]
        return np.full(len(tail), params["level"]) + np.linspace(0, 1, len(tail))

    def discard(self, params: Params) -> None:
        self.discarded.append(params)


def test_a_candidate_that_scores_worse_is_never_deployed_and_is_discarded(tmp_path) -> None:
    config = trainer_config(tmp_path, agents=["ensemble"])
    worse = Worse(config, template_for("ensemble", config))
    trainer = Trainer(config, "run", strategies={"ensemble": worse})
    trainer.outcomes = replayed_outcomes(config, 200)

    sessions = [trainer.train("ensemble", mode) for mode in TrainingMode]

    assert [s.outcome for s in sessions] == ["rejected", "rejected"]
    assert [s.score_after - s.score_before for s in sessions] == [pytest.approx(-0.1)] * 2
    assert trainer.store.active("ensemble") == (0, [])
    assert trainer.feedback().deployments == ()
    assert worse.discarded == [{"level": 0.9}, {"level": 0.9}]
