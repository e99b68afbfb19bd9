"""Robust z-score anomaly detection over returns, volume and spread.

A plain z-score is blind exactly when it matters: one huge bar inflates the mean and the
standard deviation it is measured against, hiding itself and the bars after it. The robust
z-score replaces them with the median and the median absolute deviation (MAD), which a few
outliers cannot move, scaled by 1.4826 so that on Gaussian data it reads like an ordinary
z-score and a threshold keeps its usual meaning.

Each bar is judged against the ``window`` bars *before* it, never against itself, so a spike
cannot dampen its own score and the detector is causal (no look-ahead).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from actors.intelligence.indicators import (
    FloatArray,
    Snapshot,
    as_float_array,
    as_float_arrays,
    check_snapshot,
    check_window,
    log_returns,
)

MAD_SCALE = 1.4826
"""MAD-to-sigma factor for Gaussian data (1 / Phi^-1(3/4))."""

MEAN_AD_SCALE = 1.253314
"""Mean-absolute-deviation-to-sigma factor for Gaussian data (sqrt(pi / 2)).

Used when the MAD is zero, which happens on real bars whenever more than half the window is
identical (unchanged closes on an illiquid pair, a spread pinned at one tick). Dividing by a
zero MAD would flag every non-median bar as infinitely anomalous; the mean absolute deviation
still sees the minority of bars that did move (the fallback of Iglewicz and Hoaglin's modified
z-score as implemented by IBM SPSS).
"""

DEFAULT_FIELDS = ("returns", "volume", "spread")
"""Fields the intelligence agent watches by default, as produced by :func:`bar_features`."""


def _median(a: FloatArray) -> FloatArray:
    """Row medians, NaN-aware only when needed because ``nanmedian`` is much slower."""
    if not np.isnan(a).any():
        return np.median(a, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are masked by the caller
        return np.nanmedian(a, axis=1)


def _zscores_against(values: FloatArray, windows: FloatArray, min_periods: int) -> FloatArray:
    """Robust z-score of ``values[i]`` against the baseline ``windows[i]``.

    Shared by the vectorised function and the incremental detector so both give identical
    numbers.
    """
    med = _median(windows)
    dev = np.abs(windows - med[:, None])
    mad = _median(dev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_ad = np.nanmean(dev, axis=1)
    scale = np.where(mad > 0.0, MAD_SCALE * mad, MEAN_AD_SCALE * mean_ad)
    diff = values - med
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # huge z is just inf
        unseen = np.where(diff == 0.0, 0.0, np.sign(diff) * np.inf)
        z = np.where(scale > 0.0, diff / scale, unseen)
    z[(~np.isnan(windows)).sum(axis=1) < min_periods] = np.nan
    return z


def _check_min_periods(min_periods: int | None, window: int) -> int:
    if min_periods is None:
        return window
    min_periods = check_window(min_periods, "min_periods", minimum=2)
    if min_periods > window:
        raise ValueError(f"min_periods ({min_periods}) cannot exceed window ({window})")
    return min_periods


def robust_zscore(
    x: npt.ArrayLike, window: int = 100, min_periods: int | None = None
) -> FloatArray:
    """Robust z-score of each value against the ``window`` values before it.

    ``z[t] = (x[t] - median) / (1.4826 * MAD)`` over ``x[t - window : t]``; see
    :data:`MEAN_AD_SCALE` for the zero-MAD fallback. If the whole baseline is constant, a
    value equal to it scores 0 and any other value scores +/-inf: it has never been seen.

    Args:
        x: Series to score (log returns, volume, spread, ...).
        window: Baseline length in bars (>= 2).
        min_periods: Fewest non-NaN baseline values needed to score; defaults to ``window``
            so a gap is never judged against a thinner baseline unless the caller opts in.

    Returns:
        Array of the same length; NaN for the first ``window`` bars, where the baseline has
        too few values, and where ``x`` itself is NaN.
    """
    arr = as_float_array(x)
    window = check_window(window, "window", minimum=2)
    min_periods = _check_min_periods(min_periods, window)
    out = np.full(arr.size, np.nan, dtype=np.float64)
    if arr.size > window:
        baselines = sliding_window_view(arr[:-1], window)
        out[window:] = _zscores_against(arr[window:], baselines, min_periods)
    return out


def bar_features(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, volume: npt.ArrayLike
) -> dict[str, FloatArray]:
    """The default watched fields derived from OHLCV bars.

    Bars carry no bid/ask, so ``spread`` is the relative bar range ``(high - low) / close``,
    which widens with the quoted spread when liquidity dries up. A caller with quote data
    should pass the real spread instead.

    Returns:
        ``{"returns": log returns, "volume": volume, "spread": relative range}``.
    """
    h, lo, c, v = as_float_arrays(high=high, low=low, close=close, volume=volume)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = (h - lo) / c
    return {"returns": log_returns(c), "volume": v, "spread": spread}


@dataclass(frozen=True)
class Anomaly:
    """One flagged value: the reason a bar was considered anomalous.

    Attributes:
        field: Name of the field that was out of line.
        index: Bar index (position in the batch, or bars seen by the incremental detector).
        value: The observed value.
        z: Its robust z-score; the sign says in which direction it broke out.
    """

    field: str
    index: int
    value: float
    z: float

    @property
    def reason(self) -> str:
        """Human-readable explanation for logs and reports."""
        return f"{self.field}={self.value:.6g} z={self.z:+.2f}"


class AnomalyDetector:
    """Flags bars whose fields deviate from their own recent history.

    The same object works in batch (:meth:`zscores`, :meth:`detect`) and bar by bar
    (:meth:`update`), with identical numbers, so thresholds tuned in a backtest hold live.

    Args:
        threshold: Absolute robust z-score above which a value is flagged. 3.5 is Iglewicz and
            Hoaglin's recommendation; on Gaussian data with a 100-bar window it flags about
            0.2% of values (0.05% if median and MAD were known exactly: estimating them from
            the window fattens the tails).
        window: Baseline length in bars.
        fields: Field names the detector watches.
        min_periods: See :func:`robust_zscore`.
    """

    def __init__(
        self,
        threshold: float = 3.5,
        window: int = 100,
        fields: Sequence[str] = DEFAULT_FIELDS,
        min_periods: int | None = None,
    ) -> None:
        if not threshold > 0.0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        if not fields:
            raise ValueError("fields must not be empty")
        self.threshold = float(threshold)
        self.window = check_window(window, "window", minimum=2)
        self.min_periods = _check_min_periods(min_periods, self.window)
        self.fields = tuple(fields)
        self._history: dict[str, deque[float]] = {
            name: deque(maxlen=self.window) for name in self.fields
        }
        self._seen = 0

    def _check_fields(self, names: Sequence[str]) -> None:
        unknown = sorted(set(names) - set(self.fields))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; detector watches {list(self.fields)}")

    def zscores(self, data: Mapping[str, npt.ArrayLike]) -> dict[str, FloatArray]:
        """Robust z-scores of every watched field present in ``data``.

        Raises:
            ValueError: A key is not a watched field (most likely a typo, which would
                otherwise silently disable detection for that field).
        """
        self._check_fields(list(data))
        return {
            name: robust_zscore(series, self.window, self.min_periods)
            for name, series in data.items()
        }

    def detect(self, data: Mapping[str, npt.ArrayLike]) -> list[Anomaly]:
        """All anomalies in a batch, ordered by bar index, then by field order."""
        scores = self.zscores(data)
        found = []
        for name in self.fields:
            if name not in scores:
                continue
            values = as_float_array(data[name], name)
            for i in np.flatnonzero(np.abs(scores[name]) > self.threshold).tolist():
                found.append(Anomaly(name, i, float(values[i]), float(scores[name][i])))
        order = {name: k for k, name in enumerate(self.fields)}
        return sorted(found, key=lambda a: (a.index, order[a.field]))

    def update(self, values: Mapping[str, float]) -> list[Anomaly]:
        """Score one bar against the history, then add it to the history.

        A watched field missing from ``values`` counts as NaN (no observation), which keeps
        every field's window aligned on the same bars.

        Returns:
            The anomalies of this bar, in field order; empty when nothing is out of line.
        """
        self._check_fields(list(values))
        index = self._seen
        self._seen += 1
        found = []
        for name in self.fields:
            value = float(values.get(name, math.nan))
            history = self._history[name]
            if len(history) == self.window:
                baseline = np.asarray(history, dtype=np.float64)[None, :]
                z = float(_zscores_against(np.array([value]), baseline, self.min_periods)[0])
                if abs(z) > self.threshold:
                    found.append(Anomaly(name, index, value, z))
            history.append(value)
        return found

    def snapshot(self) -> Snapshot:
        """JSON-able state (NaN as ``None``) so a restarted agent keeps its baselines."""
        return {
            "type": type(self).__name__,
            "threshold": self.threshold,
            "window": self.window,
            "min_periods": self.min_periods,
            "fields": list(self.fields),
            "seen": self._seen,
            "history": {
                name: [None if math.isnan(v) else v for v in values]
                for name, values in self._history.items()
            },
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        """Rebuild a detector from :meth:`snapshot` output."""
        check_snapshot(cls, data)
        obj = cls(data["threshold"], data["window"], data["fields"], data["min_periods"])
        obj._seen = int(data["seen"])
        for name, values in data["history"].items():
            obj._history[name].extend(math.nan if v is None else float(v) for v in values)
        return obj
