"""Tests for actors.intelligence.correlation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.intelligence import correlation as cor
from tests.actors.intelligence.test_indicators import (
    DATA_DIR,
    REAL_DATA,
    Bars,
    assert_nan_equal,
    bars_with_changed_future,
)

TARGET = np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.0], [-0.3, 0.0, 1.0]])


def _correlated_closes(size: int, seed: int) -> dict[str, np.ndarray]:
    """Closes whose log returns have exactly the correlation structure ``TARGET``."""
    rng = np.random.default_rng(seed)
    returns = rng.standard_normal((size - 1, 3)) @ np.linalg.cholesky(TARGET).T * 0.01
    log_prices = np.vstack([np.zeros(3), np.cumsum(returns, axis=0)])
    closes = 100.0 * np.exp(log_prices)
    return {"BTC": closes[:, 0], "ETH": closes[:, 1], "LTC": closes[:, 2]}


def test_recovers_constructed_correlation() -> None:
    closes = _correlated_closes(3001, seed=7)
    names, corr = cor.rolling_correlation(closes, window=3000)
    assert names == ("BTC", "ETH", "LTC")
    # Sampling std of a correlation estimate from 3000 returns is about 0.02 at most.
    np.testing.assert_allclose(corr[-1], TARGET, atol=0.05)


def test_matches_numpy_corrcoef_on_each_window() -> None:
    closes = _correlated_closes(200, seed=8)
    _, corr = cor.rolling_correlation(closes, window=30)
    returns = np.diff(np.log(np.column_stack(list(closes.values()))), axis=0)
    for t in (30, 31, 117, 199):
        expected = np.corrcoef(returns[t - 30 : t].T)
        np.testing.assert_allclose(corr[t], expected, rtol=1e-12, atol=1e-14)
        assert_nan_equal(corr[t], corr[t].T)
        assert np.diag(corr[t]).tolist() == [1.0, 1.0, 1.0]


def test_short_history_is_nan_not_invented() -> None:
    closes = _correlated_closes(31, seed=9)
    _, corr = cor.rolling_correlation(closes, window=30)
    assert np.isnan(corr[:30]).all()  # 30 returns need 31 closes
    assert np.isfinite(corr[30]).all()
    _, too_short = cor.rolling_correlation(closes, window=31)
    assert too_short.shape == (31, 3, 3) and np.isnan(too_short).all()
    frame = cor.correlation_matrix(closes, window=31)
    assert list(frame.index) == list(frame.columns) == ["BTC", "ETH", "LTC"]
    assert frame.isna().all().all()


def test_late_listing_symbol_is_nan_until_it_has_a_full_window() -> None:
    closes = _correlated_closes(120, seed=10)
    closes["LTC"][:50] = np.nan  # listed at bar 50: first return at bar 51
    _, corr = cor.rolling_correlation(closes, window=20)
    # BTC/ETH are unaffected from bar 20.
    assert np.isfinite(corr[20:, 0, 1]).all()
    # LTC needs returns 51..70, so bar 70 is its first full window.
    assert np.isnan(corr[:70, 2, :]).all() and np.isnan(corr[:70, :, 2]).all()
    assert np.isfinite(corr[70:, 2, :]).all()


def test_missing_or_non_positive_close_blanks_the_windows_that_contain_it() -> None:
    closes = _correlated_closes(100, seed=11)
    closes["ETH"][60] = 0.0  # not a price: returns at 60 and 61 are unknown
    _, corr = cor.rolling_correlation(closes, window=10)
    pair = corr[:, 0, 1]
    assert np.isfinite(pair[10:60]).all()
    assert np.isnan(pair[60:71]).all()  # windows ending 60..70 contain return 60 or 61
    assert np.isfinite(pair[71:]).all()
    assert np.isfinite(corr[:, 0, 2][10:]).all()  # BTC/LTC never touched


def test_flat_symbol_has_undefined_correlation() -> None:
    closes = _correlated_closes(50, seed=12)
    closes["LTC"] = np.full(50, 42.0)
    _, corr = cor.rolling_correlation(closes, window=10)
    assert np.isnan(corr[10:, 2, :]).all() and np.isnan(corr[10:, :, 2]).all()
    assert np.isfinite(corr[10:, 0, 1]).all()


def test_input_forms_agree() -> None:
    closes = _correlated_closes(80, seed=13)
    matrix = np.column_stack(list(closes.values()))
    _, from_dict = cor.rolling_correlation(closes, 15)
    _, from_frame = cor.rolling_correlation(pd.DataFrame(closes), 15)
    names, from_array = cor.rolling_correlation(matrix, 15, symbols=["a", "b", "c"])
    assert names == ("a", "b", "c")
    assert cor.rolling_correlation(matrix, 15)[0] == ("0", "1", "2")
    assert_nan_equal(from_frame, from_dict)
    assert_nan_equal(from_array, from_dict)
    frame = cor.correlation_matrix(closes, 15)
    assert frame.loc["BTC", "ETH"] == from_dict[-1, 0, 1]


@pytest.mark.parametrize(
    "closes",
    [
        {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0]},  # misaligned
        np.ones(5),  # 1-D: which symbol?
        {},  # nothing to correlate
    ],
)
def test_bad_input_raises(closes: object) -> None:
    with pytest.raises(ValueError):
        cor.rolling_correlation(closes, 2)  # type: ignore[arg-type]


def test_real_pairs_match_pandas_rolling_corr() -> None:
    frames = [
        pd.read_csv(DATA_DIR / name, index_col="timestamp")["close"].rename(name[10:13])
        for name in (REAL_DATA[0], "freqtrade_LTC_BTC-5m.csv")
    ]
    closes = pd.concat(frames, axis=1, join="inner")  # align on timestamps, never by position
    assert len(closes) > 5000
    names, corr = cor.rolling_correlation(closes, window=500)
    assert names == ("ETH", "LTC")
    returns = np.log(closes).diff()
    expected = returns["ETH"].rolling(500).corr(returns["LTC"]).to_numpy()
    np.testing.assert_allclose(corr[:, 0, 1], expected, rtol=0, atol=1e-9)
    assert np.isfinite(corr[500:]).all()


@settings(max_examples=60, deadline=None)
@given(case=bars_with_changed_future(max_size=40), window=st.integers(2, 6))
def test_no_look_ahead(case: tuple[Bars, Bars, int], window: int) -> None:
    bars, changed, t = case

    def corr(b: Bars) -> np.ndarray:
        return cor.rolling_correlation({k: b[k] for k in ("open", "close", "high")}, window)[1]

    assert_nan_equal(corr(changed)[: t + 1], corr(bars)[: t + 1])
