"""Candlestick patterns and channel breakouts, vectorised over whole bar arrays.

Patterns are shape rules only: whether a hammer "means" anything depends on the trend before
it, and that judgement belongs to the strategy, which can combine these masks with the
indicators. Every function is causal (its value at ``t`` uses bars ``<= t``) and returns a
value for every bar: ``False``/``0`` where a pattern cannot be evaluated yet (it needs a
previous bar or a full channel), because a boolean array has no NaN and "no signal" is the
safe reading of "not enough history".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from actors.intelligence.indicators import (
    FloatArray,
    as_float_arrays,
    check_window,
    donchian,
    sma,
)

BoolArray = npt.NDArray[np.bool_]
"""Per-bar pattern mask."""

SignalArray = npt.NDArray[np.int8]
"""Per-bar signal: +1 (up), -1 (down) or 0 (none)."""


def _geometry(
    open_: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Body, full range, upper shadow and lower shadow of every bar."""
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    return top - bottom, high - low, high - top, bottom - low


def _ohlc(
    open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike
) -> list[FloatArray]:
    return as_float_arrays(open=open_, high=high, low=low, close=close)


def doji(
    open_: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    body_ratio: float = 0.1,
) -> BoolArray:
    """Doji: open and close nearly equal relative to the bar's range (indecision).

    Args:
        open_: Open prices.
        high: High prices.
        low: Low prices.
        close: Close prices.
        body_ratio: Largest body, as a fraction of the range, still called a doji.

    Returns:
        Mask of doji bars; a bar with zero range is not a doji (nothing traded, no signal).
    """
    body, rng, _, _ = _geometry(*_ohlc(open_, high, low, close))
    return (rng > 0.0) & (body <= body_ratio * rng)


def hammer(
    open_: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    shadow_ratio: float = 2.0,
    max_upper_ratio: float = 0.1,
) -> BoolArray:
    """Hammer: a small body at the top of the bar with a long lower shadow (rejected lows).

    Args:
        open_: Open prices.
        high: High prices.
        low: Low prices.
        close: Close prices.
        shadow_ratio: Lower shadow must be at least this many bodies long.
        max_upper_ratio: Upper shadow may be at most this fraction of the range.

    Returns:
        Mask of hammer-shaped bars (a dragonfly doji qualifies: same rejection of lows).
    """
    body, rng, upper, lower = _geometry(*_ohlc(open_, high, low, close))
    return (rng > 0.0) & (lower >= shadow_ratio * body) & (upper <= max_upper_ratio * rng)


def shooting_star(
    open_: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    shadow_ratio: float = 2.0,
    max_lower_ratio: float = 0.1,
) -> BoolArray:
    """Shooting star: the mirror of :func:`hammer`, a long upper shadow (rejected highs).

    Args:
        open_: Open prices.
        high: High prices.
        low: Low prices.
        close: Close prices.
        shadow_ratio: Upper shadow must be at least this many bodies long.
        max_lower_ratio: Lower shadow may be at most this fraction of the range.

    Returns:
        Mask of shooting-star-shaped bars (a gravestone doji qualifies).
    """
    body, rng, upper, lower = _geometry(*_ohlc(open_, high, low, close))
    return (rng > 0.0) & (upper >= shadow_ratio * body) & (lower <= max_lower_ratio * rng)


def bullish_engulfing(
    open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike
) -> BoolArray:
    """Bullish engulfing: a down bar followed by an up bar whose body covers it.

    The current body must be strictly larger than the previous one, so two identical bodies
    (no change of control) are not reported.

    Returns:
        Mask, False on bar 0.
    """
    o, _, _, c = _ohlc(open_, high, low, close)
    mask = np.zeros(o.size, dtype=np.bool_)
    po, pc, co, cc = o[:-1], c[:-1], o[1:], c[1:]
    mask[1:] = (pc < po) & (cc > co) & (co <= pc) & (cc >= po) & (cc - co > po - pc)
    return mask


def bearish_engulfing(
    open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike
) -> BoolArray:
    """Bearish engulfing: an up bar followed by a down bar whose body covers it.

    Returns:
        Mask, False on bar 0.
    """
    o, _, _, c = _ohlc(open_, high, low, close)
    mask = np.zeros(o.size, dtype=np.bool_)
    po, pc, co, cc = o[:-1], c[:-1], o[1:], c[1:]
    mask[1:] = (pc > po) & (cc < co) & (co >= pc) & (cc <= po) & (co - cc > pc - po)
    return mask


def inside_bar(high: npt.ArrayLike, low: npt.ArrayLike) -> BoolArray:
    """Inside bar: range strictly within the previous bar's range (volatility contraction).

    Returns:
        Mask, False on bar 0.
    """
    h, lo = as_float_arrays(high=high, low=low)
    mask = np.zeros(h.size, dtype=np.bool_)
    mask[1:] = (h[1:] < h[:-1]) & (lo[1:] > lo[:-1])
    return mask


def candlestick_patterns(
    open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike
) -> dict[str, BoolArray]:
    """All candlestick masks with default parameters, keyed by pattern name.

    One call for the agent, so adding a pattern here makes it reach every consumer at once.
    """
    o, h, lo, c = _ohlc(open_, high, low, close)
    return {
        "doji": doji(o, h, lo, c),
        "hammer": hammer(o, h, lo, c),
        "shooting_star": shooting_star(o, h, lo, c),
        "bullish_engulfing": bullish_engulfing(o, h, lo, c),
        "bearish_engulfing": bearish_engulfing(o, h, lo, c),
        "inside_bar": inside_bar(h, lo),
    }


def _prior(x: FloatArray) -> FloatArray:
    """Shift by one bar so the value at ``t`` describes bars up to ``t - 1``."""
    out = np.full(x.size, np.nan, dtype=np.float64)
    out[1:] = x[:-1]
    return out


def breakout(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    n: int = 20,
    volume: npt.ArrayLike | None = None,
    volume_factor: float = 1.5,
) -> SignalArray:
    """Close beyond the Donchian channel of the ``n`` bars *before* the current one.

    The channel excludes the current bar: including it would make an upside breakout
    impossible (the bar's own high is always >= its close).

    Args:
        high: High prices.
        low: Low prices.
        close: Close prices.
        n: Channel length in bars.
        volume: If given, a breakout also needs ``volume[t]`` at least ``volume_factor``
            times the mean volume of the same ``n`` prior bars, filtering thin-volume pokes
            through the channel that tend to fail.
        volume_factor: Volume multiple required when ``volume`` is given.

    Returns:
        +1 for a close above the prior highest high, -1 below the prior lowest low, else 0
        (also 0 for the first ``n`` bars).
    """
    h, lo, c = as_float_arrays(high=high, low=low, close=close)
    n = check_window(n)
    upper, lower, _ = donchian(h, lo, n)
    signal = np.zeros(c.size, dtype=np.int8)
    signal[c > _prior(upper)] = 1
    signal[c < _prior(lower)] = -1
    if volume is not None:
        _, v = as_float_arrays(close=c, volume=volume)
        confirmed = v >= volume_factor * _prior(sma(v, n))
        signal[~confirmed] = 0
    return signal
