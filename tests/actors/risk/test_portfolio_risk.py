"""Tests of VaR, CVaR and return entropy of the risk agent."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.risk.portfolio_risk import (
    entropy_exposure_scale,
    gaussian_cvar,
    gaussian_var,
    historical_cvar,
    historical_var,
    parametric_cvar,
    parametric_var,
    portfolio_historical_cvar,
    portfolio_historical_var,
    portfolio_parametric_cvar,
    portfolio_parametric_var,
    portfolio_returns,
    return_entropy,
)

DATA = Path(__file__).resolve().parents[3] / "data" / "freqtrade_BTCUSDT-like-5m.csv"
NORMAL = NormalDist()


@pytest.fixture(scope="module")
def btc_returns() -> np.ndarray:
    frame = pd.read_csv(DATA)
    assert pd.to_datetime(frame["timestamp"], utc=True).dt.tz is not None
    close = np.asarray(frame["close"], dtype=float)
    returns: np.ndarray = close[1:] / close[:-1] - 1.0
    return returns


@pytest.fixture
def ladder() -> np.ndarray:
    """-5.0%, -4.9%, ..., +4.9% in shuffled order: 100 returns with a known tail."""
    return np.random.default_rng(0).permutation(np.arange(-50, 50) / 1000.0)


def test_historical_var_when_tail_mass_whole_is_kth_worst_return(ladder: np.ndarray) -> None:
    # n * p = 100 * 0.05 = 5 (5.000000000000004 in floating point): the 5th worst, -4.6%.
    assert historical_var(ladder, 0.95) == pytest.approx(0.046)
    assert historical_var(ladder, 0.99) == pytest.approx(0.050)


def test_historical_cvar_when_tail_mass_whole_is_mean_of_worst(ladder: np.ndarray) -> None:
    worst_five = [0.050, 0.049, 0.048, 0.047, 0.046]

    assert historical_cvar(ladder, 0.95) == pytest.approx(sum(worst_five) / 5)
    assert historical_cvar(ladder, 0.99) == pytest.approx(0.050)


def test_historical_var_and_cvar_when_tail_mass_fractional_weight_last_return() -> None:
    # n * p = 50 * 0.05 = 2.5: VaR is the 3rd worst; CVaR weights the worst two fully, the 3rd half.
    returns = np.concatenate([[-0.10, -0.06, -0.04], np.full(47, 0.01)])

    assert historical_var(returns, 0.95) == pytest.approx(0.04)
    assert historical_cvar(returns, 0.95) == pytest.approx((0.10 + 0.06 + 0.5 * 0.04) / 2.5)


def test_historical_var_and_cvar_when_fewer_than_one_tail_observation_use_worst() -> None:
    returns = np.array([0.01, -0.02, 0.03])

    assert historical_var(returns, 0.99) == pytest.approx(0.02)
    assert historical_cvar(returns, 0.99) == pytest.approx(0.02)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_historical_var_and_cvar_on_gaussian_samples_match_closed_form(confidence: float) -> None:
    n, mean, std = 200_000, 0.0005, 0.01
    samples = np.random.default_rng(42).normal(mean, std, n)
    p = 1.0 - confidence
    z = NORMAL.inv_cdf(p)  # lower-tail quantile of the standard normal
    shortfall = NORMAL.pdf(z) / p  # E[-Z | Z < z]
    # Asymptotic standard errors: of the sample p-quantile, sqrt(p (1 - p) / n) / density; of the
    # expected shortfall, sqrt((Var[Z | Z < z] + (1 - p)(shortfall + z)^2) / (n p)).
    se_var = std * math.sqrt(p * (1.0 - p) / n) / NORMAL.pdf(z)
    tail_variance = 1.0 - z * NORMAL.pdf(z) / p - (NORMAL.pdf(z) / p) ** 2
    se_cvar = std * math.sqrt((tail_variance + (1.0 - p) * (shortfall + z) ** 2) / (n * p))

    assert historical_var(samples, confidence) == pytest.approx(
        gaussian_var(mean, std, confidence), abs=4 * se_var
    )
    assert historical_cvar(samples, confidence) == pytest.approx(
        gaussian_cvar(mean, std, confidence), abs=4 * se_cvar
    )


def test_gaussian_var_and_cvar_match_standard_normal_constants() -> None:
    assert gaussian_var(0.0, 1.0, 0.95) == pytest.approx(1.6448536, rel=1e-7)
    assert gaussian_var(0.0, 1.0, 0.99) == pytest.approx(2.3263479, rel=1e-7)
    assert gaussian_cvar(0.0, 1.0, 0.95) == pytest.approx(2.0627128, rel=1e-7)
    assert gaussian_cvar(0.0, 1.0, 0.99) == pytest.approx(2.6652142, rel=1e-7)
    assert gaussian_var(0.001, 0.02, 0.99) == pytest.approx(2.3263479 * 0.02 - 0.001, rel=1e-7)


def test_parametric_var_and_cvar_equal_closed_form_of_sample_moments() -> None:
    returns = np.random.default_rng(1).standard_t(4, 500) * 0.01
    mean, std = float(returns.mean()), float(returns.std(ddof=1))

    assert parametric_var(returns, 0.99) == gaussian_var(mean, std, 0.99)
    assert parametric_cvar(returns, 0.99) == gaussian_cvar(mean, std, 0.99)
    assert parametric_cvar(returns, 0.99) == pytest.approx(
        std * NORMAL.pdf(NORMAL.inv_cdf(0.99)) / 0.01 - mean, rel=1e-12
    )


@given(
    returns=st.lists(st.floats(-0.5, 0.5), min_size=1, max_size=300),
    confidence=st.floats(0.5, 0.999),
)
def test_historical_cvar_is_never_below_var(returns: list[float], confidence: float) -> None:
    values = np.array(returns)

    assert historical_cvar(values, confidence) >= historical_var(values, confidence) - 1e-12


def test_var_and_cvar_on_btc_5m_show_fat_tails(btc_returns: np.ndarray) -> None:
    var95, var99 = historical_var(btc_returns, 0.95), historical_var(btc_returns, 0.99)
    cvar95, cvar99 = historical_cvar(btc_returns, 0.95), historical_cvar(btc_returns, 0.99)

    assert 0.0 < var95 < var99 < cvar99
    assert var95 < cvar95 < cvar99
    # Peaked centre, heavy tails: the Gaussian overstates the 95% VaR and understates the 99%
    # shortfall of real 5-minute returns by a wide margin.
    assert var95 < parametric_var(btc_returns, 0.95)
    assert cvar99 > 1.3 * parametric_cvar(btc_returns, 0.99)


def test_portfolio_returns_is_weighted_sum_of_columns() -> None:
    returns = np.array([[0.01, -0.02], [0.03, 0.00], [-0.01, 0.02]])

    np.testing.assert_allclose(
        portfolio_returns(np.array([0.5, -0.25]), returns), [0.01, 0.015, -0.01]
    )


def test_portfolio_parametric_var_equals_variance_covariance_formula() -> None:
    rng = np.random.default_rng(3)
    returns = rng.multivariate_normal([0.001, 0.0], [[4e-4, 1e-4], [1e-4, 1e-4]], size=1000)
    weights = np.array([0.7, 0.3])
    mean = float(returns.mean(axis=0) @ weights)
    std = math.sqrt(float(weights @ np.cov(returns, rowvar=False) @ weights))

    assert portfolio_parametric_var(weights, returns, 0.99) == pytest.approx(
        gaussian_var(mean, std, 0.99), rel=1e-10
    )
    assert portfolio_parametric_cvar(weights, returns, 0.99) == pytest.approx(
        gaussian_cvar(mean, std, 0.99), rel=1e-10
    )


def test_portfolio_historical_cvar_when_assets_independent_diversifies() -> None:
    returns = np.random.default_rng(5).normal(0.0, 0.01, size=(20_000, 2))

    concentrated = portfolio_historical_cvar(np.array([1.0, 0.0]), returns, 0.99)
    split = portfolio_historical_cvar(np.array([0.5, 0.5]), returns, 0.99)

    # Two independent equal halves: tail risk shrinks by about 1/sqrt(2).
    assert split == pytest.approx(concentrated / math.sqrt(2.0), rel=0.05)
    assert portfolio_historical_var(np.array([1.0, 0.0]), returns, 0.99) == historical_var(
        returns[:, 0], 0.99
    )


def test_portfolio_returns_when_shapes_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="weights"):
        portfolio_returns(np.array([1.0, 0.0, 0.0]), np.zeros((10, 2)))


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0, -0.5])
def test_var_when_confidence_not_a_fraction_raises(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        historical_var(np.array([0.01, -0.01]), confidence)


def test_var_when_returns_not_finite_or_empty_raises() -> None:
    with pytest.raises(ValueError, match="finite"):
        historical_var(np.array([0.01, np.nan]))
    with pytest.raises(ValueError, match="at least"):
        historical_cvar(np.array([]))
    with pytest.raises(ValueError, match="at least"):
        parametric_var(np.array([0.01]))


def test_return_entropy_when_uniform_returns_is_near_one() -> None:
    returns = np.random.default_rng(0).uniform(-0.01, 0.01, 10_000)

    assert return_entropy(returns, bins=20) > 0.99


def test_return_entropy_when_constant_returns_is_zero() -> None:
    assert return_entropy(np.full(100, 0.002)) == 0.0
    assert return_entropy(np.array([0.0])) == 0.0


def test_return_entropy_when_one_bin_holds_half_is_hand_computed() -> None:
    # Half the mass in one bin, a quarter in each of two: H = 0.5 ln 2 + 2 * 0.25 ln 4 nats.
    returns = np.array([0.0, 0.0, 1.0, 2.0])

    assert return_entropy(returns, bins=3) == pytest.approx(
        (0.5 * math.log(2) + 2 * 0.25 * math.log(4)) / math.log(3)
    )


def test_return_entropy_is_scale_invariant() -> None:
    returns = np.random.default_rng(2).normal(0.0, 1.0, 300)

    assert return_entropy(returns * 0.001) == pytest.approx(return_entropy(returns), abs=1e-12)


def test_return_entropy_when_crash_outlier_barely_moves() -> None:
    # On the raw min-max range the crash bar would squash every other return into a few bins.
    returns = np.random.default_rng(4).normal(0.0, 0.01, 200)

    with_crash = return_entropy(np.append(returns, -0.2))

    assert abs(with_crash - return_entropy(returns)) < 0.05


def test_return_entropy_on_btc_5m_windows_sits_in_calibrated_band(btc_returns: np.ndarray) -> None:
    entropies = [return_entropy(btc_returns[i : i + 100]) for i in range(0, 10_900, 100)]

    assert 0.85 < float(np.mean(entropies)) < 0.93
    assert all(0.0 < e < 1.0 for e in entropies)


def test_return_entropy_when_fewer_than_two_bins_raises() -> None:
    with pytest.raises(ValueError, match="bins"):
        return_entropy(np.array([0.01, 0.02]), bins=1)


def test_entropy_exposure_scale_hand_computed() -> None:
    assert entropy_exposure_scale(0.0) == 1.0
    assert entropy_exposure_scale(0.85) == 1.0
    assert entropy_exposure_scale(0.925) == pytest.approx(1.0 - 0.75 * 0.5)
    assert entropy_exposure_scale(1.0) == pytest.approx(0.25)
    assert entropy_exposure_scale(1.0, floor=0.0, knee=0.0) == 0.0


@given(a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0), floor=st.floats(0.0, 1.0))
def test_entropy_exposure_scale_never_rises_with_entropy(a: float, b: float, floor: float) -> None:
    low, high = min(a, b), max(a, b)

    scale_high = entropy_exposure_scale(high, floor=floor)

    assert floor - 1e-12 <= scale_high <= entropy_exposure_scale(low, floor=floor)


def test_entropy_exposure_scale_when_out_of_range_raises() -> None:
    with pytest.raises(ValueError, match="entropy"):
        entropy_exposure_scale(1.2)
    with pytest.raises(ValueError, match="floor"):
        entropy_exposure_scale(0.5, floor=-0.1)
