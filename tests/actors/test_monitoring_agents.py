"""Learner, fees monitor and circuit breaker: the agents of steps 7 and 8."""

from __future__ import annotations

import math

import pytest

from actors.failure_prevention import CircuitBreaker
from actors.learner import LearnerAgent, multiplicative_update
from cycle.config import MonitorConfig
from cycle.messages import FailureInputs, LearnerInputs, ResourceReading, StrategyDecision
from tests.conftest import make_config

CALM = ResourceReading(memory_percent=40.0, cpu_percent=10.0, process_rss_mb=100.0)


def test_multiplicative_update_keeps_weights_normalised_and_bounded() -> None:
    weights = multiplicative_update({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": -1.0}, 10.0, 0.05, 0.9)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["a"] == pytest.approx(0.9) and weights["b"] == pytest.approx(0.1)
    assert multiplicative_update({"a": 0.5, "b": 0.5}, {}, 10.0, 0.05, 0.9) == {"a": 0.5, "b": 0.5}


def test_learner_moves_weight_to_the_strategy_whose_signals_earn(tmp_path) -> None:
    strategies = [
        {"name": "sma_crossover", "class": "actors.strategy.library:SMACrossover"},
        {"name": "momentum", "class": "actors.strategy.library:Momentum"},
    ]
    untrained = make_config(tmp_path, strategies=strategies, trainer={"enabled": False})
    agent = LearnerAgent(untrained)
    agent.initialize()
    price = 1.0
    for cycle in range(1, 60):
        decision = StrategyDecision(
            cycle=cycle, targets={},
            signals={"sma_crossover": {"ETH/BTC": 1.0}, "momentum": {"ETH/BTC": -1.0}}, weights={},
        )
        price *= math.exp(0.002)
        output = agent.step(LearnerInputs(cycle=cycle, decision=decision, closes={"ETH/BTC": price}))
    assert output.weights["sma_crossover"] == pytest.approx(0.9)
    assert output.cumulative_pnl["sma_crossover"] == pytest.approx(58 * 0.002)
    assert output.cumulative_pnl["momentum"] == pytest.approx(-58 * 0.002)


def test_breaker_opens_on_errors_cools_down_and_closes() -> None:
    breaker = CircuitBreaker(MonitorConfig(error_rate_threshold=0.3, window_cycles=4, breaker_cooldown_cycles=3))
    assert breaker.observe(FailureInputs(cycle=1, steps=10, step_errors=0, orders=1, rejections=0), CALM).breaker == "closed"
    report = breaker.observe(FailureInputs(cycle=2, steps=10, step_errors=10, orders=0, rejections=0), CALM)
    assert report.breaker_open and "step error rate" in report.reason
    for cycle in range(3, 7):
        report = breaker.observe(FailureInputs(cycle=cycle, steps=10, step_errors=0, orders=0, rejections=0), CALM)
    assert report.breaker == "closed"


def test_breaker_opens_on_a_rejection_streak_and_on_memory_pressure() -> None:
    config = MonitorConfig(max_rejection_streak=3, max_memory_percent=90.0)
    breaker = CircuitBreaker(config)
    for cycle in range(1, 4):
        report = breaker.observe(FailureInputs(cycle=cycle, steps=10, step_errors=0, orders=1, rejections=1), CALM)
    assert report.breaker_open and "3 order rejections in a row" in report.reason
    full = CALM.model_copy(update={"memory_percent": 97.0})
    fresh = CircuitBreaker(config).observe(FailureInputs(cycle=1, steps=10, step_errors=0, orders=0, rejections=0), full)
    assert fresh.breaker_open and "memory at 97%" in fresh.reason
