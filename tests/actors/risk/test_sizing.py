"""Tests of the position sizers of the risk agent."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.risk.sizing import (
    fixed_fraction_size,
    flux_scale,
    fraction_to_quantity,
    kelly_fraction,
    kelly_fraction_from_moments,
    volatility_target_fraction,
)

DATA = Path(__file__).resolve().parents[3] / "data" / "freqtrade_BTCUSDT-like-5m.csv"
BARS_PER_YEAR_5M = 365 * 24 * 12

unit = st.floats(0.0, 1.0)
positive = st.floats(1e-6, 1e6)


def test_flux_scale_is_linear_from_one_to_floor() -> None:
    assert flux_scale(0.0) == 1.0
    assert flux_scale(0.5) == pytest.approx(0.625)
    assert flux_scale(1.0) == pytest.approx(0.25)
    assert flux_scale(1.0, flux_floor=0.0) == 0.0


def test_fixed_fraction_size_hand_computed() -> None:
    # 1% of 10 000 = 100 at risk; stop 2 * 5 = 10 away: 10 units (notional 1 000, below the cap).
    kwargs = {"equity": 10_000.0, "price": 100.0, "atr": 5.0}

    assert fixed_fraction_size(**kwargs, flux=0.0) == pytest.approx(10.0)
    assert fixed_fraction_size(**kwargs, flux=0.5) == pytest.approx(6.25)
    assert fixed_fraction_size(**kwargs, flux=1.0) == pytest.approx(2.5)


def test_fixed_fraction_size_when_atr_tiny_caps_notional_at_leverage() -> None:
    # Uncapped 100 / (2 * 50) = 1 BTC = 20 000 notional; leverage 1 on 10 000 allows 0.5 BTC.
    size = fixed_fraction_size(equity=10_000.0, price=20_000.0, atr=50.0, flux=0.0)

    assert size == pytest.approx(0.5)
    assert fixed_fraction_size(
        equity=10_000.0, price=20_000.0, atr=50.0, flux=0.0, max_leverage=3.0
    ) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("equity", {"equity": 0.0, "price": 100.0, "atr": 1.0}),
        ("equity", {"equity": -5.0, "price": 100.0, "atr": 1.0}),
        ("price", {"equity": 1_000.0, "price": 0.0, "atr": 1.0}),
        ("atr", {"equity": 1_000.0, "price": 100.0, "atr": -1.0}),
        ("atr", {"equity": 1_000.0, "price": 100.0, "atr": math.nan}),
    ],
)
def test_fixed_fraction_size_when_input_not_positive_raises_naming_it(
    name: str, kwargs: dict[str, float]
) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        fixed_fraction_size(**kwargs, flux=0.0)


def test_fixed_fraction_size_on_btc_5m_risks_fraction_at_stop_unless_capped() -> None:
    frame = pd.read_csv(DATA)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    high, low, close = (frame[c].to_numpy() for c in ("high", "low", "close"))
    true_range = np.maximum(high[1:], close[:-1]) - np.minimum(low[1:], close[:-1])
    atr = float(true_range[-14:].mean())
    price, equity = float(close[-1]), 50_000.0

    unlevered = fixed_fraction_size(equity=equity, price=price, atr=atr, flux=0.0)
    levered = fixed_fraction_size(equity=equity, price=price, atr=atr, flux=0.0, max_leverage=10.0)

    assert frame["timestamp"].dt.tz is not None
    # A 5-minute ATR is about 0.1% of price, so a 1% risk at a 2-ATR stop wants several times
    # equity: at leverage 1 the cap binds; at leverage 10 the stop loses exactly 1% of equity.
    assert unlevered * price == pytest.approx(equity)
    assert levered * price < 10.0 * equity
    assert levered * 2.0 * atr == pytest.approx(0.01 * equity)


def test_volatility_target_fraction_hand_computed() -> None:
    # 0.1% per 5-minute bar is 0.001 * sqrt(105 120) = 32.42% a year; 20% / 32.42% = 0.61686.
    fraction = volatility_target_fraction(
        realized_vol=0.001, target_vol=0.2, bars_per_year=BARS_PER_YEAR_5M, flux=0.0
    )

    assert fraction == pytest.approx(0.616861, rel=1e-5)
    assert fraction_to_quantity(fraction, equity=10_000.0, price=20_000.0) == pytest.approx(
        0.616861 / 2, rel=1e-5
    )


def test_volatility_target_fraction_when_quiet_caps_at_max_leverage() -> None:
    fraction = volatility_target_fraction(
        realized_vol=1e-6,
        target_vol=0.2,
        bars_per_year=BARS_PER_YEAR_5M,
        flux=1.0,
        max_leverage=2.0,
    )

    assert fraction == pytest.approx(2.0 * 0.25)


def test_volatility_target_fraction_when_vol_zero_raises_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^realized_vol "):
        volatility_target_fraction(realized_vol=0.0, target_vol=0.2, bars_per_year=252, flux=0.0)


def test_kelly_fraction_hand_computed() -> None:
    # p = 0.6, b = 1: f = 0.6 - 0.4 / 1 = 0.2.
    assert kelly_fraction(win_rate=0.6, payoff_ratio=1.0, flux=0.0, half_kelly=False) == (
        pytest.approx(0.2)
    )
    assert kelly_fraction(win_rate=0.6, payoff_ratio=1.0, flux=0.0) == pytest.approx(0.1)
    # p = 0.5, b = 2: f = 0.5 - 0.5 / 2 = 0.25, capped at 0.15, then flux 1 scales by 0.25.
    assert kelly_fraction(
        win_rate=0.5, payoff_ratio=2.0, flux=1.0, cap=0.15, half_kelly=False
    ) == pytest.approx(0.15 * 0.25)


def test_kelly_fraction_when_no_edge_is_zero() -> None:
    assert kelly_fraction(win_rate=0.4, payoff_ratio=1.0, flux=0.0) == 0.0
    assert kelly_fraction_from_moments(mean_return=-0.001, variance=1e-4, flux=0.0) == 0.0


def test_kelly_fraction_from_moments_hand_computed() -> None:
    # mu / sigma^2 = 0.001 / 0.0004 = 2.5; half 1.25; default cap 0.25.
    assert kelly_fraction_from_moments(
        mean_return=0.001, variance=0.0004, flux=0.0, cap=5.0, half_kelly=False
    ) == pytest.approx(2.5)
    assert kelly_fraction_from_moments(
        mean_return=0.001, variance=0.0004, flux=0.0, cap=5.0
    ) == pytest.approx(1.25)
    assert kelly_fraction_from_moments(
        mean_return=0.001, variance=0.0004, flux=0.0
    ) == pytest.approx(0.25)


def test_kelly_fraction_when_inputs_out_of_range_raise_naming_them() -> None:
    with pytest.raises(ValueError, match=r"^win_rate "):
        kelly_fraction(win_rate=1.2, payoff_ratio=1.0, flux=0.0)
    with pytest.raises(ValueError, match=r"^payoff_ratio "):
        kelly_fraction(win_rate=0.5, payoff_ratio=0.0, flux=0.0)
    with pytest.raises(ValueError, match=r"^variance "):
        kelly_fraction_from_moments(mean_return=0.01, variance=0.0, flux=0.0)
    with pytest.raises(ValueError, match=r"^flux "):
        kelly_fraction(win_rate=0.5, payoff_ratio=1.0, flux=1.5)


@given(
    win_rate=unit,
    payoff_ratio=positive,
    flux=unit,
    cap=st.floats(1e-3, 2.0),
    half_kelly=st.booleans(),
)
def test_kelly_fraction_never_exceeds_cap(
    win_rate: float, payoff_ratio: float, flux: float, cap: float, half_kelly: bool
) -> None:
    fraction = kelly_fraction(
        win_rate=win_rate, payoff_ratio=payoff_ratio, flux=flux, cap=cap, half_kelly=half_kelly
    )

    assert 0.0 <= fraction <= cap


@given(
    mean_return=st.floats(-1.0, 1.0),
    variance=st.floats(1e-8, 1.0),
    flux=unit,
    cap=st.floats(1e-3, 2.0),
)
def test_kelly_fraction_from_moments_never_exceeds_cap(
    mean_return: float, variance: float, flux: float, cap: float
) -> None:
    fraction = kelly_fraction_from_moments(
        mean_return=mean_return, variance=variance, flux=flux, cap=cap
    )

    assert 0.0 <= fraction <= cap


@given(
    flux_a=unit,
    flux_b=unit,
    equity=positive,
    price=positive,
    atr=positive,
    realized_vol=st.floats(1e-6, 1.0),
    win_rate=unit,
    payoff_ratio=positive,
    flux_floor=unit,
)
def test_sizers_when_flux_higher_never_size_larger(
    flux_a: float,
    flux_b: float,
    equity: float,
    price: float,
    atr: float,
    realized_vol: float,
    win_rate: float,
    payoff_ratio: float,
    flux_floor: float,
) -> None:
    calm, turbulent = min(flux_a, flux_b), max(flux_a, flux_b)

    def sizes(flux: float) -> tuple[float, float, float]:
        return (
            fixed_fraction_size(
                equity=equity, price=price, atr=atr, flux=flux, flux_floor=flux_floor
            ),
            volatility_target_fraction(
                realized_vol=realized_vol,
                target_vol=0.2,
                bars_per_year=BARS_PER_YEAR_5M,
                flux=flux,
                flux_floor=flux_floor,
            ),
            kelly_fraction(
                win_rate=win_rate, payoff_ratio=payoff_ratio, flux=flux, flux_floor=flux_floor
            ),
        )

    for at_turbulent, at_calm in zip(sizes(turbulent), sizes(calm), strict=True):
        assert at_turbulent <= at_calm
