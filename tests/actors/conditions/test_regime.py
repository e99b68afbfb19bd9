"""Tests of the regime, market flux and supply/demand logic of the conditions agent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from actors.conditions.regime import (
    WARMUP_LABEL,
    MarketFlux,
    Regime,
    RegimeReading,
    RegimeState,
    RegimeThresholds,
    classify_regime,
    regime_series,
    supply_demand,
    volatility_percentile_series,
    volume_ratio,
)

DATA_DIR = Path(__file__).resolve().parents[3] / "data"
DATA = DATA_DIR / "freqtrade_BTCUSDT-like-5m.csv"
REAL_SERIES = ["freqtrade_BTCUSDT-like-5m.csv", "freqtrade_ETH_BTC-5m.csv"]
TREND_LABELS = {Regime.TRENDING_UP.value, Regime.TRENDING_DOWN.value}


def _prices(log_returns: np.ndarray, start: float = 100.0) -> np.ndarray:
    """Prices whose log returns are exactly ``log_returns``, starting at ``start``."""
    return np.asarray(start * np.exp(np.concatenate([[0.0], np.cumsum(log_returns)])))


def _random_walk(seed: int, n: int, drift: float = 0.0, noise: float = 0.001) -> np.ndarray:
    return _prices(np.random.default_rng(seed).normal(drift, noise, n))


def _burst(seed: int, calm: int = 1000, burst: int = 30) -> np.ndarray:
    """Calm random walk followed by ``burst`` bars at ten times the volatility, zero drift."""
    rng = np.random.default_rng(seed)
    return _prices(np.concatenate([rng.normal(0.0, 0.001, calm), rng.normal(0.0, 0.01, burst)]))


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    frame = pd.read_csv(DATA)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


@pytest.mark.parametrize("seed", range(5))
def test_classify_regime_when_clean_uptrend_labels_trending_up(seed: int) -> None:
    # Drift equal to the noise: the 48-bar drift t-statistic is about sqrt(48) ~ 6.9 >> 2.
    close = _random_walk(seed, 700, drift=0.001, noise=0.001)

    labels = regime_series(close)

    assert classify_regime(close) is Regime.TRENDING_UP
    assert np.mean(labels[48:] == Regime.TRENDING_UP.value) > 0.9


@pytest.mark.parametrize("seed", range(5))
def test_classify_regime_when_clean_downtrend_labels_trending_down(seed: int) -> None:
    close = _random_walk(seed, 700, drift=-0.001, noise=0.001)

    labels = regime_series(close)

    assert classify_regime(close) is Regime.TRENDING_DOWN
    assert np.mean(labels[48:] == Regime.TRENDING_DOWN.value) > 0.9


def test_regime_series_when_driftless_random_walk_rarely_labels_trend() -> None:
    # Under a driftless Gaussian walk the drift t-statistic is Student-t with 47 degrees of
    # freedom, so P(|t| > 2) ~ 5.1%. Bound: under 12% of bars per seed, under 8% on average.
    shares = []
    for seed in range(10):
        labels = regime_series(_random_walk(seed, 3000))[48:]
        shares.append(np.mean(np.isin(labels, list(TREND_LABELS))))

    assert max(shares) < 0.12
    assert np.mean(shares) < 0.08


def test_classify_regime_when_driftless_random_walk_last_bar_mostly_not_trend() -> None:
    # 60 independent walks, ~5% expected trend labels: at most 8 of 60 (13%).
    labels = [classify_regime(_random_walk(seed, 600)) for seed in range(100, 160)]

    assert sum(label.value in TREND_LABELS for label in labels) <= 8


@pytest.mark.parametrize("seed", range(5))
def test_classify_regime_when_volatility_burst_labels_high_volatility(seed: int) -> None:
    close = _burst(seed)

    assert classify_regime(close) is Regime.HIGH_VOLATILITY
    assert classify_regime(close[:1000]) is not Regime.HIGH_VOLATILITY


def test_regime_series_when_constant_prices_labels_ranging() -> None:
    labels = regime_series(np.full(200, 50.0))

    assert set(labels[48:]) == {Regime.RANGING.value}


def test_regime_series_warmup_bars_carry_warmup_label() -> None:
    labels = regime_series(_random_walk(0, 300), window=20)

    assert (labels[:20] == WARMUP_LABEL).all()
    assert (labels[20:] != WARMUP_LABEL).all()


returns_strategy = st.lists(
    st.floats(min_value=-0.05, max_value=0.05, allow_nan=False), min_size=1, max_size=80
)


@settings(max_examples=60, deadline=None)
@given(head=returns_strategy, tail_a=returns_strategy, tail_b=returns_strategy)
def test_regime_series_when_later_bars_change_earlier_labels_do_not(
    head: list[float], tail_a: list[float], tail_b: list[float]
) -> None:
    th = RegimeThresholds(window=5, vol_lookback=20)
    prefix = _prices(np.array(head))
    t = prefix.size - 1
    close_a = np.concatenate([prefix, prefix[-1] * np.exp(np.cumsum(tail_a))])
    close_b = np.concatenate([prefix, prefix[-1] * np.exp(np.cumsum(tail_b))])

    labels_a = regime_series(close_a, thresholds=th)
    labels_b = regime_series(close_b, thresholds=th)

    np.testing.assert_array_equal(labels_a[: t + 1], labels_b[: t + 1])
    np.testing.assert_array_equal(labels_a[: t + 1], regime_series(prefix, thresholds=th))
    if t >= th.window:
        assert classify_regime(prefix, thresholds=th).value == labels_a[t]


def test_regime_series_on_btc_5m_matches_classify_and_separates_volatility(
    btc: pd.DataFrame,
) -> None:
    close = btc["close"].to_numpy()
    log_returns = np.diff(np.log(close))
    trailing_abs = pd.Series(np.abs(log_returns)).rolling(48).mean().to_numpy()

    labels = regime_series(close)

    assert btc["timestamp"].dt.tz is not None
    assert set(labels[48:]) <= {r.value for r in Regime}
    for t in (100, 2000, 7777, close.size - 1):
        assert classify_regime(close[: t + 1]).value == labels[t]
    # Bars labelled high-volatility had a clearly larger mean absolute return over the window.
    realised = trailing_abs[47:]  # realised[i] covers the 48 returns ending at bar 48 + i
    high = realised[labels[48:] == Regime.HIGH_VOLATILITY.value]
    ranging = realised[labels[48:] == Regime.RANGING.value]
    assert 0.03 < high.size / realised.size < 0.3
    assert np.median(high) > 1.5 * np.median(ranging)


def test_volatility_percentile_series_when_burst_reaches_top_percentile() -> None:
    pct = volatility_percentile_series(_burst(0))

    assert np.isnan(pct[: 2 * 48 - 1]).all()
    assert pct[-1] == 100.0
    assert np.nanmin(pct) >= 0.0


def test_regime_thresholds_are_frozen_and_forbid_extra_fields() -> None:
    th = RegimeThresholds()

    with pytest.raises(ValidationError, match="frozen"):
        th.window = 10
    with pytest.raises(ValidationError, match="windw"):
        RegimeThresholds(windw=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="high_vol_pct"):
        RegimeThresholds(high_vol_pct=150.0)


def test_regime_series_thresholds_model_equals_keywords() -> None:
    close = _random_walk(3, 800)

    by_model = regime_series(close, thresholds=RegimeThresholds(window=20, trend_threshold=1.5))
    by_keywords = regime_series(close, window=20, trend_threshold=1.5)

    np.testing.assert_array_equal(by_model, by_keywords)


def test_regime_series_when_thresholds_and_conflicting_keyword_raises() -> None:
    with pytest.raises(ValueError, match="window"):
        regime_series(_random_walk(0, 100), window=20, thresholds=RegimeThresholds())


def test_classify_regime_when_too_short_raises() -> None:
    with pytest.raises(ValueError, match="window"):
        classify_regime(_random_walk(0, 47))


def test_regime_series_when_price_not_positive_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        regime_series(np.array([1.0, 2.0, 0.0, 3.0]))


def test_volume_ratio_is_last_volume_over_median_of_previous() -> None:
    volume = np.array([1.0, 100.0, 3.0, 2.0, 12.0])

    assert volume_ratio(volume, lookback=4) == pytest.approx(12.0 / 2.5)
    with pytest.raises(ValueError, match="lookback"):
        volume_ratio(volume, lookback=5)


@settings(max_examples=100, deadline=None)
@given(
    observations=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=100.0),
            st.floats(min_value=0.0, max_value=50.0),
        ),
        min_size=1,
        max_size=200,
    )
)
def test_market_flux_stays_in_unit_interval_with_bounded_steps(
    observations: list[tuple[float, float]],
) -> None:
    th = RegimeThresholds()
    flux = MarketFlux(th)
    previous = flux.level

    for vol_pct, ratio in observations:
        level = flux.update(vol_pct, ratio)
        assert 0.0 <= level <= 1.0
        assert abs(level - previous) <= th.flux_alpha + th.flux_deadband + 1e-12
        previous = level


def test_market_flux_when_volatility_and_volume_burst_rises() -> None:
    close = _burst(0)
    volume = np.full(close.size, 100.0)
    volume[-30:] = 400.0
    pct = volatility_percentile_series(close)
    flux = MarketFlux()

    levels = [
        flux.update(float(pct[t]), volume_ratio(volume[t - 48 : t + 1]))
        for t in range(2 * 48, close.size)
    ]
    calm, burst = levels[:-30], levels[-30:]

    # The volume part fades once the 48-bar median has caught up with the new volume, so the
    # peak is inside the burst; the level never drops below where the burst found it.
    assert max(burst) > 0.9
    assert max(burst) > max(calm) + 0.3
    assert min(burst) >= calm[-1]


def test_market_flux_when_noisy_input_changes_rarely() -> None:
    # Observations jitter around a flat mean; the smoothed value wanders but the dead-band holds
    # the published level: it changes on well under a tenth of the bars, the EMA on all of them.
    rng = np.random.default_rng(7)
    flux = MarketFlux()
    levels, emas = [], []
    for _ in range(2000):
        levels.append(flux.update(float(rng.uniform(30.0, 70.0)), float(rng.lognormal(0.0, 0.3))))
        emas.append(flux.snapshot()["ema"])

    level_changes = np.count_nonzero(np.diff(levels))
    ema_changes = np.count_nonzero(np.diff(emas))
    assert level_changes < 0.1 * len(levels)
    assert ema_changes > 0.99 * len(emas)


def test_market_flux_on_btc_5m_is_higher_in_high_volatility_bars(btc: pd.DataFrame) -> None:
    close = btc["close"].to_numpy()
    volume = btc["volume"].to_numpy()
    pct = volatility_percentile_series(close)
    labels = regime_series(close)
    flux = MarketFlux()
    start = 2 * 48

    levels = np.array(
        [
            flux.update(float(pct[t]), volume_ratio(volume[t - 48 : t + 1]))
            for t in range(start, close.size)
        ]
    )

    assert ((levels >= 0.0) & (levels <= 1.0)).all()
    high = levels[labels[start:] == Regime.HIGH_VOLATILITY.value]
    ranging = levels[labels[start:] == Regime.RANGING.value]
    assert high.mean() > ranging.mean() + 0.1


def test_market_flux_restore_resumes_identically() -> None:
    original = MarketFlux()
    for vol_pct in (10.0, 95.0, 99.0, 97.0):
        original.update(vol_pct, 2.5)
    resumed = MarketFlux()

    resumed.restore(original.snapshot())

    assert resumed.level == original.level
    assert resumed.update(50.0, 1.0) == original.update(50.0, 1.0)


def test_market_flux_rejects_bad_snapshot_and_inputs() -> None:
    flux = MarketFlux()

    with pytest.raises(ValueError, match="ema"):
        flux.restore({"level": 0.5})
    with pytest.raises(ValueError, match="out of"):
        flux.restore({"ema": 1.5, "level": 0.5})
    with pytest.raises(ValueError, match="vol_pct"):
        flux.update(120.0, 1.0)
    with pytest.raises(ValueError, match="volume_ratio"):
        flux.update(50.0, float("nan"))


def test_supply_demand_hand_computed() -> None:
    # Book (300 - 100) / 400 = 0.5; flow (10 - 30) / 40 = -0.5.
    assert supply_demand(300.0, 100.0, 10.0, 30.0) == pytest.approx(0.0)
    assert supply_demand(300.0, 100.0, 10.0, 30.0, book_weight=0.75) == pytest.approx(0.25)
    assert supply_demand(np.array([100.0, 200.0]), np.array([60.0, 40.0]), 0.0, 0.0) == (
        pytest.approx(0.25)
    )


def test_supply_demand_when_no_volume_is_neutral_and_negative_raises() -> None:
    assert supply_demand(0.0, 0.0, 0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="ask_volume"):
        supply_demand(1.0, -1.0, 1.0, 1.0)


volume = st.floats(min_value=0.0, max_value=1e9)


@given(bid=volume, ask=volume, buy=volume, sell=volume, weight=st.floats(0.0, 1.0))
def test_supply_demand_stays_in_unit_range(
    bid: float, ask: float, buy: float, sell: float, weight: float
) -> None:
    assert -1.0 <= supply_demand(bid, ask, buy, sell, book_weight=weight) <= 1.0


def _feed(state: RegimeState, close: np.ndarray) -> list[RegimeReading]:
    return [state.update(float(price)) for price in close]


def _assert_matches_vectorised(
    readings: list[RegimeReading], close: np.ndarray, th: RegimeThresholds
) -> None:
    """Readings agree bar for bar with `regime_series` and `volatility_percentile_series`."""
    labels = regime_series(close, thresholds=th)
    pct = volatility_percentile_series(close, window=th.window, vol_lookback=th.vol_lookback)
    incremental = np.array([WARMUP_LABEL if r.regime is None else r.regime.value for r in readings])

    np.testing.assert_array_equal(incremental, labels)
    np.testing.assert_allclose(
        [r.vol_percentile for r in readings], pct, rtol=0.0, atol=1e-12, equal_nan=True
    )


def _same_reading(a: RegimeReading, b: RegimeReading) -> bool:
    """Field-wise equality where NaN equals NaN (dataclass equality says NaN != NaN)."""
    return a.regime == b.regime and all(
        x == y or (math.isnan(x) and math.isnan(y))
        for x, y in [
            (a.vol_percentile, b.vol_percentile),
            (a.vol_ratio, b.vol_ratio),
            (a.trend_t, b.trend_t),
            (a.volatility, b.volatility),
        ]
    )


def _trend_burst_flat() -> np.ndarray:
    """Flat, then noise, an uptrend, a volatility burst, a downtrend and flat again.

    The flat stretches give zero volatilities (ties in the percentile count, a zero median for the
    ratio guard, a zero-std trend window); the rest visits every regime.
    """
    rng = np.random.default_rng(11)
    segments = [
        np.zeros(300),
        rng.normal(0.0, 0.001, 400),
        rng.normal(0.001, 0.001, 300),
        rng.normal(0.0, 0.01, 60),
        rng.normal(-0.001, 0.001, 300),
        np.zeros(200),
        rng.normal(0.0, 0.001, 300),
    ]
    return _prices(np.concatenate(segments))


@pytest.mark.parametrize("name", REAL_SERIES)
def test_regime_state_on_real_5m_data_matches_vectorised_every_bar(name: str) -> None:
    close = pd.read_csv(DATA_DIR / name)["close"].to_numpy()
    th = RegimeThresholds()
    assert close.size >= 2000

    readings = _feed(RegimeState(th), close)

    _assert_matches_vectorised(readings, close, th)
    # The other statistics follow their definitions (independent, non-bit-exact recomputation).
    log_returns = np.diff(np.log(close))
    t = close.size - 1
    window = log_returns[t - th.window : t]
    vols = [r.volatility for r in readings[t - th.vol_lookback + 1 :]]
    last = readings[t]
    assert last.volatility == pytest.approx(np.std(window, ddof=1), rel=1e-12)
    assert last.trend_t == pytest.approx(
        window.mean() / window.std(ddof=1) * math.sqrt(th.window), rel=1e-9, abs=1e-12
    )
    assert last.vol_ratio == pytest.approx(last.volatility / np.median(vols), rel=1e-12)


@pytest.mark.parametrize(
    "th",
    [
        RegimeThresholds(),
        RegimeThresholds(window=10, vol_lookback=31, high_vol_pct=80.0, trend_threshold=1.5),
        RegimeThresholds(window=12, vol_lookback=40, high_vol_ratio=1.0),
        # Over 600 values np.nanmedian takes another code path; the median must still agree.
        RegimeThresholds(window=20, vol_lookback=700),
    ],
)
def test_regime_state_on_trend_and_burst_matches_vectorised_every_bar(
    th: RegimeThresholds,
) -> None:
    close = _trend_burst_flat()

    readings = _feed(RegimeState(th), close)

    _assert_matches_vectorised(readings, close, th)
    seen = {r.regime for r in readings}
    assert seen >= {None, *Regime}
    assert any(math.isinf(r.vol_ratio) for r in readings)  # zero-median guard exercised


def test_regime_state_warmup_readings_are_none_and_nan() -> None:
    th = RegimeThresholds(window=5, vol_lookback=20)

    readings = _feed(RegimeState(th), _random_walk(0, 30))

    assert all(r.regime is None and math.isnan(r.volatility) for r in readings[:5])
    assert all(r.regime is not None and r.volatility > 0.0 for r in readings[5:])
    assert all(math.isnan(r.vol_percentile) and math.isnan(r.vol_ratio) for r in readings[:9])
    assert all(0.0 < r.vol_percentile <= 100.0 for r in readings[9:])


@settings(max_examples=60, deadline=None)
@given(
    returns=st.lists(
        st.sampled_from([-0.02, -0.001, 0.0, 0.0, 0.001, 0.003, 0.02]), min_size=1, max_size=120
    )
)
def test_regime_state_on_tie_heavy_series_matches_vectorised(returns: list[float]) -> None:
    # Few distinct returns make many identical windows: ties at the "at or below" count.
    th = RegimeThresholds(window=4, vol_lookback=9, high_vol_pct=60.0)
    close = _prices(np.array(returns))

    _assert_matches_vectorised(_feed(RegimeState(th), close), close, th)


@pytest.mark.parametrize("cut", [0, 1, 30, 60, 1200, 1700])
def test_regime_state_restore_from_json_continues_identically(cut: int) -> None:
    th = RegimeThresholds(window=20, vol_lookback=300)
    close = _trend_burst_flat()
    original = RegimeState(th)
    _feed(original, close[:cut])

    resumed = RegimeState.restore(json.loads(json.dumps(original.snapshot(), allow_nan=False)))

    assert resumed.thresholds == th
    after_original = _feed(original, close[cut:])
    after_resumed = _feed(resumed, close[cut:])
    assert all(_same_reading(a, b) for a, b in zip(after_original, after_resumed, strict=True))


def test_regime_state_rejects_bad_close_and_keeps_its_state() -> None:
    state = RegimeState(RegimeThresholds(window=5, vol_lookback=20))
    _feed(state, _random_walk(0, 40))
    before = state.snapshot()

    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            state.update(bad)

    assert state.snapshot() == before


def test_regime_state_rejects_bad_snapshot() -> None:
    state = RegimeState(RegimeThresholds(window=5, vol_lookback=20))
    _feed(state, _random_walk(0, 40))
    good = state.snapshot()

    with pytest.raises(ValueError, match="returns"):
        RegimeState.restore({k: v for k, v in good.items() if k != "returns"})
    with pytest.raises(ValueError, match="non-finite"):
        RegimeState.restore({**good, "volatilities": [*good["volatilities"][:-1], math.nan]})
    with pytest.raises(ValueError, match="more history"):
        RegimeState.restore({**good, "returns": good["returns"] * 2})
    with pytest.raises(ValueError, match="do not fit"):
        RegimeState.restore({**good, "returns": good["returns"][:-1]})
    with pytest.raises(ValueError, match="no last price"):
        RegimeState.restore({**good, "last_log_price": None})
    with pytest.raises(ValueError, match="window"):
        RegimeState.restore({**good, "thresholds": {"window": 1}})
