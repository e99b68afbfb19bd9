from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.strategy.agent import StrategyAgent, blend, load_strategy
from actors.strategy.library import (
    ALL_REGIMES,
    OHLCV,
    DonchianBreakout,
    EMAMomentum,
    Ensemble,
    ForecasterStrategy,
    MeanReversion,
    Momentum,
    SMACrossover,
    Strategy,
    _edge_weights,
    ensemble_blend,
)
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
    steps = data.draw(st.lists(st.floats(-0.05, 0.05), min_size=30, max_size=120))
    close = np.exp(np.cumsum(steps))
    t = data.draw(st.integers(0, len(close) - 2))
    changed = close.copy()
    changed[t + 1 :] *= data.draw(st.floats(0.5, 2.0))
    before = strategy.weights(bars_from(close))[: t + 1]
    assert np.array_equal(before, strategy.weights(bars_from(changed))[: t + 1])


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
        live = strategy.weights(bars_from(close[max(0, t - 199) : t + 1]))[-1]
        assert live == pytest.approx(series[t], abs=1e-12)


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


# ------------------------------------------------------------------ the full library

LIBRARY: list[type[Strategy]] = [
    SMACrossover, Momentum, EMAMomentum, MeanReversion, DonchianBreakout, ForecasterStrategy,
    Ensemble,
]


def real_bars(name: str = "ETH_BTC", rows: int | None = None) -> OHLCV:
    frame = pd.read_csv(PROJECT_ROOT / "data" / f"freqtrade_{name}-5m.csv")
    frame = frame if rows is None else frame.head(rows)
    return OHLCV(*(frame[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")))


def window(bars: OHLCV, end: int, size: int) -> OHLCV:
    """Bars ``end - size + 1 .. end``: what the live engine holds at bar ``end``."""
    start = max(0, end - size + 1)
    columns = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    return OHLCV(*(np.ascontiguousarray(a[start : end + 1]) for a in columns))


def ingredients(seed: int, size: int) -> np.ndarray:
    """Random steps, wicks, opening gaps and volumes; bar t depends on column t only."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, rng.uniform(0.001, 0.03), size)
    wicks = rng.uniform(0, 0.01, (2, size))
    gaps = rng.normal(0, 0.002, size)
    volume = rng.lognormal(3, 1, size)
    return np.vstack([steps, wicks, gaps[None], volume[None]])


def assemble(parts: np.ndarray) -> OHLCV:
    """Valid bars (high and low bracket open and close) built causally from ``ingredients``."""
    close = 100 * np.exp(np.cumsum(parts[0]))
    open_ = np.concatenate([[100.0], close[:-1]]) * (1 + parts[3])
    high = np.maximum(open_, close) * (1 + parts[1])
    low = np.minimum(open_, close) * (1 - parts[2])
    return OHLCV(open_, high, low, close, parts[4])


@st.composite
def ohlcv_with_changed_future(draw, min_size: int, max_size: int) -> tuple[OHLCV, OHLCV, int]:
    """Valid random bars, a cut ``t`` and a copy whose bars after ``t`` are redrawn."""
    size = draw(st.integers(min_size, max_size))
    t = draw(st.integers(0, size - 2))
    seed = draw(st.integers(0, 2**31))
    raw = ingredients(seed, size)
    changed = raw.copy()
    changed[:, t + 1 :] = ingredients(seed + 1, size)[:, t + 1 :]
    return assemble(raw), assemble(changed), t


SHORT_PARAMS: dict[type[Strategy], dict] = {
    SMACrossover: {"fast": 3, "slow": 8},
    Momentum: {"lookback": 6},
    EMAMomentum: {"fast": 3, "slow": 8, "atr_period": 5, "threshold": 0.1},
    MeanReversion: {"period": 5, "band": 1.0, "rsi_period": 3, "oversold": 45, "overbought": 55,
                    "max_hold": 6},
    DonchianBreakout: {"channel": 6, "exit_channel": 3, "max_hold": 10},
    ForecasterStrategy: {"threshold": 0.0, "full_edge": 0.05},
    Ensemble: {"ml_threshold": 0.0, "ml_full_edge": 0.05},
}


@pytest.mark.parametrize("cls", LIBRARY, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(case=ohlcv_with_changed_future(min_size=60, max_size=260), flux=st.floats(0.0, 1.0))
def test_no_look_ahead_in_weights_and_confidence(cls, case, flux) -> None:
    bars, changed, t = case
    strategy = cls("s", SHORT_PARAMS[cls])
    for before, after in zip(strategy.signals(bars, flux), strategy.signals(changed, flux),
                             strict=True):
        assert before.shape == (len(bars),)
        assert np.array_equal(before[: t + 1], after[: t + 1])
        assert np.all(np.isfinite(before))
    weights, confidence = strategy.signals(bars, flux)
    assert np.all(np.abs(weights) <= 1.0) and np.all((confidence >= 0) & (confidence <= 1))


def test_property_draws_make_every_strategy_speak() -> None:
    """The no-look-ahead property is only worth something if the strategies trade on its data."""
    bars = assemble(ingredients(11, 260))
    for cls in LIBRARY:
        assert np.count_nonzero(cls("s", SHORT_PARAMS[cls]).weights(bars)) > 0, cls.__name__


@pytest.mark.parametrize("cls", LIBRARY, ids=lambda c: c.__name__)
def test_every_strategy_declares_style_regimes_params_and_ranges(cls) -> None:
    strategy = cls("s")
    assert cls.style in ("intraday", "swing")
    assert cls.regimes and cls.regimes <= ALL_REGIMES
    assert strategy.warmup >= 1 and strategy.unavailable == ""
    defaults = cls.Params().model_dump()
    assert cls.param_ranges and set(cls.param_ranges) <= set(defaults)
    for name, (low, high) in cls.param_ranges.items():
        assert low < high and low <= defaults[name] <= high, name
    with pytest.raises(ValidationError):
        cls.Params(unknown=1)
    assert cls.describe()["param_ranges"] == cls.param_ranges


@pytest.mark.parametrize("cls", LIBRARY, ids=lambda c: c.__name__)
def test_live_window_gives_the_backtest_value_on_real_data(cls) -> None:
    bars = real_bars("LTC_BTC", 3200)
    strategy = cls("s")
    weights, confidence = strategy.signals(bars)
    assert np.count_nonzero(weights) > 50
    for t in (520, 1400, 2650, 3199):
        live = strategy.latest(window(bars, t, 500))
        assert live[0] == pytest.approx(weights[t], abs=1e-6)
        assert live[1] == pytest.approx(confidence[t], abs=1e-6)


@pytest.mark.parametrize("cls", [c for c in LIBRARY if c is not Ensemble], ids=lambda c: c.__name__)
def test_higher_flux_never_commits_more(cls) -> None:
    bars = real_bars("ADA_BTC", 2500)
    strategy = cls("s")
    calm, stormy = strategy.weights(bars, 0.0), strategy.weights(bars, 1.0)
    assert np.all(np.abs(stormy) <= np.abs(calm) + 1e-12)
    assert np.abs(stormy).sum() < np.abs(calm).sum()


def test_ensemble_trades_less_in_a_turbulent_market() -> None:
    bars = real_bars("ADA_BTC", 2500)
    strategy = Ensemble("e")
    assert np.abs(strategy.weights(bars, 1.0)).sum() < np.abs(strategy.weights(bars, 0.0)).sum()


def ref_ema(x: list[float], n: int) -> list[float]:
    out, alpha = [math.nan] * len(x), 2 / (n + 1)
    e = sum(x[:n]) / n
    out[n - 1] = e
    for t in range(n, len(x)):
        e += alpha * (x[t] - e)
        out[t] = e
    return out


def ref_atr(h: list[float], lo: list[float], c: list[float], n: int) -> list[float]:
    tr = [h[0] - lo[0]] + [max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1]))
                           for t in range(1, len(h))]
    out = [math.nan] * len(h)
    avg = sum(tr[:n]) / n
    out[n - 1] = avg
    for t in range(n, len(h)):
        avg = (avg * (n - 1) + tr[t]) / n
        out[t] = avg
    return out


def test_ema_momentum_matches_a_loop_reference_on_real_data() -> None:
    bars = real_bars("ETH_BTC", 900)
    p = {"fast": 12, "slow": 48, "atr_period": 14, "threshold": 0.25, "full_atr": 1.0}
    fast, slow = ref_ema(bars.close.tolist(), 12), ref_ema(bars.close.tolist(), 48)
    atr_ = ref_atr(bars.high.tolist(), bars.low.tolist(), bars.close.tolist(), 14)
    expected = []
    for t in range(len(bars)):
        if t < 4 * 48 - 1:
            expected.append(0.0)
            continue
        s = (fast[t] - slow[t]) / atr_[t]
        expected.append(math.copysign(min(max((abs(s) - 0.25) / 1.0, 0.0), 1.0), s))
    got = EMAMomentum("e", p).weights(bars)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert np.count_nonzero(got) > 300


def test_mean_reversion_buys_a_confirmed_drop_and_exits_at_the_mean() -> None:
    rng = np.random.default_rng(5)
    close = np.concatenate([100 + rng.normal(0, 0.2, 200), [97.5, 96.5, 95.8, 96.6, 98.0,
                                                              99.5, 100.4, 100.2, 99.9]])
    bars = OHLCV(close, close + 0.1, close - 0.1, close, np.ones_like(close))
    strategy = MeanReversion("mr", {"period": 20, "band": 2.0, "rsi_period": 14, "max_hold": 48})
    weights, confidence = strategy.signals(bars)
    mid = pd.Series(close).rolling(20).mean().to_numpy()
    std = pd.Series(close).rolling(20).std(ddof=0).to_numpy()
    z = (close - mid) / std
    assert z[200] < -2.0  # RSI(14) is 29.2 there (see test_indicators for RSI itself)
    held = np.flatnonzero(weights)
    first_back = 200 + int(np.argmax(z[200:] >= 0))
    assert held.tolist() == list(range(200, first_back)) == [200, 201, 202, 203, 204]
    np.testing.assert_allclose(weights[held], np.clip(-z[held] / 2.0, 0, 1), atol=1e-9)
    assert weights[203] == pytest.approx(-z[203] / 2.0) and 0.9 < weights[203] < 1.0
    assert np.all(confidence[held] > 0) and not np.any(weights[first_back:])
    assert np.all(weights[:200] == 0.0)


def test_donchian_breakout_holds_until_the_exit_channel_breaks() -> None:
    base = np.tile([100.0, 100.5, 99.5, 100.2], 50)
    rise = 102.0 + 0.05 * np.arange(30)
    close = np.concatenate([base, rise, [101.0, 101.2]])
    bars = OHLCV(close, close + 0.2, close - 0.2, close, np.ones_like(close))
    weights, confidence = DonchianBreakout("d", {"channel": 48, "exit_channel": 24,
                                                 "max_hold": 96}).signals(bars)
    assert not np.any(weights[:200])
    assert weights[200:230].tolist() == [1.0] * 30  # 102 > the prior 48-bar high of 100.7
    assert weights[230:].tolist() == [0.0, 0.0]  # 101 < the prior 24-bar low, > the 48-bar low
    assert confidence[200] == 0.6  # the breakout bar traded no more volume than usual
    capped = DonchianBreakout("d", {"channel": 48, "exit_channel": 24, "max_hold": 2})
    assert capped.weights(bars)[200:204].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_forecaster_weights_follow_the_probability_edge() -> None:
    weights, confidence = _edge_weights(np.array([0.62, 0.55, 0.51, 0.40, np.nan]), 0.02, 0.1)
    np.testing.assert_allclose(weights, [1.0, 0.375, 0.0, -1.0, 0.0])
    np.testing.assert_allclose(confidence, [1.0, 0.5, 0.1, 1.0, 0.0])


def test_forecaster_strategy_uses_the_shipped_model_live_and_in_backtests() -> None:
    strategy = ForecasterStrategy("f")
    assert strategy.model is not None and strategy.warmup == strategy.model.required_bars == 80
    bars = real_bars("ETH_BTC", 400)
    proba = strategy.probabilities(bars)
    assert np.isnan(proba[:79]).all() and np.isfinite(proba[79:]).all()
    for t in (79, 250, 399):
        single = strategy.model.predict_proba(window(bars, t, 80).__dict__)
        assert single == pytest.approx(proba[t], abs=1e-6)


def test_forecaster_without_weights_is_flat_and_says_why(tmp_path) -> None:
    strategy = ForecasterStrategy("f", {"model_path": str(tmp_path / "missing.pt")})
    assert "forecaster weights not found" in strategy.unavailable
    bars = real_bars("ETH_BTC", 300)
    assert strategy.latest(bars) == (0.0, 0.0)
    assert not np.any(strategy.weights(bars))
    ensemble = Ensemble("e", {"model_path": str(tmp_path / "missing.pt")})
    technical = np.mean([m.weights(bars) for m in ensemble.members], axis=0)
    np.testing.assert_allclose(ensemble.weights(bars), np.clip(technical, -1, 1))


def test_ensemble_blend_rewards_agreement() -> None:
    weights, confidence = ensemble_blend(
        np.array([0.5, 0.5, 0.0, 1.0]), np.array([0.5, -0.5, 0.6, 1.0]), 0.4, 0.5
    )
    np.testing.assert_allclose(weights, [0.75, -0.1, 0.36, 1.0])
    np.testing.assert_allclose(confidence, [0.75, 0.05, 0.27, 1.0])
