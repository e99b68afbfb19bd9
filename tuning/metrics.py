"""Performance metrics of equity curves, row-wise over many candidates at once.

Annualisation comes from the bar interval, never from a constant: crypto trades around the clock,
so a year has ``365 * 86400 / bar_seconds`` bars (105,120 five-minute bars). With ``r`` the simple
returns of equity from bar to bar (the first one against the starting equity):

* Sharpe = mean(r) / std(r, ddof=1) * sqrt(bars per year), risk-free rate 0.
* Sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(bars per year) (downside deviation over all
  bars, target 0).
* CAGR = (E_end / E_start) ** (1 / years) - 1 with years = bars * bar_seconds / (365 * 86400).
* Maximum drawdown = max over bars of 1 - E / running peak (the starting equity counts as a peak).
* Calmar = CAGR / maximum drawdown.
* Confidence = the probabilistic Sharpe ratio (Bailey and Lopez de Prado, 2012): the probability
  that the true per-bar Sharpe ratio is above 0, given the estimate, the number of bars and the
  skewness and kurtosis of the returns. Annualised Sharpe ratios of short windows are very noisy
  (over 1,000 five-minute bars its standard error is about 10), so a threshold on the estimate
  alone passes noise; the confidence says whether there is an edge at all.

Where a ratio has a zero denominator the result says what happened instead of dividing: a flat
curve has Sharpe and Sortino 0; the CAGR of a few bars that made money overflows to ``inf``; a
curve that never falls has Sortino and Calmar ``inf`` when it rose and 0 when it did not; profit
factor is ``inf`` with profits and no losses, 0 with neither.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SECONDS_PER_YEAR = 365 * 86400
"""Calendar seconds in a year: crypto markets never close, so every bar counts."""

METRIC_NAMES = (
    "total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate",
    "profit_factor", "exposure", "trades",
)


def periods_per_year(bar_seconds: float) -> float:
    """Bars in a calendar year for this bar interval."""
    if bar_seconds <= 0:
        raise ValueError(f"bar_seconds must be positive, got {bar_seconds}")
    return SECONDS_PER_YEAR / bar_seconds


def _ratio(numerator: FloatArray, denominator: FloatArray, zero_den: FloatArray) -> FloatArray:
    """numerator / denominator, with ``zero_den`` where the denominator is 0."""
    out = zero_den.astype(np.float64, copy=True)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def sharpe(mean: FloatArray, std: FloatArray, bar_seconds: float) -> FloatArray:
    """Annualised Sharpe ratio from per-bar mean and sample standard deviation."""
    return _ratio(mean, std, np.zeros_like(mean)) * math.sqrt(periods_per_year(bar_seconds))


def sortino(mean: FloatArray, downside: FloatArray, bar_seconds: float) -> FloatArray:
    """Annualised Sortino ratio from per-bar mean and downside deviation."""
    no_downside = np.where(mean > 0, np.inf, 0.0)
    scaled = _ratio(mean, downside, no_downside)
    return scaled * math.sqrt(periods_per_year(bar_seconds))


def cagr(total_return: FloatArray, bars: int, bar_seconds: float) -> FloatArray:
    """Compound annual growth rate of a total return earned over ``bars`` bars."""
    years = bars * bar_seconds / SECONDS_PER_YEAR
    growth = np.maximum(1.0 + np.asarray(total_return, dtype=np.float64), 0.0)
    with np.errstate(over="ignore"):
        return growth ** (1.0 / years) - 1.0


def calmar(cagr_: FloatArray, max_drawdown: FloatArray) -> FloatArray:
    """CAGR over maximum drawdown."""
    return _ratio(cagr_, max_drawdown, np.where(cagr_ > 0, np.inf, 0.0))


def profit_factor(gross_profit: FloatArray, gross_loss: FloatArray) -> FloatArray:
    """Sum of winning trades' PnL over the absolute sum of losing trades' PnL."""
    return _ratio(gross_profit, gross_loss, np.where(gross_profit > 0, np.inf, 0.0))


def probabilistic_sharpe(
    mean: FloatArray, std: FloatArray, sum_r3: FloatArray, sum_r4: FloatArray, n: FloatArray
) -> FloatArray:
    """P(true per-bar Sharpe > 0) from the moments of the returns (0.5 for a flat curve).

    ``Phi(SR * sqrt(n - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2))`` with SR, skewness
    and (non-excess) kurtosis of the per-bar returns, the central moments recovered from raw
    sums so windows can be pooled.
    """
    mean, std, n = (np.asarray(a, dtype=np.float64) for a in (mean, std, n))
    sr = _ratio(mean, std, np.zeros_like(mean))
    m2 = np.square(std) * (n - 1) / n
    m3 = sum_r3 / n - 3 * mean * m2 - mean**3
    m4 = sum_r4 / n - 4 * mean * sum_r3 / n + 6 * mean**2 * (m2 + mean**2) - 3 * mean**4
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(m2 > 0, m3 / m2**1.5, 0.0)
        kurtosis = np.where(m2 > 0, m4 / np.square(m2), 3.0)
    spread = np.maximum(1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * np.square(sr), 1e-12)
    z = sr * np.sqrt(np.maximum(n - 1, 0.0)) / np.sqrt(spread)
    return np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in z.ravel()]).reshape(
        z.shape
    )


@dataclass(frozen=True)
class Metrics:
    """The headline numbers of one backtest (or of one window of it)."""

    total_return: float
    cagr: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    win_rate: float
    profit_factor: float
    exposure: float
    trades: int
    final_equity: float
    bars: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
