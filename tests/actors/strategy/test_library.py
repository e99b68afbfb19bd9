from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.strategy.agent import StrategyAgent, blend, load_strategy
from actors.strategy.library import OHLCV, Momentum, SMACrossover, Strategy
from cycle.config import PROJECT_ROOT, StrategyConfig
from cycle.errors import ConfigError

ETH = pd.read_csv(PROJECT_ROOT / "data" / "freqtrade_ETH_BTC-5m.csv")


def bars_from(close: np.ndarray) -> OHLCV:
    return OHLCV(close, close * 1.01, close * 0.99, close, np.ones_like(close))


STRATEGIES: list[Strategy] = [
    SMACrossover("sma", {"fast": 5, "slow": 20}),
    Momentum("mom", {"lookback": 12, "threshold": 1.0}),
]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_no_look_ahead(strategy: Strategy, data) -> None:
    close = np.exp(np.cumsum(data.draw(st.lists(st.floats(-0.05, 0.05), min_size=30, max_size=120))))
    t = data.draw(st.integers(0, len(close) - 2))
    changed = close.copy()
    changed[t + 1 :] *= data.draw(st.floats(0.5, 2.0))
    assert np.array_equal(strategy.weights(bars_from(close))[: t + 1], strategy.weights(bars_from(changed))[: t + 1])


def test_sma_crossover_known_values() -> None:
    close = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 2.0])
    strategy = SMACrossover("sma", {"fast": 2, "slow": 4, "full_gap": 0.5})
    weights = strategy.weights(bars_from(close))
    assert weights[:3].tolist() == [0.0, 0.0, 0.0]
    assert weights[4] == pytest.approx((1.5 / 1.25 - 1) / 0.5)
    assert weights[5] == pytest.approx(min(1.0, (2.0 / 1.5 - 1) / 0.5))


def test_momentum_is_long_in_a_clean_uptrend_and_flat_on_a_flat_market() -> None:
    rng = np.random.default_rng(3)
    trend = np.exp(np.cumsum(0.01 + rng.normal(0, 0.002, 200)))
    flat = np.exp(np.cumsum(rng.normal(0, 0.002, 200)) * 0.0 + 0.0) * 1.0 + rng.normal(0, 1e-4, 200)
    strategy = Momentum("mom", {"lookback": 24, "threshold": 1.0})
    assert strategy.weights(bars_from(trend))[-1] == 1.0
    assert strategy.weights(bars_from(flat))[-50:].mean() < 0.3


def test_live_last_value_equals_the_backtest_series_on_real_data() -> None:
    close = ETH["close"].to_numpy()[:400]
    strategy = SMACrossover("sma", {"fast": 12, "slow": 48})
    series = strategy.weights(bars_from(close))
    for t in (60, 150, 399):
        assert strategy.weights(bars_from(close[max(0, t - 199) : t + 1]))[-1] == pytest.approx(series[t], abs=1e-12)


def test_higher_flux_makes_entries_stricter() -> None:
    close = ETH["close"].to_numpy()[:600]
    strategy = SMACrossover("sma", {"fast": 12, "slow": 48})
    calm, stormy = strategy.weights(bars_from(close), 0.0), strategy.weights(bars_from(close), 1.0)
    assert np.all(np.abs(stormy) <= np.abs(calm) + 1e-15)
    assert np.abs(stormy).sum() < np.abs(calm).sum()


def test_bad_strategy_configs_fail_with_the_field() -> None:
    with pytest.raises(ConfigError, match="strategies.x.class: cannot load"):
        load_strategy(StrategyConfig(name="x", class_path="actors.strategy.library:Nope"))
    with pytest.raises(ConfigError, match="strategies.x.params: .*fast"):
        load_strategy(StrategyConfig(name="x", class_path="actors.strategy.library:SMACrossover",
                                     params={"fast": 50, "slow": 10}))


def test_blend_weighs_signals_and_measures_agreement() -> None:
    target, confidence = blend({"a": 1.0, "b": -1.0}, {"a": 3.0, "b": 1.0}, {"a": 1.0, "b": 1.0})
    assert target == pytest.approx(0.5) and confidence == pytest.approx(0.5)
    target, confidence = blend({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 0.5})
    assert target == pytest.approx(0.5) and confidence == pytest.approx(1.0)


class Exploding(Strategy):
    style = "intraday"
    regimes = frozenset()
    Params = SMACrossover.Params
    param_ranges = {}

    @property
    def warmup(self) -> int:
        return 1

    def weights(self, bars, flux=0.0):
        raise ZeroDivisionError("bug in user code")


def test_a_buggy_strategy_is_contained_and_flat(tmp_path, monkeypatch) -> None:
    from tests.conftest import make_config

    config = make_config(tmp_path)
    agent = StrategyAgent(config)
    agent.initialize()
    agent.strategies["boom"] = Exploding("boom", {"fast": 2, "slow": 3})
    agent.weights["boom"] = 1.0
    assert agent._guarded(agent.strategies["boom"], bars_from(np.ones(10)), 0.0) == 0.0
    assert agent.failures["boom"] == 1
