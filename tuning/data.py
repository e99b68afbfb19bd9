"""Price data for backtests: the bundled candles, and long series built from them.

A backtest needs the bars of one symbol and the length of one bar: the bar interval sets how
returns are annualised (Sharpe, Sortino, CAGR), so it travels with the bars instead of being a
constant somewhere else. Series longer than the bundled files (a benchmark's million bars) are
built by chaining the real files end to end, each copy rescaled so it opens where the previous one
closed: every bar's shape and every return is real, only the price level is shifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from actors.strategy.library import OHLCV
from cycle.config import PROJECT_ROOT

DATA_DIR = PROJECT_ROOT / "data"
BUNDLED = {
    "ETH/BTC": DATA_DIR / "freqtrade_ETH_BTC-5m.csv",
    "LTC/BTC": DATA_DIR / "freqtrade_LTC_BTC-5m.csv",
    "ADA/BTC": DATA_DIR / "freqtrade_ADA_BTC-5m.csv",
    "BTC/USDT": DATA_DIR / "freqtrade_BTCUSDT-like-5m.csv",
}
"""The bundled files by symbol (see data/README.md for sources and gaps)."""


@dataclass(frozen=True)
class Candles:
    """One symbol's bars with their open times and the bar interval in seconds."""

    symbol: str
    bar_seconds: int
    timestamps: npt.NDArray[np.datetime64]
    bars: OHLCV

    def __len__(self) -> int:
        return len(self.bars)

    def slice(self, start: int, stop: int) -> Candles:
        """Bars ``[start, stop)`` as new contiguous arrays (a copy, so workers own their data)."""
        bars = OHLCV(*(np.ascontiguousarray(a[start:stop]) for a in _columns(self.bars)))
        return Candles(self.symbol, self.bar_seconds, self.timestamps[start:stop].copy(), bars)


def _columns(bars: OHLCV) -> tuple[np.ndarray, ...]:
    return bars.open, bars.high, bars.low, bars.close, bars.volume


def load_candles(path: str | Path, symbol: str | None = None) -> Candles:
    """Read a bundled-format CSV (``timestamp,open,high,low,close,volume``).

    The bar interval is the median spacing of the timestamps, so a file with gaps (ADA/BTC) still
    reports its true 5-minute interval.
    """
    path = Path(path)
    frame = pd.read_csv(path)
    stamps = pd.to_datetime(frame["timestamp"], utc=True).to_numpy(dtype="datetime64[ns]")
    spacing = np.diff(stamps).astype("timedelta64[s]").astype(np.int64)
    bar_seconds = int(np.median(spacing)) if spacing.size else 0
    if bar_seconds <= 0:
        raise ValueError(f"{path}: cannot infer a bar interval from {len(frame)} rows")
    bars = OHLCV(
        *(np.ascontiguousarray(frame[c].to_numpy(dtype=np.float64)) for c in
          ("open", "high", "low", "close", "volume"))
    )
    return Candles(symbol or path.stem, bar_seconds, stamps, bars)


def load_symbol(symbol: str) -> Candles:
    """A bundled symbol by name (``ETH/BTC``, ``LTC/BTC``, ``ADA/BTC``, ``BTC/USDT``)."""
    if symbol not in BUNDLED:
        raise ValueError(f"unknown bundled symbol {symbol!r}; known: {sorted(BUNDLED)}")
    return load_candles(BUNDLED[symbol], symbol)


def chained_series(length: int, sources: list[Candles] | None = None) -> Candles:
    """At least ``length`` bars made of the bundled files chained end to end, cut to ``length``.

    Each copy is rescaled so its first open equals the previous copy's last close, so returns
    across the seams are as small as real bar-to-bar moves and no jump fakes a trend.
    """
    sources = sources or [load_symbol(s) for s in ("BTC/USDT", "ETH/BTC", "LTC/BTC", "ADA/BTC")]
    bar_seconds = sources[0].bar_seconds
    pieces: list[np.ndarray] = []
    level = 100.0
    total = 0
    while total < length:
        for source in sources:
            block = np.column_stack(_columns(source.bars))
            scale = level / block[0, 0]
            block = block.copy()
            block[:, :4] *= scale
            level = float(block[-1, 3])
            pieces.append(block)
            total += len(block)
            if total >= length:
                break
    joined = np.concatenate(pieces)[:length]
    start = np.datetime64("2018-01-01T00:00:00", "ns")
    stamps = start + np.arange(length) * np.timedelta64(bar_seconds, "s")
    bars = OHLCV(*(np.ascontiguousarray(joined[:, i]) for i in range(5)))
    return Candles("CHAINED", bar_seconds, stamps, bars)
