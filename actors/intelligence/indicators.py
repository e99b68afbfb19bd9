"""Technical indicators for the intelligence agent, vectorised and incremental.

Every indicator exists twice:

* a vectorised function over whole 1-D float64 arrays, used for backtests, Tune trials and for
  warming an agent up from history;
* an incremental ``*State`` class fed one bar at a time, used by a live agent so a cycle costs
  O(1) (recursive indicators) or O(n) (rolling windows) instead of recomputing the history.

The two must agree, otherwise a strategy tuned on the vectorised output trades differently
live. They therefore share their conventions exactly: the same warm-up length, the same seed
(a plain ``np.mean`` of the first values, so seeds are bit-identical) and the same recursion
formula. Rolling windows are recomputed from the window on each update rather than kept as
running sums: a running sum drifts over a long-lived agent and, once poisoned by a NaN, never
recovers, whereas a recomputed window is exact and forgets a bad bar after ``n`` bars.

Conventions shared by all indicators:

* Output ``[t]`` depends only on inputs ``[:t + 1]`` (no look-ahead); warm-up values are NaN.
* NaN inputs propagate: a rolling indicator is NaN while the NaN is inside its window, a
  recursive one (EMA, Wilder smoothing, OBV) stays NaN afterwards, because silently skipping a
  bar would make the value disagree with any other implementation.
* ``snapshot()`` returns a plain JSON-able dict (NaN encoded as ``None``) and ``restore`` rebuilds
  an equivalent state, so an agent restarted by Ray continues exactly where it stopped.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = npt.NDArray[np.float64]
"""The array type every vectorised indicator returns."""

Snapshot = dict[str, Any]
"""A JSON-able dict produced by ``snapshot()`` and accepted by ``restore()``."""

NAN = math.nan


class IndicatorState(Protocol):
    """What every incremental ``*State`` class offers besides its ``update``.

    ``update`` is not part of the protocol because its arguments differ per indicator (a close,
    a high/low/close bar, ...); persistence is uniform, so an agent can keep its states in one
    dict and snapshot them all the same way.
    """

    def snapshot(self) -> Snapshot:
        """Return the full state as a plain JSON-able dict (NaN as ``None``)."""
        ...

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        """Rebuild a state from :meth:`snapshot` output; raises ValueError for another class."""
        ...


# --------------------------------------------------------------------------------------------
# Input checking and small shared helpers
# --------------------------------------------------------------------------------------------


def as_float_array(x: npt.ArrayLike, name: str = "x") -> FloatArray:
    """Convert ``x`` to a 1-D float64 array, rejecting other shapes early.

    Public because the sibling modules (patterns, anomaly, correlation) validate the same way.
    A 2-D array would otherwise broadcast silently through the arithmetic and produce a
    plausible-looking but meaningless result.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def as_float_arrays(**arrays: npt.ArrayLike) -> list[FloatArray]:
    """Convert several aligned series, requiring equal lengths because bars are matched by index."""
    out = [as_float_array(v, k) for k, v in arrays.items()]
    lengths = {a.size for a in out}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}={a.size}" for k, a in zip(arrays, out, strict=True))
        raise ValueError(f"series must have equal lengths, got {sizes}")
    return out


def check_window(n: int, name: str = "n", minimum: int = 1) -> int:
    """Validate a window length; a float or bool here is almost always a caller bug."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return int(n)


def _nan_array(size: int) -> FloatArray:
    return np.full(size, NAN, dtype=np.float64)


def _windows(x: FloatArray, n: int) -> FloatArray:
    """Rows are the trailing ``n``-windows ending at indices ``n - 1 .. len(x) - 1``."""
    return sliding_window_view(x, n)


def _rolling(x: FloatArray, n: int, reduce: str, **kwargs: Any) -> FloatArray:
    """Apply a numpy reduction (``mean``, ``std``, ``max``, ...) over trailing windows."""
    out = _nan_array(x.size)
    if x.size >= n:
        out[n - 1 :] = getattr(_windows(x, n), reduce)(axis=1, **kwargs)
    return out


def _max3(a: float, b: float, c: float) -> float:
    """``max`` that propagates NaN like ``np.maximum`` (Python's ``max`` may drop it)."""
    if math.isnan(a) or math.isnan(b) or math.isnan(c):
        return NAN
    return max(a, b, c)


def _enc(x: float) -> float | None:
    """Encode a float for JSON: NaN is not valid JSON, so it becomes ``None``."""
    return None if math.isnan(x) else float(x)


def _dec(x: float | None) -> float:
    return NAN if x is None else float(x)


def _enc_list(values: deque[float] | list[float]) -> list[float | None]:
    return [_enc(v) for v in values]


def _dec_list(values: list[float | None]) -> list[float]:
    return [_dec(v) for v in values]


def check_snapshot(cls: type, data: Snapshot) -> None:
    """Refuse a snapshot of another class, which would otherwise restore garbage quietly."""
    kind = data.get("type")
    if kind != cls.__name__:
        raise ValueError(f"snapshot is for {kind!r}, not {cls.__name__}")


def _wilder_array(values: FloatArray, n: int) -> FloatArray:
    """Wilder's smoothing, aligned with ``values``; first value at index ``n - 1``.

    Seeded with the simple mean of the first ``n`` values, then
    ``avg = (avg * (n - 1) + v) / n``. It is an EMA with ``alpha = 1 / n``; it is written as a
    Python loop because a recursive filter cannot be vectorised in numpy without losing the
    exactness the incremental twin relies on.
    """
    out = _nan_array(values.size)
    if values.size < n:
        return out
    avg = float(np.mean(values[:n]))
    smoothed = [avg]
    for v in values[n:].tolist():
        avg = (avg * (n - 1) + v) / n
        smoothed.append(avg)
    out[n - 1 :] = smoothed
    return out


class _Wilder:
    """Incremental Wilder smoothing; the shared core of RSI, ATR and ADX."""

    def __init__(self, n: int) -> None:
        self.n = check_window(n)
        self._seed: list[float] = []
        self.value = NAN

    @property
    def ready(self) -> bool:
        return len(self._seed) >= self.n

    def update(self, v: float) -> float:
        if self.ready:
            self.value = (self.value * (self.n - 1) + v) / self.n
        else:
            self._seed.append(v)
            if self.ready:
                self.value = float(np.mean(np.asarray(self._seed, dtype=np.float64)))
        return self.value

    def snapshot(self) -> Snapshot:
        return {"n": self.n, "seed": _enc_list(self._seed), "value": _enc(self.value)}

    @classmethod
    def restore(cls, data: Snapshot) -> _Wilder:
        obj = cls(data["n"])
        obj._seed = _dec_list(data["seed"])
        obj.value = _dec(data["value"])
        return obj


# --------------------------------------------------------------------------------------------
# Moving averages
# --------------------------------------------------------------------------------------------


def sma(x: npt.ArrayLike, n: int) -> FloatArray:
    """Simple moving average over the trailing ``n`` values.

    Args:
        x: Input series.
        n: Window length (>= 1).

    Returns:
        Array of the same length; NaN before index ``n - 1``.
    """
    return _rolling(as_float_array(x), check_window(n), "mean")


def ema(x: npt.ArrayLike, n: int) -> FloatArray:
    """Exponential moving average with ``alpha = 2 / (n + 1)``.

    Seeded with the SMA of the first ``n`` values rather than with ``x[0]``, so the first value
    does not dominate the early output and the result matches TA-Lib/StockCharts.

    Args:
        x: Input series.
        n: Span (>= 1).

    Returns:
        Array of the same length; NaN before index ``n - 1``.
    """
    arr = as_float_array(x)
    n = check_window(n)
    out = _nan_array(arr.size)
    if arr.size < n:
        return out
    alpha = 2.0 / (n + 1)
    e = float(np.mean(arr[:n]))
    values = [e]
    for v in arr[n:].tolist():
        e = e + alpha * (v - e)
        values.append(e)
    out[n - 1 :] = values
    return out


class SMAState:
    """Incremental twin of :func:`sma`; O(n) per update, recomputed from the window."""

    def __init__(self, n: int) -> None:
        self.n = check_window(n)
        self._window: deque[float] = deque(maxlen=self.n)

    def update(self, x: float) -> float:
        """Add one value and return the current SMA (NaN during warm-up)."""
        self._window.append(float(x))
        if len(self._window) < self.n:
            return NAN
        return float(np.mean(np.asarray(self._window, dtype=np.float64)))

    def snapshot(self) -> Snapshot:
        return {"type": type(self).__name__, "n": self.n, "window": _enc_list(self._window)}

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"])
        obj._window.extend(_dec_list(data["window"]))
        return obj


class EMAState:
    """Incremental twin of :func:`ema`; O(1) per update after the seed."""

    def __init__(self, n: int) -> None:
        self.n = check_window(n)
        self.alpha = 2.0 / (self.n + 1)
        self._seed: list[float] = []
        self.value = NAN

    @property
    def ready(self) -> bool:
        """Whether the seed is complete, i.e. the EMA has produced its first value."""
        return len(self._seed) >= self.n

    def update(self, x: float) -> float:
        """Add one value and return the current EMA (NaN during warm-up)."""
        x = float(x)
        if self.ready:
            self.value = self.value + self.alpha * (x - self.value)
        else:
            self._seed.append(x)
            if self.ready:
                self.value = float(np.mean(np.asarray(self._seed, dtype=np.float64)))
        return self.value

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "n": self.n,
            "seed": _enc_list(self._seed),
            "value": _enc(self.value),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"])
        obj._seed = _dec_list(data["seed"])
        obj.value = _dec(data["value"])
        return obj


# --------------------------------------------------------------------------------------------
# Oscillators and bands
# --------------------------------------------------------------------------------------------


def _rsi_value(avg_gain: float, avg_loss: float) -> float:
    """RSI from average gain and loss.

    Written as ``100 * g / (g + l)``, algebraically equal to ``100 - 100 / (1 + g / l)`` but
    defined when ``l == 0`` (100). A perfectly flat window has no direction at all, so it
    reads as the neutral 50 rather than an arbitrary extreme.
    """
    total = avg_gain + avg_loss
    if total == 0.0:
        return 50.0
    return 100.0 * avg_gain / total


def rsi(close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Wilder's Relative Strength Index.

    Average gain and loss are seeded with the simple mean of the first ``n`` close-to-close
    changes and then Wilder-smoothed, as in Wilder (1978) and StockCharts.

    Args:
        close: Close prices.
        n: Look-back (>= 1).

    Returns:
        Values in [0, 100]; NaN before index ``n`` (the first change needs two closes).
    """
    c = as_float_array(close, "close")
    n = check_window(n)
    out = _nan_array(c.size)
    if c.size <= n:
        return out
    d = np.diff(c)
    avg_gain = _wilder_array(np.maximum(d, 0.0), n)
    avg_loss = _wilder_array(np.maximum(-d, 0.0), n)
    gains, losses = avg_gain[n - 1 :].tolist(), avg_loss[n - 1 :].tolist()
    out[n:] = [_rsi_value(g, lo) for g, lo in zip(gains, losses, strict=True)]
    return out


class RSIState:
    """Incremental twin of :func:`rsi`."""

    def __init__(self, n: int = 14) -> None:
        self.n = check_window(n)
        self._prev = NAN
        self._started = False
        self._gain = _Wilder(self.n)
        self._loss = _Wilder(self.n)

    def update(self, close: float) -> float:
        """Add one close and return the current RSI (NaN during warm-up)."""
        close = float(close)
        if not self._started:
            self._started = True
            self._prev = close
            return NAN
        d = close - self._prev
        self._prev = close
        gain = self._gain.update(max(d, 0.0))
        loss = self._loss.update(max(-d, 0.0))
        if not self._gain.ready:
            return NAN
        return _rsi_value(gain, loss)

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "n": self.n,
            "started": self._started,
            "prev": _enc(self._prev),
            "gain": self._gain.snapshot(),
            "loss": self._loss.snapshot(),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"])
        obj._started = bool(data["started"])
        obj._prev = _dec(data["prev"])
        obj._gain = _Wilder.restore(data["gain"])
        obj._loss = _Wilder.restore(data["loss"])
        return obj


def _check_macd_spans(fast: int, slow: int, signal: int) -> tuple[int, int, int]:
    fast = check_window(fast, "fast")
    slow = check_window(slow, "slow")
    signal = check_window(signal, "signal")
    if fast >= slow:
        raise ValueError(f"fast ({fast}) must be shorter than slow ({slow})")
    return fast, slow, signal


def macd(
    close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Moving Average Convergence Divergence.

    The signal line is an EMA of the MACD line started where the MACD line starts, so it is
    not dragged by NaN warm-up values.

    Args:
        close: Close prices.
        fast: Fast EMA span; must be shorter than ``slow`` (swapped spans are a common bug).
        slow: Slow EMA span.
        signal: Span of the EMA of the MACD line.

    Returns:
        ``(macd, signal, hist)``; the MACD line starts at index ``slow - 1``, signal and
        histogram at ``slow + signal - 2``.
    """
    c = as_float_array(close, "close")
    fast, slow, signal = _check_macd_spans(fast, slow, signal)
    line = ema(c, fast) - ema(c, slow)
    sig = _nan_array(c.size)
    if c.size >= slow:
        sig[slow - 1 :] = ema(line[slow - 1 :], signal)
    return line, sig, line - sig


class MACDState:
    """Incremental twin of :func:`macd`."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        fast, slow, signal = _check_macd_spans(fast, slow, signal)
        self._fast = EMAState(fast)
        self._slow = EMAState(slow)
        self._signal = EMAState(signal)

    def update(self, close: float) -> tuple[float, float, float]:
        """Add one close and return ``(macd, signal, hist)`` (NaN during warm-up)."""
        f = self._fast.update(close)
        s = self._slow.update(close)
        if not self._slow.ready:
            return NAN, NAN, NAN
        line = f - s
        sig = self._signal.update(line)
        return line, sig, line - sig

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "fast": self._fast.snapshot(),
            "slow": self._slow.snapshot(),
            "signal": self._signal.snapshot(),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["fast"]["n"], data["slow"]["n"], data["signal"]["n"])
        obj._fast = EMAState.restore(data["fast"])
        obj._slow = EMAState.restore(data["slow"])
        obj._signal = EMAState.restore(data["signal"])
        return obj


def bollinger(
    close: npt.ArrayLike, n: int = 20, k: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger Bands: SMA plus/minus ``k`` population standard deviations.

    Population std (ddof=0) is Bollinger's own definition and what charting packages show.

    Args:
        close: Close prices.
        n: Window length (>= 1).
        k: Band width in standard deviations.

    Returns:
        ``(mid, upper, lower)``; NaN before index ``n - 1``.
    """
    c = as_float_array(close, "close")
    n = check_window(n)
    mid = _rolling(c, n, "mean")
    std = _rolling(c, n, "std", ddof=0)
    return mid, mid + k * std, mid - k * std


class BollingerState:
    """Incremental twin of :func:`bollinger`; O(n) per update."""

    def __init__(self, n: int = 20, k: float = 2.0) -> None:
        self.n = check_window(n)
        self.k = float(k)
        self._window: deque[float] = deque(maxlen=self.n)

    def update(self, close: float) -> tuple[float, float, float]:
        """Add one close and return ``(mid, upper, lower)`` (NaN during warm-up)."""
        self._window.append(float(close))
        if len(self._window) < self.n:
            return NAN, NAN, NAN
        w = np.asarray(self._window, dtype=np.float64)
        mid = float(np.mean(w))
        std = float(np.std(w))
        return mid, mid + self.k * std, mid - self.k * std

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "n": self.n,
            "k": self.k,
            "window": _enc_list(self._window),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"], data["k"])
        obj._window.extend(_dec_list(data["window"]))
        return obj


# --------------------------------------------------------------------------------------------
# Range and trend strength
# --------------------------------------------------------------------------------------------


def true_range(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike) -> FloatArray:
    """Wilder's True Range: the bar's range extended to the previous close (gaps count).

    The first bar has no previous close, so its true range is ``high - low`` (Wilder's own
    convention, which lets ATR start one bar earlier than TA-Lib's).

    Returns:
        Array of the same length, defined from index 0.
    """
    h, lo, c = as_float_arrays(high=high, low=low, close=close)
    tr = h - lo
    if tr.size > 1:
        prev = c[:-1]
        tr[1:] = np.maximum.reduce([tr[1:], np.abs(h[1:] - prev), np.abs(lo[1:] - prev)])
    return tr


def atr(high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 14) -> FloatArray:
    """Average True Range with Wilder smoothing.

    Seeded with the mean of the first ``n`` true ranges (including the first bar's
    ``high - low``), as in Wilder (1978) and the StockCharts worked example.

    Returns:
        Array of the same length; NaN before index ``n - 1``.
    """
    return _wilder_array(true_range(high, low, close), check_window(n))


class _TrueRangeState:
    """Running true range; shared by :class:`ATRState` and :class:`ADXState`."""

    def __init__(self) -> None:
        self.prev_close = NAN
        self.started = False

    def update(self, high: float, low: float, close: float) -> float:
        tr = high - low
        if self.started:
            tr = _max3(tr, abs(high - self.prev_close), abs(low - self.prev_close))
        self.started = True
        self.prev_close = close
        return tr


class ATRState:
    """Incremental twin of :func:`atr`; O(1) per update."""

    def __init__(self, n: int = 14) -> None:
        self.n = check_window(n)
        self._tr = _TrueRangeState()
        self._avg = _Wilder(self.n)

    def update(self, high: float, low: float, close: float) -> float:
        """Add one bar and return the current ATR (NaN during warm-up)."""
        tr = self._tr.update(float(high), float(low), float(close))
        return self._avg.update(tr)

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "n": self.n,
            "started": self._tr.started,
            "prev_close": _enc(self._tr.prev_close),
            "avg": self._avg.snapshot(),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"])
        obj._tr.started = bool(data["started"])
        obj._tr.prev_close = _dec(data["prev_close"])
        obj._avg = _Wilder.restore(data["avg"])
        return obj


def _directional_index(dm: float, tr: float) -> float:
    """+DI or -DI; a zero true range means no movement, hence no directional strength."""
    return 0.0 if tr == 0.0 else 100.0 * dm / tr


def _dx(plus_di: float, minus_di: float) -> float:
    """Directional movement index; zero when neither direction moved."""
    total = plus_di + minus_di
    return 0.0 if total == 0.0 else 100.0 * abs(plus_di - minus_di) / total


def _directional_movement(up: float, down: float) -> tuple[float, float]:
    """Wilder's +DM/-DM: only the larger of the two moves counts, and only if positive."""
    plus = up if up > down and up > 0.0 else 0.0
    minus = down if down > up and down > 0.0 else 0.0
    return plus, minus


def adx(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, n: int = 14
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Wilder's Average Directional Index with the directional indicators.

    Directional movement needs the previous bar, so true range, +DM and -DM are smoothed from
    bar 1 on (Wilder's averages, seeded with their first ``n`` values). ADX is the Wilder
    average of DX, seeded with the mean of the first ``n`` DX values.

    Returns:
        ``(adx, plus_di, minus_di)``; the DIs start at index ``n``, ADX at ``2 * n - 1``.
    """
    h, lo, c = as_float_arrays(high=high, low=low, close=close)
    n = check_window(n)
    size = h.size
    adx_out, plus_di, minus_di = _nan_array(size), _nan_array(size), _nan_array(size)
    if size <= n:
        return adx_out, plus_di, minus_di
    up = np.diff(h)
    down = -np.diff(lo)
    plus_dm = np.where((up > down) & (up > 0.0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0.0), down, 0.0)
    tr = true_range(h, lo, c)[1:]
    tr_s = _wilder_array(tr, n)[n - 1 :]
    pdm_s = _wilder_array(plus_dm, n)[n - 1 :]
    mdm_s = _wilder_array(minus_dm, n)[n - 1 :]
    pdi = [_directional_index(p, t) for p, t in zip(pdm_s.tolist(), tr_s.tolist(), strict=True)]
    mdi = [_directional_index(m, t) for m, t in zip(mdm_s.tolist(), tr_s.tolist(), strict=True)]
    plus_di[n:] = pdi
    minus_di[n:] = mdi
    dx = np.array([_dx(p, m) for p, m in zip(pdi, mdi, strict=True)], dtype=np.float64)
    adx_out[n:] = _wilder_array(dx, n)
    return adx_out, plus_di, minus_di


class ADXState:
    """Incremental twin of :func:`adx`; O(1) per update."""

    def __init__(self, n: int = 14) -> None:
        self.n = check_window(n)
        self._tr = _TrueRangeState()
        self._prev_high = NAN
        self._prev_low = NAN
        self._tr_s = _Wilder(self.n)
        self._pdm_s = _Wilder(self.n)
        self._mdm_s = _Wilder(self.n)
        self._adx = _Wilder(self.n)

    def update(self, high: float, low: float, close: float) -> tuple[float, float, float]:
        """Add one bar and return ``(adx, plus_di, minus_di)`` (NaN during warm-up)."""
        high, low, close = float(high), float(low), float(close)
        started = self._tr.started
        tr = self._tr.update(high, low, close)
        up, down = high - self._prev_high, self._prev_low - low
        self._prev_high, self._prev_low = high, low
        if not started:
            return NAN, NAN, NAN
        plus_dm, minus_dm = _directional_movement(up, down)
        tr_s = self._tr_s.update(tr)
        pdm_s = self._pdm_s.update(plus_dm)
        mdm_s = self._mdm_s.update(minus_dm)
        if not self._tr_s.ready:
            return NAN, NAN, NAN
        pdi = _directional_index(pdm_s, tr_s)
        mdi = _directional_index(mdm_s, tr_s)
        return self._adx.update(_dx(pdi, mdi)), pdi, mdi

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "n": self.n,
            "started": self._tr.started,
            "prev_close": _enc(self._tr.prev_close),
            "prev_high": _enc(self._prev_high),
            "prev_low": _enc(self._prev_low),
            "tr": self._tr_s.snapshot(),
            "plus_dm": self._pdm_s.snapshot(),
            "minus_dm": self._mdm_s.snapshot(),
            "adx": self._adx.snapshot(),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"])
        obj._tr.started = bool(data["started"])
        obj._tr.prev_close = _dec(data["prev_close"])
        obj._prev_high = _dec(data["prev_high"])
        obj._prev_low = _dec(data["prev_low"])
        obj._tr_s = _Wilder.restore(data["tr"])
        obj._pdm_s = _Wilder.restore(data["plus_dm"])
        obj._mdm_s = _Wilder.restore(data["minus_dm"])
        obj._adx = _Wilder.restore(data["adx"])
        return obj


# --------------------------------------------------------------------------------------------
# Volume
# --------------------------------------------------------------------------------------------


def obv(close: npt.ArrayLike, volume: npt.ArrayLike) -> FloatArray:
    """On-Balance Volume, starting at 0 on the first bar (it has no previous close to compare).

    Computed with a sequential ``cumsum`` so it matches the incremental running total bit for
    bit.
    """
    c, v = as_float_arrays(close=close, volume=volume)
    signed = np.zeros(c.size, dtype=np.float64)
    if c.size > 1:
        direction = np.sign(np.diff(c))
        signed[1:] = direction * v[1:]
    return np.cumsum(signed)


class OBVState:
    """Incremental twin of :func:`obv`; O(1) per update."""

    def __init__(self) -> None:
        self._prev = NAN
        self._started = False
        self.value = 0.0

    def update(self, close: float, volume: float) -> float:
        """Add one bar and return the running OBV."""
        close, volume = float(close), float(volume)
        if self._started:
            self.value = self.value + float(np.sign(close - self._prev)) * volume
        self._started = True
        self._prev = close
        return self.value

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "started": self._started,
            "prev": _enc(self._prev),
            "value": _enc(self.value),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls()
        obj._started = bool(data["started"])
        obj._prev = _dec(data["prev"])
        obj.value = _dec(data["value"])
        return obj


def _vwap_value(pv_sum: float, v_sum: float) -> float:
    """VWAP from window sums; an all-zero-volume window has no traded price, hence NaN."""
    return NAN if v_sum == 0.0 else pv_sum / v_sum


def vwap(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    n: int,
) -> FloatArray:
    """Rolling ``n``-bar VWAP of the typical price ``(high + low + close) / 3``.

    A rolling window (rather than a session-anchored VWAP) because crypto trades around the
    clock and has no session open to anchor to.

    Returns:
        Array of the same length; NaN before index ``n - 1`` and where the window traded no
        volume.
    """
    h, lo, c, v = as_float_arrays(high=high, low=low, close=close, volume=volume)
    n = check_window(n)
    typical = (h + lo + c) / 3.0
    pv_sum = _rolling(typical * v, n, "sum")
    v_sum = _rolling(v, n, "sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(v_sum == 0.0, NAN, pv_sum / v_sum)


class VWAPState:
    """Incremental twin of :func:`vwap`; O(n) per update."""

    def __init__(self, n: int) -> None:
        self.n = check_window(n)
        self._pv: deque[float] = deque(maxlen=self.n)
        self._v: deque[float] = deque(maxlen=self.n)

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        """Add one bar and return the current rolling VWAP (NaN during warm-up)."""
        volume = float(volume)
        typical = (float(high) + float(low) + float(close)) / 3.0
        self._pv.append(typical * volume)
        self._v.append(volume)
        if len(self._v) < self.n:
            return NAN
        pv_sum = float(np.sum(np.asarray(self._pv, dtype=np.float64)))
        v_sum = float(np.sum(np.asarray(self._v, dtype=np.float64)))
        return _vwap_value(pv_sum, v_sum)

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "n": self.n,
            "pv": _enc_list(self._pv),
            "v": _enc_list(self._v),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"])
        obj._pv.extend(_dec_list(data["pv"]))
        obj._v.extend(_dec_list(data["v"]))
        return obj


# --------------------------------------------------------------------------------------------
# Channels and volatility
# --------------------------------------------------------------------------------------------


def donchian(
    high: npt.ArrayLike, low: npt.ArrayLike, n: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Donchian channel: highest high and lowest low of the trailing ``n`` bars, current included.

    The current bar is included so the value at ``t`` describes the channel *as of* ``t``; a
    breakout test must compare against the channel of the bar before (see ``patterns``).

    Returns:
        ``(upper, lower, mid)``; NaN before index ``n - 1``.
    """
    h, lo = as_float_arrays(high=high, low=low)
    n = check_window(n)
    upper = _rolling(h, n, "max")
    lower = _rolling(lo, n, "min")
    return upper, lower, (upper + lower) / 2.0


class DonchianState:
    """Incremental twin of :func:`donchian`; O(n) per update."""

    def __init__(self, n: int) -> None:
        self.n = check_window(n)
        self._high: deque[float] = deque(maxlen=self.n)
        self._low: deque[float] = deque(maxlen=self.n)

    def update(self, high: float, low: float) -> tuple[float, float, float]:
        """Add one bar and return ``(upper, lower, mid)`` (NaN during warm-up)."""
        self._high.append(float(high))
        self._low.append(float(low))
        if len(self._high) < self.n:
            return NAN, NAN, NAN
        upper = float(np.max(np.asarray(self._high, dtype=np.float64)))
        lower = float(np.min(np.asarray(self._low, dtype=np.float64)))
        return upper, lower, (upper + lower) / 2.0

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "n": self.n,
            "high": _enc_list(self._high),
            "low": _enc_list(self._low),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"])
        obj._high.extend(_dec_list(data["high"]))
        obj._low.extend(_dec_list(data["low"]))
        return obj


def log_returns(close: npt.ArrayLike) -> FloatArray:
    """Close-to-close log returns; NaN at index 0, which has no previous close.

    Log returns add over time, which is what volatility and correlation estimates assume.
    """
    c = as_float_array(close, "close")
    out = _nan_array(c.size)
    if c.size > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[1:] = np.log(c[1:] / c[:-1])
    return out


def realized_volatility(close: npt.ArrayLike, n: int) -> FloatArray:
    """Rolling sample standard deviation (ddof=1) of the last ``n`` log returns.

    Per bar, not annualised: the annualisation factor depends on the bar size, which only the
    caller knows.

    Args:
        close: Close prices.
        n: Number of returns in the window (>= 2, a sample std of one value is undefined).

    Returns:
        Array of the same length; NaN before index ``n``.
    """
    n = check_window(n, minimum=2)
    r = log_returns(close)
    out = _nan_array(r.size)
    if r.size > n:
        out[n:] = _windows(r[1:], n).std(axis=1, ddof=1)
    return out


class RealizedVolState:
    """Incremental twin of :func:`realized_volatility`; O(n) per update."""

    def __init__(self, n: int) -> None:
        self.n = check_window(n, minimum=2)
        self._prev = NAN
        self._started = False
        self._returns: deque[float] = deque(maxlen=self.n)

    def update(self, close: float) -> float:
        """Add one close and return the current realized volatility (NaN during warm-up)."""
        close = float(close)
        if self._started:
            self._returns.append(_log_ratio(close, self._prev))
        self._started = True
        self._prev = close
        if len(self._returns) < self.n:
            return NAN
        return float(np.std(np.asarray(self._returns, dtype=np.float64), ddof=1))

    def snapshot(self) -> Snapshot:
        return {
            "type": type(self).__name__,
            "n": self.n,
            "started": self._started,
            "prev": _enc(self._prev),
            "returns": _enc_list(self._returns),
        }

    @classmethod
    def restore(cls, data: Snapshot) -> Self:
        check_snapshot(cls, data)
        obj = cls(data["n"])
        obj._started = bool(data["started"])
        obj._prev = _dec(data["prev"])
        obj._returns.extend(_dec_list(data["returns"]))
        return obj


def _log_ratio(a: float, b: float) -> float:
    """``log(a / b)`` computed like :func:`log_returns` (numpy semantics: no exception on 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.log(np.float64(a) / np.float64(b)))
