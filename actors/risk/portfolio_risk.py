"""Portfolio tail risk (VaR, CVaR) and return entropy: the plain quant logic of the risk agent.

Conventions, shared by every function here so their numbers can be compared and limited:

* Inputs are **simple returns** per bar (``p_t / p_{t-1} - 1``). Simple returns aggregate across
  assets linearly (the portfolio return is ``returns @ weights``), log returns do not.
* ``confidence`` is a fraction in (0, 1), e.g. 0.95 or 0.99; the tail probability is
  ``p = 1 - confidence``.
* Results are **losses as positive fractions** of portfolio value: a 95% VaR of 0.02 means a 2%
  loss is exceeded with probability 5%. A negative result means even the tail is a gain; it is
  not clipped to zero, so a limit check sees the real number.
* **Historical VaR** is minus the lower empirical ``p``-quantile of the returns by the inverted
  empirical CDF (Hyndman and Fan type 1): with the returns sorted ascending as
  ``r_(1) <= ... <= r_(n)``, ``VaR = -r_(k)`` with ``k = ceil(n * p)``. It is an observed loss,
  never an interpolation between two, so it can be traced to the bar that produced it.
* **Historical CVaR** (expected shortfall) is the mean loss over the worst ``p`` share of the
  empirical distribution, ``-(1/p) * integral_0^p F_n^{-1}(u) du`` with the same inverse CDF
  (Acerbi and Tasche): the worst ``k - 1`` returns count fully and ``r_(k)`` with the weight
  ``n * p - (k - 1)`` that is left. It equals the plain mean of the worst ``n * p`` returns when
  that is a whole number, and is always at least the VaR.
* **Parametric** VaR and CVaR fit a Gaussian with the sample mean and the sample standard
  deviation (``ddof=1``); the closed forms are `gaussian_var` and `gaussian_cvar`.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_STANDARD_NORMAL = NormalDist()

_TUKEY_FENCE = 1.5
"""Interquartile ranges beyond the quartiles at which `return_entropy` winsorises returns."""

_TAIL_MASS_DECIMALS = 9
"""``n * p`` is rounded to this many decimals before ``ceil``: in binary floating point
``100 * (1 - 0.95)`` is 5.000000000000004, whose ceiling would wrongly be 6."""


def _check_confidence(confidence: float) -> float:
    """Return the tail probability ``1 - confidence``, rejecting a confidence outside (0, 1)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a fraction in (0, 1) such as 0.95, got {confidence}")
    return 1.0 - confidence


def _check_returns(returns: np.ndarray, *, min_size: int = 1) -> np.ndarray:
    """Return ``returns`` as a finite 1-D float array with at least ``min_size`` values."""
    values = np.asarray(returns, dtype=float)
    if values.ndim != 1 or values.size < min_size:
        raise ValueError(f"returns must be 1-D with at least {min_size} values")
    if not np.all(np.isfinite(values)):
        raise ValueError("returns must be finite")
    return values


def _tail(returns: np.ndarray, confidence: float) -> tuple[np.ndarray, float]:
    """Sorted worst ``k = ceil(n * p)`` returns and the tail mass ``n * p`` they cover."""
    values = _check_returns(returns)
    mass = round(values.size * _check_confidence(confidence), _TAIL_MASS_DECIMALS)
    k = max(1, math.ceil(mass))
    return np.sort(values)[:k], mass


def historical_var(returns: np.ndarray, confidence: float = 0.95) -> float:
    """Historical Value at Risk: the loss exceeded in a ``1 - confidence`` share of past bars.

    Model-free, so it keeps the fat tails and skew a Gaussian fit smooths away; see the module
    docstring for the exact quantile convention.

    Args:
        returns: Simple returns, one per bar.
        confidence: Confidence level in (0, 1), e.g. 0.95 or 0.99.

    Returns:
        The VaR as a positive loss fraction.

    Raises:
        ValueError: On an empty or non-finite ``returns`` or a confidence outside (0, 1).
    """
    worst, _ = _tail(returns, confidence)
    return float(-worst[-1])


def historical_cvar(returns: np.ndarray, confidence: float = 0.95) -> float:
    """Historical Conditional VaR (expected shortfall): the mean loss beyond the VaR.

    VaR says where the tail starts, not how deep it is; two books with one VaR can lose very
    different amounts on a bad day. CVaR averages the tail, and unlike VaR it is subadditive, so a
    limit on it rewards diversification.

    Args:
        returns: Simple returns, one per bar.
        confidence: Confidence level in (0, 1).

    Returns:
        The CVaR as a positive loss fraction, at least `historical_var` at the same confidence.

    Raises:
        ValueError: On an empty or non-finite ``returns`` or a confidence outside (0, 1).
    """
    worst, mass = _tail(returns, confidence)
    if mass < 1.0:
        return float(-worst[0])
    last_weight = mass - (worst.size - 1)
    return float(-(worst[:-1].sum() + last_weight * worst[-1]) / mass)


def gaussian_var(mean: float, std: float, confidence: float = 0.95) -> float:
    """Closed-form VaR of a normal return ``N(mean, std**2)``: ``z * std - mean``.

    Args:
        mean: Mean return per bar.
        std: Standard deviation of the return per bar, non-negative.
        confidence: Confidence level in (0, 1); ``z`` is its standard normal quantile.

    Returns:
        The VaR as a positive loss fraction.

    Raises:
        ValueError: On a negative or non-finite ``std`` or a confidence outside (0, 1).
    """
    _check_confidence(confidence)
    if not (math.isfinite(std) and std >= 0.0):
        raise ValueError(f"std must be finite and non-negative, got {std}")
    return _STANDARD_NORMAL.inv_cdf(confidence) * std - mean


def gaussian_cvar(mean: float, std: float, confidence: float = 0.95) -> float:
    """Closed-form CVaR of a normal return: ``std * phi(z) / (1 - confidence) - mean``.

    Args:
        mean: Mean return per bar.
        std: Standard deviation of the return per bar, non-negative.
        confidence: Confidence level in (0, 1).

    Returns:
        The CVaR as a positive loss fraction.

    Raises:
        ValueError: On a negative or non-finite ``std`` or a confidence outside (0, 1).
    """
    tail = _check_confidence(confidence)
    if not (math.isfinite(std) and std >= 0.0):
        raise ValueError(f"std must be finite and non-negative, got {std}")
    z = _STANDARD_NORMAL.inv_cdf(confidence)
    return std * _STANDARD_NORMAL.pdf(z) / tail - mean


def parametric_var(returns: np.ndarray, confidence: float = 0.95) -> float:
    """Gaussian VaR fitted to ``returns`` (sample mean, sample std with ``ddof=1``).

    Smoother and more stable than the historical VaR on short windows, at the price of
    understating fat tails; the risk agent reports both so the gap itself is visible.

    Raises:
        ValueError: On fewer than two or non-finite returns, or a confidence outside (0, 1).
    """
    values = _check_returns(returns, min_size=2)
    return gaussian_var(float(values.mean()), float(values.std(ddof=1)), confidence)


def parametric_cvar(returns: np.ndarray, confidence: float = 0.95) -> float:
    """Gaussian CVaR fitted to ``returns`` (sample mean, sample std with ``ddof=1``).

    Raises:
        ValueError: On fewer than two or non-finite returns, or a confidence outside (0, 1).
    """
    values = _check_returns(returns, min_size=2)
    return gaussian_cvar(float(values.mean()), float(values.std(ddof=1)), confidence)


def portfolio_returns(weights: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Per-bar portfolio returns ``returns @ weights`` of a constant-weight portfolio.

    Revaluing today's weights over the past bars (rather than replaying past positions) is what
    makes VaR answer "what could the book we hold now lose".

    Args:
        weights: Weight per asset as a fraction of equity (negative for shorts), shape ``(N,)``.
        returns: Simple returns, shape ``(T, N)``: one row per bar, one column per asset.

    Returns:
        Portfolio returns, shape ``(T,)``.

    Raises:
        ValueError: On mismatched shapes or non-finite values.
    """
    w = np.asarray(weights, dtype=float)
    r = np.asarray(returns, dtype=float)
    if w.ndim != 1 or r.ndim != 2 or r.shape[1] != w.size:
        raise ValueError(f"weights {w.shape} and returns {r.shape} must be (N,) and (T, N)")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(r))):
        raise ValueError("weights and returns must be finite")
    return np.asarray(r @ w)


def portfolio_historical_var(
    weights: np.ndarray, returns: np.ndarray, confidence: float = 0.95
) -> float:
    """`historical_var` of the portfolio returns; keeps the cross-asset co-movement in the tail."""
    return historical_var(portfolio_returns(weights, returns), confidence)


def portfolio_historical_cvar(
    weights: np.ndarray, returns: np.ndarray, confidence: float = 0.95
) -> float:
    """`historical_cvar` of the portfolio returns."""
    return historical_cvar(portfolio_returns(weights, returns), confidence)


def portfolio_parametric_var(
    weights: np.ndarray, returns: np.ndarray, confidence: float = 0.95
) -> float:
    """`parametric_var` of the portfolio returns.

    The sample std of ``returns @ weights`` equals ``sqrt(w' S w)`` with ``S`` the sample
    covariance, so this is the usual variance-covariance VaR without forming ``S``.
    """
    return parametric_var(portfolio_returns(weights, returns), confidence)


def portfolio_parametric_cvar(
    weights: np.ndarray, returns: np.ndarray, confidence: float = 0.95
) -> float:
    """`parametric_cvar` of the portfolio returns (variance-covariance CVaR)."""
    return parametric_cvar(portfolio_returns(weights, returns), confidence)


def return_entropy(returns: np.ndarray, bins: int = 20) -> float:
    """Normalised Shannon entropy of the recent return distribution, in [0, 1].

    Computed in nats on a histogram of ``bins`` equal-width bins and divided by ``log(bins)``, the
    entropy of a uniform histogram; after that division the base of the logarithm cancels, so the
    value is the same in bits. 0 means every return fell in one bin (a predictable market), 1 a
    flat histogram (no return more likely than another).

    Before binning, returns beyond the Tukey fences (1.5 interquartile ranges outside the
    quartiles) are winsorised to the fences. On the raw min-max range a single crash bar would
    squeeze every other return into a few bins and *lower* the entropy, so exposure would rise
    right after the crash. When the interquartile range is zero (over half the window identical)
    there are no meaningful fences and the raw range is used.

    The value measures the *shape* of the distribution, not its scale: it is unchanged when all
    returns are multiplied by a constant. Volatility level is the job of `MarketFlux` and of
    volatility targeting. For calibration: with 20 bins, windows of 100 Gaussian returns average
    about 0.90, the bundled BTC 5-minute returns 0.89 +- 0.02, uniform returns 0.97.

    Args:
        returns: Returns of the recent window, at least one.
        bins: Number of histogram bins, at least 2.

    Returns:
        The normalised entropy in [0, 1].

    Raises:
        ValueError: On an empty or non-finite ``returns`` or fewer than two bins.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    values = _check_returns(returns)
    q1, q3 = np.quantile(values, [0.25, 0.75])
    spread = q3 - q1
    if spread > 0.0:
        values = np.clip(values, q1 - _TUKEY_FENCE * spread, q3 + _TUKEY_FENCE * spread)
    counts, _ = np.histogram(values, bins=bins)
    probabilities = counts[counts > 0] / values.size
    entropy = float(-(probabilities * np.log(probabilities)).sum() / math.log(bins))
    return min(max(entropy, 0.0), 1.0)


def entropy_exposure_scale(entropy: float, floor: float = 0.25, knee: float = 0.85) -> float:
    """Exposure multiplier in [floor, 1] that shrinks as return entropy (uncertainty) rises.

    The curve is flat at 1 up to ``knee`` and then falls linearly to ``floor`` at entropy 1:
    ``1 - (1 - floor) * (entropy - knee) / (1 - knee)``. Entropy of real returns lives in a narrow
    band (see `return_entropy`), so a line from 0 to 1 would leave every normal market at nearly
    the floor; the knee puts the slope where the values actually move. The floor is above zero
    because entropy is a soft signal: stopping trading is the kill switch's decision.

    Args:
        entropy: Normalised entropy in [0, 1] from `return_entropy`.
        floor: Multiplier at maximum entropy, in [0, 1].
        knee: Entropy up to which exposure is not reduced, in [0, 1).

    Returns:
        The exposure multiplier.

    Raises:
        ValueError: If an argument is outside its range.
    """
    if not 0.0 <= entropy <= 1.0:
        raise ValueError(f"entropy must be in [0, 1], got {entropy}")
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be in [0, 1], got {floor}")
    if not 0.0 <= knee < 1.0:
        raise ValueError(f"knee must be in [0, 1), got {knee}")
    excess = max(entropy - knee, 0.0) / (1.0 - knee)
    return 1.0 - (1.0 - floor) * excess
