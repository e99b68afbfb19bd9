"""When the meta-agent runs again: on schedule, on a sagging live Sharpe, or on request."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuning.reevaluation import ReevaluationPolicy, ReevaluationTrigger


def feed(trigger: ReevaluationTrigger, equity: list[float] | np.ndarray) -> list[tuple[int, str]]:
    return [(i, r) for i, e in enumerate(equity) if (r := trigger.observe(float(e)))]


def test_fires_every_n_cycles_while_things_go_well() -> None:
    trigger = ReevaluationTrigger(ReevaluationPolicy(every_cycles=10, window=5))
    fired = feed(trigger, 1.0 + 0.001 * np.arange(35))
    assert [i for i, _ in fired] == [9, 19, 29]
    assert fired[0][1] == "scheduled: 10 cycles since the last evaluation"


def test_fires_early_when_live_sharpe_over_the_window_falls_below_the_threshold() -> None:
    policy = ReevaluationPolicy(every_cycles=1000, window=20, sharpe_threshold=0.0)
    trigger = ReevaluationTrigger(policy)
    rising = 1.0 + 0.001 * np.arange(50)
    falling = rising[-1] - 0.002 * np.arange(1, 40) + 0.0005 * (np.arange(1, 40) % 2)
    fired = feed(trigger, np.concatenate((rising, falling)))
    # 6 falling cycles (about -0.0016 each) outweigh the window's 14 rising ones (+0.001 each)
    assert fired[0][0] == 50 + 6
    assert fired[0][1].startswith("live Sharpe -") and "over 20 cycles < 0.00" in fired[0][1]
    # after firing it waits for a full new window before the Sharpe test may fire again
    assert fired[1][0] - fired[0][0] == 20


def test_live_sharpe_is_the_annualised_sharpe_of_the_window() -> None:
    trigger = ReevaluationTrigger(ReevaluationPolicy(window=4, bar_seconds=300, every_cycles=99))
    equity = [100.0, 101.0, 100.5, 102.0, 101.0]
    for value in equity:
        trigger.observe(value)
    r = np.diff(equity) / equity[:-1]
    expected = r.mean() / r.std(ddof=1) * math.sqrt(365 * 86400 / 300)
    assert trigger.live_sharpe() == pytest.approx(expected, rel=1e-12)


def test_a_request_fires_on_the_next_observation_only() -> None:
    trigger = ReevaluationTrigger(ReevaluationPolicy(every_cycles=100, window=10))
    trigger.observe(1.0)
    trigger.request("trainer: meta_reevaluation_requested")
    assert trigger.observe(1.0) == "trainer: meta_reevaluation_requested"
    assert trigger.observe(1.0) is None
