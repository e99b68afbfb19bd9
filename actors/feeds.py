"""Data-feeds agent: replays bundled OHLCV for several symbols, one bar per cycle.

Symbols are aligned on time: the replay clock walks the sorted union of every symbol's timestamps,
and each symbol emits its next row once that row is due. A symbol with no row due (a gap in the
source) is reported *missing*, never filled in. Rows are emitted in file order, so a bad file
(duplicate or backwards timestamps) reaches the validation bridge, which says why it is bad.

The bundled candles carry no order book or trade tape, so both are **synthesised from the bar** and
flagged ``synthetic=True``: the book is centred on the close with a half-spread of a tenth of the
bar's range (clamped to [0.5, 50] bps) and depth that decays geometrically from a level holding 5%
of the bar's volume; the tape splits volume by where the close sits in the bar's range (close
location value), the usual proxy for aggressor flow when only candles are known.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from actors.base import Agent
from cycle.errors import ConfigError
from cycle.messages import Bar, BookLevel, MarketFrame, OrderBook, TradeTape

BOOK_LEVELS = 5
BOOK_DEPTH_DECAY = 0.7
VOLUME_WINDOW = 20


def load_ohlcv(path: str) -> pd.DataFrame:
    """Read one bundled CSV (timestamp,open,high,low,close,volume) with UTC timestamps."""
    frame = pd.read_csv(path)
    expected = ["timestamp", "open", "high", "low", "close", "volume"]
    if list(frame.columns) != expected:
        raise ConfigError(f"data file {path}: columns must be {expected}, got {list(frame.columns)}")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def synthetic_book(bar: Bar) -> OrderBook:
    """A plausible book around the close, built only from the bar (see module docstring)."""
    half_spread_bps = min(max(0.1 * (bar.high - bar.low) / bar.close * 1e4, 0.5), 50.0) / 2
    half_spread = bar.close * half_spread_bps / 1e4
    top = 0.05 * bar.volume
    bids, asks = [], []
    for level in range(BOOK_LEVELS):
        quantity = top * BOOK_DEPTH_DECAY**level
        offset = half_spread * (1 + level)
        bids.append(BookLevel(price=bar.close - offset, quantity=quantity))
        asks.append(BookLevel(price=bar.close + offset, quantity=quantity))
    return OrderBook(
        symbol=bar.symbol, timestamp=bar.timestamp, bids=tuple(bids), asks=tuple(asks),
        synthetic=True,
    )


def synthetic_tape(bar: Bar) -> TradeTape:
    """Aggressor split by close location value: a close at the high means buyers lifted offers."""
    span = bar.high - bar.low
    buy_share = 0.5 if span <= 0 else (bar.close - bar.low) / span
    return TradeTape(
        symbol=bar.symbol,
        timestamp=bar.timestamp,
        buy_volume=bar.volume * buy_share,
        sell_volume=bar.volume * (1 - buy_share),
        trade_count=0,
        synthetic=True,
    )


class ReplayFeed:
    """Plain replay logic: per-symbol cursors over rows, walked by a shared clock."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self.symbols = list(frames)
        self.rows = {
            s: list(
                zip(
                    f["timestamp"].dt.to_pydatetime(),
                    f["open"].to_numpy(float),
                    f["high"].to_numpy(float),
                    f["low"].to_numpy(float),
                    f["close"].to_numpy(float),
                    f["volume"].to_numpy(float),
                    strict=True,
                )
            )
            for s, f in frames.items()
        }
        stamps = set()
        for frame in frames.values():
            stamps.update(frame["timestamp"].dt.to_pydatetime())
        self.clock: list[datetime] = sorted(stamps)
        self.clock_index = 0
        self.cursors = {s: 0 for s in self.symbols}

    @property
    def exhausted(self) -> bool:
        return self.clock_index >= len(self.clock)

    def next_bars(self) -> tuple[datetime | None, dict[str, Bar], dict[str, str]]:
        """Advance the clock one step; each symbol emits at most one due row."""
        if self.exhausted:
            return None, {}, {s: "replay exhausted" for s in self.symbols}
        now = self.clock[self.clock_index]
        self.clock_index += 1
        bars, missing = {}, {}
        for symbol in self.symbols:
            cursor = self.cursors[symbol]
            rows = self.rows[symbol]
            if cursor < len(rows) and rows[cursor][0] <= now:
                stamp, o, h, lo, c, v = rows[cursor]
                self.cursors[symbol] = cursor + 1
                bars[symbol] = Bar(
                    symbol=symbol, timestamp=stamp, open=o, high=h, low=lo, close=c, volume=v
                )
            else:
                missing[symbol] = (
                    "source has no more rows" if cursor >= len(rows) else f"no bar at {now.isoformat()}"
                )
        return now, bars, missing


class FeedsAgent(Agent):
    """Replays bundled candles and derives per-bar signals (return, range, volume ratio)."""

    role = "feeds"

    def setup(self) -> None:
        data = self.config.data
        frames = {s: load_ohlcv(str(data.path_of(s))) for s in self.config.symbols}
        self.feed = ReplayFeed(frames)
        self.last_close: dict[str, float] = {}
        self.volumes: dict[str, deque[float]] = {
            s: deque(maxlen=VOLUME_WINDOW) for s in self.config.symbols
        }

    def step(self, cycle: int) -> MarketFrame:
        now, bars, missing = self.feed.next_bars()
        signals = {s: self._signals(bar) for s, bar in bars.items()}
        usable = {s: b for s, b in bars.items() if _finite_positive(b)}
        return MarketFrame(
            cycle=cycle,
            timestamp=now,
            bars=bars,
            books={s: synthetic_book(b) for s, b in usable.items()},
            tapes={s: synthetic_tape(b) for s, b in usable.items()},
            signals=signals,
            missing=missing,
            exhausted=self.feed.exhausted,
        )

    def _signals(self, bar: Bar) -> dict[str, float]:
        previous = self.last_close.get(bar.symbol)
        history = self.volumes[bar.symbol]
        mean_volume = float(np.mean(history)) if history else math.nan
        signals = {
            "log_return": math.log(bar.close / previous)
            if previous and bar.close > 0 and previous > 0
            else math.nan,
            "range_fraction": (bar.high - bar.low) / bar.close if bar.close > 0 else math.nan,
            "volume_ratio": bar.volume / mean_volume if mean_volume and mean_volume > 0 else math.nan,
        }
        if _finite_positive(bar):
            self.last_close[bar.symbol] = bar.close
            history.append(bar.volume)
        return signals

    def extra_metrics(self) -> dict[str, float]:
        return {"clock_index": float(self.feed.clock_index), "clock_length": float(len(self.feed.clock))}

    def state_dict(self) -> dict[str, Any]:
        return {
            "clock_index": self.feed.clock_index,
            "cursors": dict(self.feed.cursors),
            "last_close": dict(self.last_close),
            "volumes": {s: list(v) for s, v in self.volumes.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.feed.clock_index = state["clock_index"]
        self.feed.cursors.update(state["cursors"])
        self.last_close = dict(state["last_close"])
        for symbol, values in state["volumes"].items():
            self.volumes[symbol] = deque(values, maxlen=VOLUME_WINDOW)


def _finite_positive(bar: Bar) -> bool:
    values = (bar.open, bar.high, bar.low, bar.close)
    return all(math.isfinite(v) and v > 0 for v in values) and bar.high >= bar.low
