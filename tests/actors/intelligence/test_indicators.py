"""Tests for actors.intelligence.indicators.

Known values come from three independent sources: numbers worked by hand in the comments,
straightforward pure-Python loops written here (no numpy tricks), and the published
StockCharts worked examples for RSI and ATR.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from actors.intelligence import indicators as ind

DATA_DIR = Path(__file__).resolve().parents[3] / "data"
REAL_DATA = ("freqtrade_ETH_BTC-5m.csv", "freqtrade_BTCUSDT-like-5m.csv")
NAN = math.nan

Bars = dict[str, np.ndarray]


def load_bars(name: str) -> Bars:
    """Bundled OHLCV bars as float64 arrays keyed by column."""
    frame = pd.read_csv(DATA_DIR / name)
    columns = ("open", "high", "low", "close", "volume")
    return {k: frame[k].to_numpy(dtype=np.float64) for k in columns}


def assert_nan_equal(actual: Any, expected: Any) -> None:
    """Exact equality where NaN equals NaN: the no-look-ahead contract is bit-for-bit."""
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def assert_close(actual: Any, expected: Any, rel: float = 1e-9, atol: float = 0.0) -> None:
    """Same NaN positions and ``|a - e| <= rel * max(|e|, floor) + atol``.

    The floor is a millionth of the series' own scale, so values that cross zero (MACD, OBV)
    are not held to a relative precision that no float computation has near zero; ``atol``
    covers differences of large numbers computed by different formulas (a MACD line).
    """
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
    finite = ~np.isnan(e)
    if not finite.any():
        return
    floor = 1e-6 * float(np.max(np.abs(e[finite])))
    tol = rel * np.maximum(np.abs(e[finite]), floor) + atol
    worst = np.max(np.abs(a[finite] - e[finite]) - tol)
    assert worst <= 0.0, f"max excess over tolerance {worst}"


# --------------------------------------------------------------------------------------------
# Pure-Python reference implementations (loops over lists, written from the textbook rules)
# --------------------------------------------------------------------------------------------


def ref_sma(x: list[float], n: int) -> list[float]:
    return [NAN if t < n - 1 else sum(x[t - n + 1 : t + 1]) / n for t in range(len(x))]


def ref_ema(x: list[float], n: int) -> list[float]:
    out = [NAN] * len(x)
    if len(x) < n:
        return out
    alpha = 2 / (n + 1)
    e = sum(x[:n]) / n
    out[n - 1] = e
    for t in range(n, len(x)):
        e = alpha * x[t] + (1 - alpha) * e
        out[t] = e
    return out


def ref_wilder(values: list[float], n: int) -> list[float]:
    """Wilder average of ``values``, first value at index ``n - 1``."""
    out = [NAN] * len(values)
    if len(values) < n:
        return out
    avg = sum(values[:n]) / n
    out[n - 1] = avg
    for t in range(n, len(values)):
        avg = (avg * (n - 1) + values[t]) / n
        out[t] = avg
    return out


def ref_rsi(close: list[float], n: int) -> list[float]:
    changes = [close[t] - close[t - 1] for t in range(1, len(close))]
    gains = ref_wilder([max(d, 0.0) for d in changes], n)
    losses = ref_wilder([max(-d, 0.0) for d in changes], n)
    out = [NAN]
    for g, lo in zip(gains, losses, strict=True):
        if math.isnan(g):
            out.append(NAN)
        elif g + lo == 0:
            out.append(50.0)
        else:
            out.append(100 - 100 / (1 + g / lo) if lo > 0 else 100.0)
    return out


def ref_true_range(h: list[float], lo: list[float], c: list[float]) -> list[float]:
    return [h[0] - lo[0]] + [
        max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])) for t in range(1, len(h))
    ]


def ref_adx(
    h: list[float], lo: list[float], c: list[float], n: int
) -> tuple[list[float], list[float], list[float]]:
    """ADX with Wilder's *running-sum* smoothing (S = S - S / n + v), the book's formulation.

    The library uses the equivalent running average; the DI ratios are identical, so this is
    an independent check of the algebra.
    """
    size = len(h)
    adx_out, pdi_out, mdi_out = [NAN] * size, [NAN] * size, [NAN] * size
    tr, pdm, mdm = [], [], []
    for t in range(1, size):
        up, down = h[t] - h[t - 1], lo[t - 1] - lo[t]
        pdm.append(up if up > down and up > 0 else 0.0)
        mdm.append(down if down > up and down > 0 else 0.0)
        tr.append(max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1])))
    if len(tr) < n:
        return adx_out, pdi_out, mdi_out
    s_tr, s_p, s_m = sum(tr[:n]), sum(pdm[:n]), sum(mdm[:n])
    dxs = []
    for k in range(n - 1, len(tr)):
        if k >= n:
            s_tr = s_tr - s_tr / n + tr[k]
            s_p = s_p - s_p / n + pdm[k]
            s_m = s_m - s_m / n + mdm[k]
        pdi = 100 * s_p / s_tr if s_tr else 0.0
        mdi = 100 * s_m / s_tr if s_tr else 0.0
        pdi_out[k + 1], mdi_out[k + 1] = pdi, mdi
        dxs.append(100 * abs(pdi - mdi) / (pdi + mdi) if pdi + mdi else 0.0)
    for i, v in enumerate(ref_wilder(dxs, n)):
        adx_out[n + i] = v
    return adx_out, pdi_out, mdi_out


# --------------------------------------------------------------------------------------------
# Published worked examples
# --------------------------------------------------------------------------------------------

# StockCharts "RSI" worked example (Wilder's method), closes as published with 4 decimals.
STOCKCHARTS_RSI_CLOSES = [
    44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
    45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
    46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
    43.4205, 42.6628, 43.1314,
]
STOCKCHARTS_RSI = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38,
    54.71, 50.42, 39.99, 41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
]

# StockCharts "Average True Range" worked example (QQQ), ATR(14) from the 14th bar.
STOCKCHARTS_ATR_HIGH = [
    48.70, 48.72, 48.90, 48.87, 48.82, 49.05, 49.20, 49.35, 49.92, 50.19, 50.12, 49.66, 49.88,
    50.19, 50.36, 50.57, 50.65, 50.43, 49.63, 50.33, 50.29, 50.17, 49.32, 48.50, 48.32, 46.80,
    47.80, 48.39, 48.66, 48.79,
]
STOCKCHARTS_ATR_LOW = [
    47.79, 48.14, 48.39, 48.37, 48.24, 48.64, 48.94, 48.86, 49.50, 49.87, 49.20, 48.90, 49.43,
    49.73, 49.26, 50.09, 50.30, 49.21, 48.98, 49.61, 49.20, 49.43, 48.08, 47.64, 41.55, 44.28,
    47.31, 47.20, 47.90, 47.73,
]
STOCKCHARTS_ATR_CLOSE = [
    48.16, 48.61, 48.75, 48.63, 48.74, 49.03, 49.07, 49.32, 49.91, 50.13, 49.53, 49.50, 49.75,
    50.03, 50.31, 50.52, 50.41, 49.34, 49.37, 50.23, 49.24, 49.93, 48.43, 48.18, 46.57, 45.41,
    47.77, 47.72, 48.62, 47.85,
]
STOCKCHARTS_ATR = [
    0.56, 0.59, 0.59, 0.57, 0.62, 0.62, 0.64, 0.67, 0.69, 0.78, 0.78, 1.21, 1.30, 1.38, 1.37,
    1.34, 1.32,
]

# A 20-value series for the loop references: trending, reversing and flat stretches.
SERIES20 = [
    10.0, 10.5, 10.2, 10.8, 11.4, 11.1, 11.1, 11.9, 12.3, 12.0,
    11.6, 11.2, 11.5, 10.9, 10.4, 10.4, 10.9, 11.3, 11.8, 12.4,
]


def test_rsi_matches_stockcharts_worked_example() -> None:
    got = ind.rsi(STOCKCHARTS_RSI_CLOSES, 14)
    assert np.isnan(got[:14]).all()
    # The published table is rounded to 2 decimals.
    np.testing.assert_allclose(got[14:], STOCKCHARTS_RSI, atol=0.005 + 1e-9)
    # Full-precision first and last values reproduced by other implementations of the example.
    assert got[14] == pytest.approx(70.53278948, abs=1e-8)
    assert got[-1] == pytest.approx(37.77295211, abs=1e-8)


def test_atr_matches_stockcharts_worked_example() -> None:
    got = ind.atr(STOCKCHARTS_ATR_HIGH, STOCKCHARTS_ATR_LOW, STOCKCHARTS_ATR_CLOSE, 14)
    assert np.isnan(got[:13]).all()
    # Published to 2 decimals from a spreadsheet of slightly more precise prices: 0.006.
    np.testing.assert_allclose(got[13:], STOCKCHARTS_ATR, atol=0.006)
    # First ATR is the plain mean of the first 14 true ranges (first one is high - low).
    tr = ref_true_range(STOCKCHARTS_ATR_HIGH, STOCKCHARTS_ATR_LOW, STOCKCHARTS_ATR_CLOSE)
    assert got[13] == pytest.approx(sum(tr[:14]) / 14, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Hand-computed values
# --------------------------------------------------------------------------------------------


def test_sma_and_ema_hand_values() -> None:
    assert_nan_equal(ind.sma([2, 4, 6, 8, 10, 12], 3), [NAN, NAN, 4, 6, 8, 10])
    # n=3: alpha = 0.5, seed = mean(1, 2, 3) = 2, then 2 + 0.5 * (4 - 2) = 3, ...
    assert_nan_equal(ind.ema([1, 2, 3, 4, 5, 6], 3), [NAN, NAN, 2, 3, 4, 5])
    assert np.isnan(ind.ema([1.0, 2.0], 3)).all()


def test_rsi_hand_values() -> None:
    # Changes +1, -0.5, +1, 0; n=2 seeds avg gain 0.5, avg loss 0.25 -> 66.67;
    # then gain (0.5 + 1) / 2 = 0.75, loss 0.125 -> 85.71; then 0.375 / 0.0625 -> 85.71.
    got = ind.rsi([10.0, 11.0, 10.5, 11.5, 11.5], 2)
    np.testing.assert_allclose(got[2:], [200 / 3, 600 / 7, 600 / 7], rtol=1e-12)
    assert np.isnan(got[:2]).all()


def test_rsi_extremes_up_down_and_flat() -> None:
    assert ind.rsi(np.arange(1.0, 20.0), 5)[-1] == 100.0
    assert ind.rsi(np.arange(20.0, 1.0, -1.0), 5)[-1] == 0.0
    assert_nan_equal(ind.rsi(np.full(8, 3.0), 5)[5:], [50.0] * 3)


def test_true_range_and_atr_hand_values() -> None:
    h, lo, c = [10.0, 11.0, 12.0, 11.0], [9.0, 10.0, 10.0, 9.0], [9.5, 10.5, 11.0, 9.5]
    # TR: 10-9 = 1; max(1, |11-9.5|, |10-9.5|) = 1.5; max(2, 1.5, 0.5) = 2; max(2, 0, 2) = 2.
    assert_nan_equal(ind.true_range(h, lo, c), [1.0, 1.5, 2.0, 2.0])
    # ATR(3): mean(1, 1.5, 2) = 1.5, then (1.5 * 2 + 2) / 3 = 5/3.
    np.testing.assert_allclose(ind.atr(h, lo, c, 3)[2:], [1.5, 5 / 3], rtol=1e-12)


def test_bollinger_hand_values() -> None:
    mid, upper, lower = ind.bollinger([1.0, 2.0, 3.0, 4.0], 4, 2.0)
    # Population std of 1..4 is sqrt(1.25).
    assert mid[3] == 2.5
    assert upper[3] == pytest.approx(2.5 + 2 * math.sqrt(1.25), rel=1e-15)
    assert lower[3] == pytest.approx(2.5 - 2 * math.sqrt(1.25), rel=1e-15)
    assert np.isnan(mid[:3]).all() and np.isnan(upper[:3]).all()


def test_obv_hand_values() -> None:
    got = ind.obv([10.0, 11.0, 11.0, 10.0, 12.0], [5.0, 7.0, 9.0, 3.0, 4.0])
    assert_nan_equal(got, [0.0, 7.0, 7.0, 4.0, 8.0])


def test_vwap_hand_values() -> None:
    # Typical prices 3, 6, 9 with volumes 1, 2, 0 -> n=2: (3 + 12) / 3 = 5, then 12 / 2 = 6.
    high, low, close = [4.0, 7.0, 10.0], [2.0, 5.0, 8.0], [3.0, 6.0, 9.0]
    assert_nan_equal(ind.vwap(high, low, close, [1.0, 2.0, 0.0], 2), [NAN, 5.0, 6.0])
    # A window without volume has no traded price.
    assert np.isnan(ind.vwap(high, low, close, [1.0, 0.0, 0.0], 2)[2])


def test_donchian_hand_values() -> None:
    upper, lower, mid = ind.donchian([5.0, 7.0, 6.0, 4.0], [3.0, 4.0, 2.0, 3.0], 2)
    assert_nan_equal(upper, [NAN, 7.0, 7.0, 6.0])
    assert_nan_equal(lower, [NAN, 3.0, 2.0, 2.0])
    assert_nan_equal(mid, [NAN, 5.0, 4.5, 4.0])


def test_log_returns_and_realized_volatility_hand_values() -> None:
    close = np.exp([0.0, 0.1, 0.3, 0.2])
    np.testing.assert_allclose(ind.log_returns(close)[1:], [0.1, 0.2, -0.1], rtol=1e-12)
    assert np.isnan(ind.log_returns(close)[0])
    vol = ind.realized_volatility(close, 3)
    assert np.isnan(vol[:3]).all()
    assert vol[3] == pytest.approx(statistics.stdev([0.1, 0.2, -0.1]), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Pure-Python loop references on a 20-value series and on the worked-example bars
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 5, 20])
def test_sma_ema_rsi_match_loop_reference(n: int) -> None:
    assert_close(ind.sma(SERIES20, n), ref_sma(SERIES20, n), rel=1e-12)
    assert_close(ind.ema(SERIES20, n), ref_ema(SERIES20, n), rel=1e-12)
    assert_close(ind.rsi(SERIES20, n), ref_rsi(SERIES20, n), rel=1e-12)


def test_macd_matches_loop_reference() -> None:
    line, signal, hist = ind.macd(SERIES20, 3, 6, 4)
    ref_line = [f - s for f, s in zip(ref_ema(SERIES20, 3), ref_ema(SERIES20, 6), strict=True)]
    ref_signal = [NAN] * 5 + ref_ema(ref_line[5:], 4)
    # The line is a difference of two ~11.0 EMAs: compare to 1e-12 absolute (1e-13 of price).
    ref_hist = [a - b for a, b in zip(ref_line, ref_signal, strict=True)]
    assert_close(line, ref_line, rel=1e-12, atol=1e-12)
    assert_close(signal, ref_signal, rel=1e-12, atol=1e-12)
    assert_close(hist, ref_hist, rel=1e-12, atol=1e-12)
    assert np.isnan(signal[:8]).all() and not np.isnan(signal[8])


def test_bollinger_and_realized_volatility_match_loop_reference() -> None:
    mid, upper, lower = ind.bollinger(SERIES20, 5, 1.5)
    std = [NAN] * 4 + [statistics.pstdev(SERIES20[t - 4 : t + 1]) for t in range(4, 20)]
    assert_close(mid, ref_sma(SERIES20, 5), rel=1e-12)
    assert_close(upper, [m + 1.5 * s for m, s in zip(ref_sma(SERIES20, 5), std, strict=True)])
    assert_close(lower, [m - 1.5 * s for m, s in zip(ref_sma(SERIES20, 5), std, strict=True)])
    returns = [math.log(SERIES20[t] / SERIES20[t - 1]) for t in range(1, 20)]
    vol = [NAN] * 5 + [statistics.stdev(returns[t - 5 : t]) for t in range(5, 20)]
    assert_close(ind.realized_volatility(SERIES20, 5), vol, rel=1e-12)


@pytest.mark.parametrize("n", [3, 5, 14])
def test_atr_adx_match_loop_reference(n: int) -> None:
    h, lo, c = STOCKCHARTS_ATR_HIGH, STOCKCHARTS_ATR_LOW, STOCKCHARTS_ATR_CLOSE
    assert_close(ind.atr(h, lo, c, n), ref_wilder(ref_true_range(h, lo, c), n), rel=1e-12)
    got = ind.adx(h, lo, c, n)
    for actual, expected in zip(got, ref_adx(h, lo, c, n), strict=True):
        assert_close(actual, expected, rel=1e-12)
    assert np.isnan(got[0][: 2 * n - 1]).all() and not np.isnan(got[0][2 * n - 1])
    assert np.isnan(got[1][:n]).all() and not np.isnan(got[1][n])


def test_adx_is_high_in_a_clean_trend() -> None:
    t = np.arange(60.0)
    adx_line, plus_di, minus_di = ind.adx(t + 1.0, t, t + 0.5, 14)
    # Every bar moves up by one and never down: -DI is 0, DX is 100, so ADX is 100.
    assert adx_line[-1] == pytest.approx(100.0)
    assert minus_di[-1] == 0.0 and plus_di[-1] > 0.0


# --------------------------------------------------------------------------------------------
# Incremental twins
# --------------------------------------------------------------------------------------------

StateCase = tuple[
    Callable[[Bars], Any],  # vectorised: bars -> array or tuple of arrays
    Callable[[], Any],  # state factory
    Callable[[Any, Bars, int], Any],  # feed bar i into a state
]


def _close(state: Any, b: Bars, i: int) -> Any:
    return state.update(b["close"][i])


def _hlc(state: Any, b: Bars, i: int) -> Any:
    return state.update(b["high"][i], b["low"][i], b["close"][i])


STATE_CASES: dict[str, StateCase] = {
    "sma": (lambda b: ind.sma(b["close"], 20), lambda: ind.SMAState(20), _close),
    "ema": (lambda b: ind.ema(b["close"], 20), lambda: ind.EMAState(20), _close),
    "rsi": (lambda b: ind.rsi(b["close"], 14), lambda: ind.RSIState(14), _close),
    "macd": (lambda b: ind.macd(b["close"]), lambda: ind.MACDState(), _close),
    "bollinger": (lambda b: ind.bollinger(b["close"]), lambda: ind.BollingerState(), _close),
    "atr": (lambda b: ind.atr(b["high"], b["low"], b["close"]), lambda: ind.ATRState(), _hlc),
    "adx": (lambda b: ind.adx(b["high"], b["low"], b["close"]), lambda: ind.ADXState(), _hlc),
    "obv": (
        lambda b: ind.obv(b["close"], b["volume"]),
        lambda: ind.OBVState(),
        lambda s, b, i: s.update(b["close"][i], b["volume"][i]),
    ),
    "vwap": (
        lambda b: ind.vwap(b["high"], b["low"], b["close"], b["volume"], 20),
        lambda: ind.VWAPState(20),
        lambda s, b, i: s.update(b["high"][i], b["low"][i], b["close"][i], b["volume"][i]),
    ),
    "donchian": (
        lambda b: ind.donchian(b["high"], b["low"], 20),
        lambda: ind.DonchianState(20),
        lambda s, b, i: s.update(b["high"][i], b["low"][i]),
    ),
    "realized_vol": (
        lambda b: ind.realized_volatility(b["close"], 20),
        lambda: ind.RealizedVolState(20),
        _close,
    ),
}


def _as_columns(result: Any) -> np.ndarray:
    """Vectorised output as (bars, outputs), tuples stacked column-wise."""
    if isinstance(result, tuple):
        return np.column_stack(result)
    return np.asarray(result)[:, None]


def _feed(state: Any, feed: Callable[[Any, Bars, int], Any], b: Bars, idx: range) -> Iterator[Any]:
    for i in idx:
        yield feed(state, b, i)


@pytest.fixture(scope="module", params=REAL_DATA)
def real_bars(request: pytest.FixtureRequest) -> Bars:
    return load_bars(request.param)


@pytest.mark.parametrize("name", sorted(STATE_CASES))
def test_incremental_matches_vectorised_on_real_data(name: str, real_bars: Bars) -> None:
    vectorised, factory, feed = STATE_CASES[name]
    expected = _as_columns(vectorised(real_bars))
    size = expected.shape[0]
    got = np.array(list(_feed(factory(), feed, real_bars, range(size))), dtype=np.float64)
    assert_close(got.reshape(expected.shape), expected, rel=1e-9)
    assert np.isfinite(expected[-1]).all()


@pytest.mark.parametrize("name", sorted(STATE_CASES))
def test_snapshot_restore_continues_identically(name: str) -> None:
    _, factory, feed = STATE_CASES[name]
    bars = load_bars(REAL_DATA[0])
    size, cut = 120, 37  # cut inside the warm-up of the slow indicators (MACD, ADX)
    uninterrupted = list(_feed(factory(), feed, bars, range(size)))
    state = factory()
    first = list(_feed(state, feed, bars, range(cut)))
    wire = json.dumps(state.snapshot(), allow_nan=False)  # strictly JSON, no NaN tokens
    restored = type(state).restore(json.loads(wire))
    rest = list(_feed(restored, feed, bars, range(cut, size)))
    assert_nan_equal(np.array(first + rest, dtype=np.float64), uninterrupted)


def test_restore_rejects_a_snapshot_of_another_indicator() -> None:
    with pytest.raises(ValueError, match="SMAState"):
        ind.EMAState.restore(ind.SMAState(3).snapshot())


def test_rolling_state_forgets_a_nan_after_the_window() -> None:
    state = ind.SMAState(3)
    values = [state.update(v) for v in [1.0, NAN, 2.0, 3.0, 4.0, 5.0]]
    assert_nan_equal(values, [NAN, NAN, NAN, NAN, 3.0, 4.0])
    assert_nan_equal(ind.sma([1.0, NAN, 2.0, 3.0, 4.0, 5.0], 3), values)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: ind.sma([1.0, 2.0], 0), ValueError),
        (lambda: ind.sma([1.0, 2.0], 2.0), TypeError),
        (lambda: ind.sma(np.ones((2, 2)), 1), ValueError),
        (lambda: ind.atr([1.0, 2.0], [1.0], [1.0, 2.0]), ValueError),
        (lambda: ind.macd([1.0] * 40, fast=26, slow=12), ValueError),
        (lambda: ind.realized_volatility([1.0, 2.0, 3.0], 1), ValueError),
        (lambda: ind.EMAState(True), TypeError),
    ],
)
def test_invalid_arguments_raise(call: Callable[[], Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


# --------------------------------------------------------------------------------------------
# No look-ahead (hypothesis)
# --------------------------------------------------------------------------------------------

_STEP = st.floats(-5.0, 5.0, allow_nan=False)  # percent close-to-close
_GAP = st.floats(-1.0, 1.0, allow_nan=False)  # percent open gap
_WICK = st.floats(0.0, 2.0, allow_nan=False)  # percent beyond the body
_VOLUME = st.floats(0.0, 1000.0, allow_nan=False)
_INGREDIENTS = {"step": _STEP, "gap": _GAP, "up": _WICK, "down": _WICK, "volume": _VOLUME}


def build_bars(raw: dict[str, np.ndarray]) -> Bars:
    """Valid OHLCV bars built causally: bar t depends only on ingredients [:t + 1]."""
    close = 100.0 * np.exp(np.cumsum(raw["step"]) / 100.0)
    prev = np.concatenate([[100.0], close[:-1]])
    open_ = prev * (1.0 + raw["gap"] / 100.0)
    high = np.maximum(open_, close) * (1.0 + raw["up"] / 100.0)
    low = np.minimum(open_, close) * (1.0 - raw["down"] / 100.0)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": raw["volume"]}


@st.composite
def bars_with_changed_future(draw: st.DrawFn, max_size: int = 70) -> tuple[Bars, Bars, int]:
    """Random bars, a cut ``t`` and a copy whose bars after ``t`` are redrawn."""
    size = draw(st.integers(1, max_size))
    t = draw(st.integers(0, size - 1))
    raw = {k: draw(arrays(np.float64, size, elements=s)) for k, s in _INGREDIENTS.items()}
    changed = {}
    for k, s in _INGREDIENTS.items():
        tail = draw(arrays(np.float64, size - t - 1, elements=s))
        changed[k] = np.concatenate([raw[k][: t + 1], tail])
    return build_bars(raw), build_bars(changed), t


VECTORISED: dict[str, Callable[[Bars], Any]] = {
    **{name: case[0] for name, case in STATE_CASES.items()},
    "sma_short": lambda b: ind.sma(b["close"], 3),
    "ema_short": lambda b: ind.ema(b["close"], 3),
    "rsi_short": lambda b: ind.rsi(b["close"], 3),
    "macd_short": lambda b: ind.macd(b["close"], 3, 5, 2),
    "bollinger_short": lambda b: ind.bollinger(b["close"], 4),
    "true_range": lambda b: ind.true_range(b["high"], b["low"], b["close"]),
    "atr_short": lambda b: ind.atr(b["high"], b["low"], b["close"], 3),
    "adx_short": lambda b: ind.adx(b["high"], b["low"], b["close"], 3),
    "vwap_short": lambda b: ind.vwap(b["high"], b["low"], b["close"], b["volume"], 3),
    "donchian_short": lambda b: ind.donchian(b["high"], b["low"], 3),
    "log_returns": lambda b: ind.log_returns(b["close"]),
    "realized_vol_short": lambda b: ind.realized_volatility(b["close"], 3),
}


@pytest.mark.parametrize("name", sorted(VECTORISED))
@settings(max_examples=40, deadline=None)
@given(case=bars_with_changed_future())
def test_no_look_ahead(name: str, case: tuple[Bars, Bars, int]) -> None:
    bars, changed, t = case
    before = _as_columns(VECTORISED[name](bars))
    after = _as_columns(VECTORISED[name](changed))
    assert before.shape == after.shape == (bars["close"].size, before.shape[1])
    assert_nan_equal(after[: t + 1], before[: t + 1])
