"""Rolling cross-symbol correlation of log returns.

The risk agent uses these matrices to see when "diversified" positions are really one bet,
so an unknown correlation must stay visibly unknown: a pair is NaN whenever either symbol has
a missing or non-positive close inside the window, has too little history, or did not move at
all (zero variance makes the correlation undefined). Nothing is forward-filled or imputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from actors.intelligence.indicators import FloatArray, as_float_arrays, check_window

Closes = Mapping[str, npt.ArrayLike] | pd.DataFrame | npt.NDArray[np.float64]
"""Aligned closes: symbol -> 1-D array, a DataFrame with one column per symbol, or a 2-D
``(bars, symbols)`` array."""

_CHUNK = 1024
"""Windows processed per batch, bounding memory at ``_CHUNK * symbols * window`` floats."""


def _as_matrix(
    closes: Closes, symbols: Sequence[str] | None
) -> tuple[tuple[str, ...], FloatArray]:
    """Normalise the accepted inputs to ``(symbols, (bars, symbols) float array)``."""
    if isinstance(closes, pd.DataFrame):
        names = tuple(str(c) for c in closes.columns)
        matrix = closes.to_numpy(dtype=np.float64)
    elif isinstance(closes, Mapping):
        names = tuple(closes)
        matrix = np.column_stack(as_float_arrays(**{str(k): v for k, v in closes.items()}))
    else:
        matrix = np.asarray(closes, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"closes array must be 2-D (bars, symbols), got {matrix.shape}")
        names = tuple(str(i) for i in range(matrix.shape[1]))
    if symbols is not None:
        if len(symbols) != len(names):
            raise ValueError(f"{len(symbols)} symbols given for {len(names)} series")
        names = tuple(symbols)
    if not names:
        raise ValueError("need at least one symbol")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate symbols in {names}")
    return names, matrix


def _log_returns(matrix: FloatArray) -> FloatArray:
    """Column-wise log returns; NaN on the first bar and next to a non-positive close.

    A zero or negative close is a data error (or a delisting placeholder), not a price, so it
    is treated as missing rather than producing an infinite return.
    """
    prices = np.where(matrix > 0.0, matrix, np.nan)
    out = np.full(prices.shape, np.nan, dtype=np.float64)
    out[1:] = np.log(prices[1:] / prices[:-1])
    return out


def _correlate(windows: FloatArray) -> FloatArray:
    """Pearson correlation matrices of a batch of ``(symbols, window)`` return windows."""
    dev = windows - windows.mean(axis=2, keepdims=True)
    cov = np.einsum("biw,bjw->bij", dev, dev)
    var = np.einsum("bii->bi", cov)
    denom = np.sqrt(var[:, :, None] * var[:, None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(denom > 0.0, cov / denom, np.nan)
    corr = np.clip(corr, -1.0, 1.0)
    idx = np.arange(corr.shape[1])
    corr[:, idx, idx] = np.where(np.isfinite(corr[:, idx, idx]), 1.0, np.nan)
    return corr


def rolling_correlation(
    closes: Closes, window: int, symbols: Sequence[str] | None = None
) -> tuple[tuple[str, ...], FloatArray]:
    """Correlation matrix of log returns over the trailing ``window`` returns, at every bar.

    Args:
        closes: Closes aligned on the same bars (equal lengths).
        window: Number of returns per estimate (>= 2).
        symbols: Names for the series, overriding dict keys, DataFrame columns or the default
            ``"0", "1", ...`` of a plain array.

    Returns:
        ``(symbols, corr)`` where ``corr[t]`` is the ``(k, k)`` matrix over returns
        ``t - window + 1 .. t``. NaN for ``t < window`` (the first bar has no return) and for
        every pair whose window is incomplete or has zero variance. The diagonal is exactly
        1 where the symbol's own window is usable, NaN otherwise.
    """
    window = check_window(window, "window", minimum=2)
    names, matrix = _as_matrix(closes, symbols)
    bars, k = matrix.shape
    out = np.full((bars, k, k), np.nan, dtype=np.float64)
    if bars <= window:
        return names, out
    returns = _log_returns(matrix)
    views = sliding_window_view(returns[1:], window, axis=0)
    for start in range(0, views.shape[0], _CHUNK):
        stop = min(start + _CHUNK, views.shape[0])
        out[window + start : window + stop] = _correlate(views[start:stop])
    return names, out


def correlation_matrix(
    closes: Closes, window: int, symbols: Sequence[str] | None = None
) -> pd.DataFrame:
    """The latest rolling correlation matrix, labelled by symbol.

    A DataFrame because the consumer looks pairs up by name, and positional indices into a
    symbol list are an easy source of silent mix-ups.

    Returns:
        ``(k, k)`` DataFrame for the last bar; all NaN when history is shorter than
        ``window + 1`` bars.
    """
    names, corr = rolling_correlation(closes, window, symbols)
    latest = corr[-1] if corr.shape[0] else np.full((len(names), len(names)), np.nan)
    return pd.DataFrame(latest, index=list(names), columns=list(names))
