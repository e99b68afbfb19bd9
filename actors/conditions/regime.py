"""Market regime, market flux and supply/demand: the plain quant logic of the conditions agent.

Everything here is a pure function of the arrays it is handed (or, for `MarketFlux` and
`RegimeState`, of the values fed to it so far), so the same code labels a live bar and a backtest
bar, and a label at bar ``t`` never depends on bars after ``t``. `regime_series` labels a whole
history at once for backtests; `RegimeState` is its incremental twin for the live agent, built on
the same per-bar formulas so the two agree bar for bar.

Two statistics drive the regime label, both computed on the log returns of the last ``window``
bars:

* **Realized volatility** (sample standard deviation, ``ddof=1``) and its *percentile within its
  own recent history* (the last ``vol_lookback`` values of that same rolling volatility). A
  percentile rather than an absolute level makes one threshold work for BTC and a stablecoin pair
  alike, and for quiet and hectic years.
* **Trend strength**: the t-statistic of the mean log return, ``mean / std * sqrt(window)``. This
  is the t-statistic of the drift (the OLS slope of log price) under a random-walk-with-drift model.
  We deliberately do *not* regress log price on time: the residuals of a random walk around a
  line are non-stationary, so that regression's t-statistic grows with the window and flags
  "trends" in pure noise (Granger and Newbold's spurious regression). The drift t-statistic is
  Student-t distributed under a driftless random walk, so ``trend_threshold`` has a known false
  positive rate (2.0 => about 5% of windows for Gaussian increments). We prefer it to Kaufman's
  efficiency ratio for that reason: the ratio's null distribution shrinks with the window length,
  so its threshold would have to be re-tuned whenever the window changes.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field

WARMUP_LABEL = ""
"""Label of the bars before the first full window, where no regime can be measured yet."""

_CHUNK_ROWS = 4096
"""Rows of the (bars x vol_lookback) comparison matrix built at once, to bound memory use."""


class Regime(StrEnum):
    """The market regime the conditions agent reports to strategies and risk."""

    TRENDING_UP = "trending_up"
    TRENDING_DOWN = "trending_down"
    RANGING = "ranging"
    HIGH_VOLATILITY = "high_volatility"


class RegimeThresholds(BaseModel):
    """Tunable thresholds of the conditions agent, frozen so a cycle cannot change them mid-run.

    Attributes:
        window: Bars of log returns used for realized volatility and for the trend t-statistic.
        vol_lookback: Bars of rolling-volatility history the current volatility is ranked within.
        high_vol_pct: Percentile (0-100) of the current volatility above which the market is
            HIGH_VOLATILITY.
        high_vol_ratio: The current volatility must also be at least this multiple of its median
            over ``vol_lookback``. A percentile alone labels the top 10% of bars of even a
            perfectly stationary market as high-volatility; this guard asks for a burst that is
            large in absolute terms too. 1.0 disables it.
        trend_threshold: Absolute drift t-statistic above which the market is trending.
        flux_alpha: EMA weight of a new observation in `MarketFlux` (1 = no smoothing).
        flux_deadband: `MarketFlux` publishes a new level only when the smoothed value has moved
            more than this away from the published one.
        flux_vol_weight: Weight of the volatility percentile in the raw flux; the rest goes to the
            volume spike.
        volume_spike_ratio: Volume / rolling median at which the volume part of the flux saturates
            at 1.
        volume_lookback: Bars in the rolling median that volume is compared with.
        book_weight: Weight of order-book imbalance in `supply_demand`; the rest goes to
            aggressor flow.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(default=48, ge=3)
    vol_lookback: int = Field(default=500, ge=2)
    high_vol_pct: float = Field(default=90.0, gt=0.0, lt=100.0)
    high_vol_ratio: float = Field(default=1.25, ge=1.0)
    trend_threshold: float = Field(default=2.0, gt=0.0)
    flux_alpha: float = Field(default=0.2, gt=0.0, le=1.0)
    flux_deadband: float = Field(default=0.05, ge=0.0, lt=1.0)
    flux_vol_weight: float = Field(default=0.6, ge=0.0, le=1.0)
    volume_spike_ratio: float = Field(default=3.0, gt=1.0)
    volume_lookback: int = Field(default=48, ge=1)
    book_weight: float = Field(default=0.5, ge=0.0, le=1.0)


_DEFAULTS = RegimeThresholds()


def _resolve(thresholds: RegimeThresholds | None, **keywords: float) -> RegimeThresholds:
    """Merge the two ways of passing thresholds into one validated model.

    Callers either pass a whole `RegimeThresholds` (the agent, from its config) or individual
    keywords (a notebook, a test). Mixing them would leave one silently ignored, so a keyword that
    differs from its default alongside ``thresholds`` is an error.

    Raises:
        ValueError: If both are given and disagree, or a keyword is out of range.
    """
    changed = {k: v for k, v in keywords.items() if v != getattr(_DEFAULTS, k)}
    if thresholds is None:
        return RegimeThresholds.model_validate(changed)
    if changed:
        raise ValueError(f"pass either thresholds or keywords, not both: {sorted(changed)}")
    return thresholds


def _validated_close(close: np.ndarray) -> np.ndarray:
    """Return ``close`` as a 1-D float array, rejecting what a log return cannot be taken of."""
    prices = np.asarray(close, dtype=float)
    if prices.ndim != 1:
        raise ValueError(f"close must be 1-D, got shape {prices.shape}")
    if not np.all(np.isfinite(prices)) or np.any(prices <= 0.0):
        raise ValueError("close must hold finite, positive prices")
    return prices


def _window_stats(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std (``ddof=1``) of windows of log returns laid along the last axis.

    The one formula behind both `regime_series` and `RegimeState`. Each window is reduced on its
    own (no running sums), so a bar's value is bit-identical whether it comes from a sliding view
    of the full history, of a tail of it, or from the window `RegimeState` keeps. Running sums
    would cost O(1) per bar but drift by a few ulps, enough to flip a tie in the percentile count.
    """
    return returns.mean(axis=-1), returns.std(axis=-1, ddof=1)


def _rolling_return_stats(prices: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample std of the log returns ending at each bar (NaN before warm-up).

    Log prices come from `np.log`, never `math.log`: the two differ in the last bit for some
    inputs, and `RegimeState` must take the very same returns.
    """
    mean = np.full(prices.size, np.nan)
    std = np.full(prices.size, np.nan)
    if prices.size > window:
        mean[window:], std[window:] = _window_stats(
            sliding_window_view(np.diff(np.log(prices)), window)
        )
    return mean, std


def _drift_t(mean: np.ndarray, std: np.ndarray, window: int) -> np.ndarray:
    """Drift t-statistic ``mean / std * sqrt(window)``, shared by the batch and live paths.

    A window of identical returns has zero std; its drift is then certain, so the statistic is
    infinite with the sign of the mean (NaN for a flat window, which labels it ranging).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0.0, mean / std * math.sqrt(window), np.sign(mean) * np.inf)


def _ratio_to_median(current: np.ndarray | float, median: np.ndarray | float) -> np.ndarray:
    """Volatility over its median, shared by the batch and live paths.

    A zero median (at least half the history perfectly flat) gives inf, so any movement after a
    flat spell passes the ``high_vol_ratio`` guard, and NaN when the current bar is flat too.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(current, median)


def _vol_rank(vol: np.ndarray, lookback: int, min_history: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentile (0-100) of each volatility within its trailing history, and its ratio to median.

    The percentile is the weak empirical CDF: the share of the last ``lookback`` values (the
    current one included) that are less than or equal to the current one. Fewer than
    ``min_history`` values give NaN, because ranking among a handful of overlapping windows says
    nothing.
    """
    pct = np.full(vol.size, np.nan)
    ratio = np.full(vol.size, np.nan)
    valid = np.flatnonzero(~np.isnan(vol))
    if valid.size == 0:
        return pct, ratio
    first = int(valid[0])
    padded = np.concatenate([np.full(lookback - 1, np.nan), vol[first:]])
    history = sliding_window_view(padded, lookback)
    for start in range(0, history.shape[0], _CHUNK_ROWS):
        rows = history[start : start + _CHUNK_ROWS]
        current = vol[first + start : first + start + rows.shape[0]]
        count = np.sum(~np.isnan(rows), axis=1)
        below = np.sum(rows <= current[:, None], axis=1)
        median = np.nanmedian(rows, axis=1)
        enough = count >= min_history
        out = slice(first + start, first + start + rows.shape[0])
        pct[out] = np.where(enough, 100.0 * below / count, np.nan)
        ratio[out] = np.where(enough, _ratio_to_median(current, median), np.nan)
    return pct, ratio


def volatility_percentile_series(
    close: np.ndarray,
    *,
    window: int = _DEFAULTS.window,
    vol_lookback: int = _DEFAULTS.vol_lookback,
) -> np.ndarray:
    """Percentile (0-100) of the current realized volatility within its own history, per bar.

    This is the volatility input of `MarketFlux.update` and of the HIGH_VOLATILITY test, exposed so
    the agent and backtests feed the flux from exactly the statistic the regime uses.

    Args:
        close: Close prices, oldest first.
        window: Bars of log returns per realized-volatility estimate.
        vol_lookback: Bars of volatility history to rank within.

    Returns:
        Array of ``len(close)`` percentiles; NaN until ``window`` volatility values exist.
    """
    th = _resolve(None, window=window, vol_lookback=vol_lookback)
    _, std = _rolling_return_stats(_validated_close(close), th.window)
    pct, _ = _vol_rank(std, th.vol_lookback, th.window)
    return pct


def regime_series(
    close: np.ndarray,
    *,
    window: int = _DEFAULTS.window,
    vol_lookback: int = _DEFAULTS.vol_lookback,
    high_vol_pct: float = _DEFAULTS.high_vol_pct,
    high_vol_ratio: float = _DEFAULTS.high_vol_ratio,
    trend_threshold: float = _DEFAULTS.trend_threshold,
    thresholds: RegimeThresholds | None = None,
) -> np.ndarray:
    """Label every bar with its regime, using only that bar and the bars before it.

    Vectorised for backtests and for tuning, where a per-bar loop over `classify_regime` would
    dominate the run time. HIGH_VOLATILITY takes precedence over a trend: in a volatility burst a
    large drift t-statistic is as likely to be the burst itself as a trend worth following.

    Args:
        close: Close prices, oldest first.
        window: Bars of log returns behind the volatility and the trend statistic.
        vol_lookback: Bars of volatility history the current volatility is ranked within.
        high_vol_pct: Volatility percentile above which a bar is HIGH_VOLATILITY.
        high_vol_ratio: Minimum ratio of current to median volatility for HIGH_VOLATILITY.
        trend_threshold: Absolute drift t-statistic above which a bar is trending.
        thresholds: All of the above at once; takes the place of the keywords.

    Returns:
        A unicode array of ``len(close)`` `Regime` values, `WARMUP_LABEL` for the first ``window``
        bars. The high-volatility test needs ``window`` volatility values of history, so it can
        only fire from bar ``2 * window - 1`` on.

    Raises:
        ValueError: On non-finite or non-positive prices, or invalid thresholds.
    """
    th = _resolve(
        thresholds,
        window=window,
        vol_lookback=vol_lookback,
        high_vol_pct=high_vol_pct,
        high_vol_ratio=high_vol_ratio,
        trend_threshold=trend_threshold,
    )
    prices = _validated_close(close)
    mean, std = _rolling_return_stats(prices, th.window)
    pct, ratio = _vol_rank(std, th.vol_lookback, th.window)
    t_stat = _drift_t(mean, std, th.window)
    labels = np.full(prices.size, WARMUP_LABEL, dtype=f"<U{max(len(r.value) for r in Regime)}")
    measured = ~np.isnan(mean)
    labels[measured] = Regime.RANGING.value
    labels[measured & (t_stat > th.trend_threshold)] = Regime.TRENDING_UP.value
    labels[measured & (t_stat < -th.trend_threshold)] = Regime.TRENDING_DOWN.value
    high_vol = (pct > th.high_vol_pct) & (ratio >= th.high_vol_ratio)
    labels[high_vol] = Regime.HIGH_VOLATILITY.value
    return labels


def classify_regime(
    close: np.ndarray,
    *,
    window: int = _DEFAULTS.window,
    vol_lookback: int = _DEFAULTS.vol_lookback,
    high_vol_pct: float = _DEFAULTS.high_vol_pct,
    high_vol_ratio: float = _DEFAULTS.high_vol_ratio,
    trend_threshold: float = _DEFAULTS.trend_threshold,
    thresholds: RegimeThresholds | None = None,
) -> Regime:
    """Regime of the last bar of ``close``, exactly as `regime_series` would label it.

    Only the tail that can influence the last label (``window + vol_lookback`` prices) is used, so
    the live agent's cost does not grow with the history it keeps.

    Args:
        close: Close prices, oldest first; the last element is the current bar.
        window: See `regime_series`.
        vol_lookback: See `regime_series`.
        high_vol_pct: See `regime_series`.
        high_vol_ratio: See `regime_series`.
        trend_threshold: See `regime_series`.
        thresholds: All of the above at once; takes the place of the keywords.

    Returns:
        The regime at the last bar.

    Raises:
        ValueError: If fewer than ``window + 1`` prices are given (no return window yet), or on
            invalid prices or thresholds.
    """
    th = _resolve(
        thresholds,
        window=window,
        vol_lookback=vol_lookback,
        high_vol_pct=high_vol_pct,
        high_vol_ratio=high_vol_ratio,
        trend_threshold=trend_threshold,
    )
    prices = np.asarray(close, dtype=float)
    if prices.ndim != 1 or prices.size <= th.window:
        raise ValueError(f"close needs at least window + 1 = {th.window + 1} prices")
    tail = prices[-(th.window + th.vol_lookback) :]
    return Regime(str(regime_series(tail, thresholds=th)[-1]))


@dataclass(frozen=True, slots=True)
class RegimeReading:
    """What `RegimeState.update` measured at one bar.

    A plain frozen dataclass rather than a pydantic model: one is built per symbol per bar, and
    validation would cost more than the update itself.

    Attributes:
        regime: The bar's regime, exactly as `regime_series` labels it; None for the first
            ``window`` bars, where `regime_series` gives `WARMUP_LABEL`.
        vol_percentile: As `volatility_percentile_series` gives it; NaN until ``window``
            volatility values exist (bar ``2 * window - 1``).
        vol_ratio: Current volatility over the median of its last ``vol_lookback`` values (the
            current one included); NaN while ``vol_percentile`` is.
        trend_t: Drift t-statistic of the last ``window`` log returns; NaN in warm-up.
        volatility: Sample std of the last ``window`` log returns; NaN in warm-up.
    """

    regime: Regime | None
    vol_percentile: float
    vol_ratio: float
    trend_t: float
    volatility: float


_WARMING_UP = RegimeReading(None, math.nan, math.nan, math.nan, math.nan)


class RegimeState:
    """Incremental twin of `regime_series`: one close in, that bar's regime and statistics out.

    `classify_regime` recomputes ``vol_lookback`` windows and re-ranks each one on every call,
    about 5 ms per symbol per bar; this keeps what the next bar needs instead:

    * the last ``window`` log returns, reduced with the same `_window_stats` as the batch path, so
      the volatility is bit-identical to the vectorised one (no running sums, see there);
    * the last ``vol_lookback`` volatilities in arrival order (to know which one expires) and the
      same values kept sorted, so the weak-CDF percentile is one `bisect_right` and the median an
      index, both exactly what `_vol_rank` counts and `np.nanmedian` returns.

    An update therefore costs O(window + vol_lookback) at worst (the list insert and delete are
    memmoves), a few microseconds in practice. Feeding a series one close at a time yields, at
    every bar, the label of `regime_series` and the percentile of `volatility_percentile_series`.
    """

    def __init__(self, thresholds: RegimeThresholds | None = None) -> None:
        """Create an empty state, warming up from the first close fed to it.

        Args:
            thresholds: ``window``, ``vol_lookback``, ``high_vol_pct``, ``high_vol_ratio`` and
                ``trend_threshold``; defaults if None.
        """
        self._th = thresholds if thresholds is not None else _DEFAULTS
        self._last_log_price: float | None = None
        self._returns: deque[float] = deque(maxlen=self._th.window)
        self._vols: deque[float] = deque()
        self._sorted_vols: list[float] = []

    @property
    def thresholds(self) -> RegimeThresholds:
        """The thresholds this state labels with, fixed for its lifetime."""
        return self._th

    def update(self, close: float) -> RegimeReading:
        """Fold in the next bar's close and return that bar's reading.

        Args:
            close: The bar's close price.

        Returns:
            The reading at this bar; see `RegimeReading` for the warm-up values.

        Raises:
            ValueError: If ``close`` is not a finite, positive price. The state is left as it was,
                so one bad tick does not corrupt the history.
        """
        price = float(close)
        if not (math.isfinite(price) and price > 0.0):
            raise ValueError(f"close must be a finite, positive price, got {close}")
        # np.log, not math.log: they differ in the last bit for some prices (see
        # _rolling_return_stats).
        log_price = float(np.log(price))
        previous, self._last_log_price = self._last_log_price, log_price
        if previous is None:
            return _WARMING_UP
        th = self._th
        self._returns.append(log_price - previous)
        if len(self._returns) < th.window:
            return _WARMING_UP
        mean, std = _window_stats(np.array(self._returns))
        volatility = float(std)
        trend_t = float(_drift_t(mean, std, th.window))
        self._push_volatility(volatility)
        count = len(self._vols)
        if count >= th.window:  # the min_history that _vol_rank is given
            vol_percentile = 100.0 * bisect_right(self._sorted_vols, volatility) / count
            vol_ratio = float(_ratio_to_median(volatility, self._median_volatility()))
        else:
            vol_percentile = vol_ratio = math.nan
        if vol_percentile > th.high_vol_pct and vol_ratio >= th.high_vol_ratio:
            regime = Regime.HIGH_VOLATILITY
        elif trend_t > th.trend_threshold:
            regime = Regime.TRENDING_UP
        elif trend_t < -th.trend_threshold:
            regime = Regime.TRENDING_DOWN
        else:
            regime = Regime.RANGING
        return RegimeReading(regime, vol_percentile, vol_ratio, trend_t, volatility)

    def _push_volatility(self, volatility: float) -> None:
        """Add the newest volatility to the history, expiring the oldest once it is full."""
        if len(self._vols) == self._th.vol_lookback:
            expired = self._vols.popleft()
            del self._sorted_vols[bisect_left(self._sorted_vols, expired)]
        self._vols.append(volatility)
        insort(self._sorted_vols, volatility)

    def _median_volatility(self) -> float:
        """Median of the volatility history; an even count averages the middle pair, like numpy."""
        ordered = self._sorted_vols
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) / 2.0

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state, so a restarted agent resumes mid-series instead of warming up again.

        Holds only finite floats (Python's JSON writer round-trips them exactly) and the
        thresholds, since a history ranked under other thresholds would not resume identically.
        """
        return {
            "thresholds": self._th.model_dump(),
            "last_log_price": self._last_log_price,
            "returns": list(self._returns),
            "volatilities": list(self._vols),
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any]) -> RegimeState:
        """Rebuild a state from a `snapshot`; it continues exactly as the original would.

        Raises:
            ValueError: If a key is missing, a value is not finite, or the parts do not fit
                together (more values than the thresholds keep, volatilities before a full
                window of returns, returns without a last price).
        """
        try:
            thresholds = RegimeThresholds.model_validate(state["thresholds"])
            raw_last = state["last_log_price"]
            returns = [float(r) for r in state["returns"]]
            vols = [float(v) for v in state["volatilities"]]
        except KeyError as e:
            raise ValueError(f"regime snapshot lacks {e.args[0]!r}") from e
        last = None if raw_last is None else float(raw_last)
        if not all(math.isfinite(x) for x in [*returns, *vols, 0.0 if last is None else last]):
            raise ValueError("regime snapshot holds a non-finite value")
        if len(returns) > thresholds.window or len(vols) > thresholds.vol_lookback:
            raise ValueError("regime snapshot holds more history than its thresholds keep")
        if any(v < 0.0 for v in vols) or (vols and len(returns) < thresholds.window):
            raise ValueError("regime snapshot volatilities do not fit its returns")
        if last is None and returns:
            raise ValueError("regime snapshot has returns but no last price")
        restored = cls(thresholds)
        restored._last_log_price = last
        restored._returns.extend(returns)
        restored._vols.extend(vols)
        restored._sorted_vols = sorted(vols)
        return restored


def volume_ratio(volume: np.ndarray, *, lookback: int = _DEFAULTS.volume_lookback) -> float:
    """Last bar's volume over the median volume of the ``lookback`` bars before it.

    The median, not the mean, so one earlier spike does not mask the next; the current bar is
    left out of the baseline so a spike cannot dampen its own ratio.

    Args:
        volume: Bar volumes, oldest first; the last element is the current bar.
        lookback: Bars in the baseline median.

    Returns:
        The volume ratio (1.0 = an ordinary bar).

    Raises:
        ValueError: If fewer than ``lookback + 1`` volumes are given, any is negative or not
            finite, or the baseline median is zero (no trading to compare with).
    """
    values = np.asarray(volume, dtype=float)
    if lookback < 1:
        raise ValueError(f"lookback must be at least 1, got {lookback}")
    if values.ndim != 1 or values.size < lookback + 1:
        raise ValueError(f"volume needs at least lookback + 1 = {lookback + 1} values")
    if not np.all(np.isfinite(values)) or np.any(values < 0.0):
        raise ValueError("volume must hold finite, non-negative values")
    baseline = float(np.median(values[-lookback - 1 : -1]))
    if baseline == 0.0:
        raise ValueError("volume baseline median is zero")
    return float(values[-1]) / baseline


class MarketFlux:
    """Market flux level in [0, 1]: how turbulent the market is now, for sizing and risk.

    The raw flux blends the volatility percentile with the volume spike. An EMA smooths it, and a
    dead-band publishes a new level only when the EMA has moved more than ``flux_deadband`` from
    the published one. Sizes and limits follow the published level, so without the dead-band they
    would twitch on every bar and churn orders. Consequences, used by the tests:

    * the level stays in [0, 1], since it is always a convex combination of values in [0, 1];
    * one update moves it by at most ``flux_alpha + flux_deadband``;
    * moves smaller than the dead-band are never published, so it cannot flip back and forth.

    The level starts at ``initial_level`` (0.5: no view yet) rather than at the first
    observation, so the bound on a single move holds from the first update on.
    """

    def __init__(
        self, thresholds: RegimeThresholds | None = None, *, initial_level: float = 0.5
    ) -> None:
        """Create a flux tracker.

        Args:
            thresholds: Flux parameters (``flux_*`` and ``volume_spike_ratio``); defaults if None.
            initial_level: Starting level and EMA, in [0, 1].

        Raises:
            ValueError: If ``initial_level`` is outside [0, 1].
        """
        if not 0.0 <= initial_level <= 1.0:
            raise ValueError(f"initial_level must be in [0, 1], got {initial_level}")
        self._th = thresholds if thresholds is not None else _DEFAULTS
        self._ema = float(initial_level)
        self._level = float(initial_level)

    @property
    def level(self) -> float:
        """The published flux level in [0, 1]."""
        return self._level

    def update(self, vol_pct: float, volume_ratio: float) -> float:
        """Fold one bar's observation into the flux and return the published level.

        Args:
            vol_pct: Volatility percentile in [0, 100] (see `volatility_percentile_series`).
            volume_ratio: Volume over its rolling median (see `volume_ratio`), non-negative.

        Returns:
            The published level after this bar.

        Raises:
            ValueError: If ``vol_pct`` is outside [0, 100] or ``volume_ratio`` is negative or not
                finite; a bad input must not be smoothed into a plausible-looking level.
        """
        if not 0.0 <= vol_pct <= 100.0:
            raise ValueError(f"vol_pct must be in [0, 100], got {vol_pct}")
        if not (math.isfinite(volume_ratio) and volume_ratio >= 0.0):
            raise ValueError(f"volume_ratio must be finite and non-negative, got {volume_ratio}")
        th = self._th
        spike = min(max((volume_ratio - 1.0) / (th.volume_spike_ratio - 1.0), 0.0), 1.0)
        raw = th.flux_vol_weight * vol_pct / 100.0 + (1.0 - th.flux_vol_weight) * spike
        self._ema += th.flux_alpha * (raw - self._ema)
        if abs(self._ema - self._level) > th.flux_deadband:
            self._level = self._ema
        return self._level

    def snapshot(self) -> dict[str, float]:
        """State to persist so a restarted agent resumes the same level instead of re-learning."""
        return {"ema": self._ema, "level": self._level}

    def restore(self, state: Mapping[str, float]) -> None:
        """Resume from a `snapshot`.

        Raises:
            ValueError: If a key is missing or a value is outside [0, 1].
        """
        try:
            ema, level = float(state["ema"]), float(state["level"])
        except KeyError as e:
            raise ValueError(f"flux snapshot lacks {e.args[0]!r}") from e
        if not (0.0 <= ema <= 1.0 and 0.0 <= level <= 1.0):
            raise ValueError(f"flux snapshot out of [0, 1]: ema={ema}, level={level}")
        self._ema, self._level = ema, level


def _imbalance(plus: float, minus: float) -> float:
    """(plus - minus) / (plus + minus), 0 when both are zero: no volume is no pressure."""
    total = plus + minus
    return 0.0 if total == 0.0 else (plus - minus) / total


def _total(name: str, volume: float | np.ndarray) -> float:
    """Sum a volume or a vector of per-level volumes, rejecting negative or non-finite ones."""
    values = np.asarray(volume, dtype=float)
    if not np.all(np.isfinite(values)) or np.any(values < 0.0):
        raise ValueError(f"{name} must be finite and non-negative")
    return float(values.sum())


def supply_demand(
    bid_volume: float | np.ndarray,
    ask_volume: float | np.ndarray,
    buy_volume: float | np.ndarray,
    sell_volume: float | np.ndarray,
    *,
    book_weight: float = _DEFAULTS.book_weight,
    thresholds: RegimeThresholds | None = None,
) -> float:
    """Net buying pressure in [-1, 1] from resting liquidity and from aggressor flow.

    Book imbalance says what participants are willing to do; aggressor flow (taker buys vs taker
    sells) says what they did. Either alone is easy to spoof or lags, so we blend both. Each is a
    normalised imbalance in [-1, 1], so the blend is too; +1 is all demand, -1 all supply.

    Args:
        bid_volume: Resting bid size, a total or one value per book level.
        ask_volume: Resting ask size, a total or one value per book level.
        buy_volume: Volume of trades where the buyer was the aggressor.
        sell_volume: Volume of trades where the seller was the aggressor.
        book_weight: Weight of the book imbalance; ``1 - book_weight`` goes to the flow.
        thresholds: Supplies ``book_weight`` instead of the keyword.

    Returns:
        The blended imbalance in [-1, 1].

    Raises:
        ValueError: On negative or non-finite volumes, or a weight outside [0, 1].
    """
    weight = _resolve(thresholds, book_weight=book_weight).book_weight
    book = _imbalance(_total("bid_volume", bid_volume), _total("ask_volume", ask_volume))
    flow = _imbalance(_total("buy_volume", buy_volume), _total("sell_volume", sell_volume))
    return weight * book + (1.0 - weight) * flow
