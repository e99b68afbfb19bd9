"""Data-feeds agent (cycle step 2): bars, order books, trade tapes, sentiment and derived signals.

Two bar sources sit behind one :class:`FeedPoll` answer:

* :class:`ReplayFeed` replays OHLCV files (CSV or Parquet) for several symbols. Symbols are aligned
  on time: the replay clock walks the sorted union of every symbol's timestamps, and each symbol
  emits its next row once that row is due. When ``data.timeframe`` is coarser than a file, the
  file is resampled (:func:`resample_ohlcv`); a bucket that lacks source bars or holds a bad one
  is dropped and reported, never completed with invented bars. A finer timeframe than the file is
  a configuration error.
* :class:`CcxtFeed` polls a live exchange through any synchronous ccxt exchange object (the mock
  Binance of ``actors.adapters.mock_exchange`` in tests): the newest closed candle, the order book
  and the recent trades of that candle, all observed (``synthetic=False``).

Whatever the source, a symbol with no bar (a gap, an outage, a late candle) is reported in
``missing`` with the reason; a symbol whose book, tape or sentiment is unavailable keeps its bar
but is listed in ``degraded`` with the reason, and the absent values are simply absent.

The bundled candles carry no order book or trade tape, so the replay **synthesises both from the
bar** and flags them ``synthetic=True``: the book is centred on the close with a half-spread of a
tenth of the bar's range (clamped to [0.5, 50] bps) and depth that decays geometrically from a
level holding 5% of the bar's volume; the tape splits volume by where the close sits in the bar's
range (close location value), the usual proxy for aggressor flow when only candles are known.

Signals per symbol (``MarketFrame.signals``): ``log_return``, ``range_fraction``,
``volume_ratio``; from the book ``spread_bps``, ``depth_imbalance``, ``microprice_bps``; from the
tape ``aggressor_imbalance``, ``buy_share``, ``trade_count``; and ``sentiment`` with
``sentiment_age_bars`` when a fresh score exists.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ccxt
import numpy as np
import pandas as pd

from actors.base import Agent
from actors.sentiment import SentimentSource, load_sentiment_source, read_table
from cycle.config import TIMEFRAME_SECONDS, FluxtradeConfig, LiveFeedConfig
from cycle.errors import ConfigError
from cycle.messages import Bar, BookLevel, MarketFrame, OrderBook, TradeTape

BOOK_LEVELS = 5
BOOK_DEPTH_DECAY = 0.7
VOLUME_WINDOW = 20
OHLCV_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
MAX_REASON = 200


# ------------------------------------------------------------------------------------------
# files: reading and resampling
# ------------------------------------------------------------------------------------------


def load_ohlcv(path: str | Path) -> pd.DataFrame:
    """Read one OHLCV file (CSV or Parquet by suffix) with UTC timestamps.

    A Parquet file may keep the timestamp as its index; it is turned into the column.

    Raises:
        ConfigError: The file is missing or lacks one of the six columns.
    """
    frame = read_table(Path(path))
    if "timestamp" not in frame.columns and isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.rename_axis("timestamp").reset_index()
    if sorted(frame.columns) != sorted(OHLCV_COLUMNS):
        raise ConfigError(
            f"data file {path}: columns must be {OHLCV_COLUMNS}, got {list(frame.columns)}"
        )
    frame = frame[OHLCV_COLUMNS].copy()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def infer_timeframe_seconds(frame: pd.DataFrame) -> int:
    """The file's bar length: the most common spacing of consecutive timestamps, in seconds.

    The mode, not the minimum, so one duplicated row does not make a 5-minute file look like a
    zero-second one, and not the mean, so gaps do not stretch it.
    """
    if len(frame) < 2:
        raise ConfigError("data file: at least two rows are needed to know its timeframe")
    spacing = frame["timestamp"].diff().dropna().dt.total_seconds()
    spacing = spacing[spacing > 0]
    if spacing.empty:
        raise ConfigError("data file: timestamps never advance")
    return int(spacing.mode().iloc[0])


def _bad_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows no bar may be built from: non-finite values, non-positive prices, a broken envelope."""
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float)
    prices = values[:, :4]
    return (
        ~np.isfinite(values).all(axis=1)
        | (prices <= 0).any(axis=1)
        | (values[:, 4] < 0)
        | (frame["high"].to_numpy(float) < frame[["open", "close"]].max(axis=1).to_numpy(float))
        | (frame["low"].to_numpy(float) > frame[["open", "close"]].min(axis=1).to_numpy(float))
    )


def resample_ohlcv(
    frame: pd.DataFrame, source_seconds: int, target_seconds: int
) -> tuple[pd.DataFrame, dict[datetime, str]]:
    """Aggregate bars into coarser, epoch-aligned buckets labelled by their open time.

    open = first, high = max, low = min, close = last, volume = sum. Only complete buckets are
    kept: a bucket missing source bars, or holding a bar that could not pass validation, is
    dropped and its reason returned, because ``max`` and ``sum`` would otherwise quietly build a
    plausible bar around the hole.

    Args:
        frame: Bars with the six OHLCV columns, timestamps strictly increasing.
        source_seconds: The file's bar length.
        target_seconds: The wanted bar length, a whole multiple of ``source_seconds``.

    Returns:
        The resampled bars and ``{bucket open time: reason}`` for every dropped bucket.

    Raises:
        ConfigError: The target is finer than the source or not a multiple of it, or the
            timestamps do not increase strictly.
    """
    if target_seconds == source_seconds:
        return frame, {}
    if target_seconds < source_seconds or target_seconds % source_seconds:
        raise ConfigError(
            f"data.timeframe: {target_seconds} s bars cannot be built from {source_seconds} s "
            "bars (only a whole multiple of the file's timeframe)"
        )
    if not frame["timestamp"].is_monotonic_increasing or frame["timestamp"].duplicated().any():
        raise ConfigError("data file: timestamps must increase strictly to be resampled")
    expected = target_seconds // source_seconds
    bucket = frame["timestamp"].dt.floor(pd.Timedelta(seconds=target_seconds))
    grouped = frame.assign(bucket=bucket.to_numpy(), bad=_bad_rows(frame)).groupby("bucket")
    bars = grouped.agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"), rows=("open", "size"), bad=("bad", "any"),
    )
    label = f"{target_seconds // 60}m" if target_seconds < 3600 else f"{target_seconds // 3600}h"
    dropped: dict[datetime, str] = {}
    for stamp, row in bars[(bars["rows"] != expected) | bars["bad"]].iterrows():
        dropped[stamp.to_pydatetime()] = (
            f"{label} bucket holds an invalid source bar"
            if row["bad"]
            else f"incomplete {label} bucket: {row['rows']}/{expected} source bars"
        )
    kept = bars[(bars["rows"] == expected) & ~bars["bad"]]
    out = kept[["open", "high", "low", "close", "volume"]].rename_axis("timestamp").reset_index()
    return out, dropped


# ------------------------------------------------------------------------------------------
# book, tape and their features
# ------------------------------------------------------------------------------------------


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


def _imbalance(plus: float, minus: float) -> float:
    total = plus + minus
    return 0.0 if total <= 0 else (plus - minus) / total


def book_features(book: OrderBook, levels: int = BOOK_LEVELS) -> dict[str, float]:
    """Spread, depth imbalance and microprice offset of a two-sided book.

    * ``spread_bps``: ``(ask - bid) / mid`` in basis points, the cost of crossing once;
    * ``depth_imbalance``: ``(bid depth - ask depth) / (bid depth + ask depth)`` over the top
      ``levels``, in [-1, 1]; resting demand above supply reads positive;
    * ``microprice_bps``: the size-weighted mid ``(ask * bid_qty + bid * ask_qty) / (bid_qty +
      ask_qty)`` of the top level against the plain mid, in bps; it leans toward the thinner
      side, where the next trade is likelier to move the price.

    Returns:
        The three features, or an empty dict for a one-sided or crossed book (no mid exists).
    """
    if not book.bids or not book.asks:
        return {}
    bid, ask = book.bids[0], book.asks[0]
    if ask.price <= bid.price:
        return {}
    mid = (bid.price + ask.price) / 2
    top = bid.quantity + ask.quantity
    micro = (ask.price * bid.quantity + bid.price * ask.quantity) / top if top > 0 else mid
    bid_depth = sum(level.quantity for level in book.bids[:levels])
    ask_depth = sum(level.quantity for level in book.asks[:levels])
    return {
        "spread_bps": (ask.price - bid.price) / mid * 1e4,
        "depth_imbalance": _imbalance(bid_depth, ask_depth),
        "microprice_bps": (micro - mid) / mid * 1e4,
    }


def tape_features(tape: TradeTape) -> dict[str, float]:
    """Aggressor flow of one bar: ``aggressor_imbalance`` in [-1, 1], ``buy_share``, count."""
    total = tape.buy_volume + tape.sell_volume
    return {
        "aggressor_imbalance": _imbalance(tape.buy_volume, tape.sell_volume),
        "buy_share": tape.buy_volume / total if total > 0 else 0.5,
        "trade_count": float(tape.trade_count),
    }


# ------------------------------------------------------------------------------------------
# sources
# ------------------------------------------------------------------------------------------


@dataclass
class FeedPoll:
    """What one poll of a bar source saw; the agent adds signals and sentiment."""

    timestamp: datetime | None
    bars: dict[str, Bar]
    books: dict[str, OrderBook] = field(default_factory=dict)
    tapes: dict[str, TradeTape] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    degraded: dict[str, str] = field(default_factory=dict)
    exhausted: bool = False


class ReplayFeed:
    """Plain replay logic: per-symbol cursors over rows, walked by a shared clock.

    Args:
        frames: Symbol -> bars (the six OHLCV columns), in file order.
        dropped: Symbol -> {timestamp: reason} of bars the loader refused (resampling), so a gap
            there is reported with its cause.
    """

    def __init__(
        self,
        frames: Mapping[str, pd.DataFrame],
        dropped: Mapping[str, Mapping[datetime, str]] | None = None,
    ) -> None:
        self.symbols = list(frames)
        self.dropped = {s: dict((dropped or {}).get(s, {})) for s in self.symbols}
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

    @classmethod
    def from_config(cls, config: FluxtradeConfig) -> ReplayFeed:
        """Load every symbol's file, resampled to ``data.timeframe`` where the file is finer."""
        data = config.data
        frames, dropped = {}, {}
        for symbol in config.symbols:
            path = data.path_of(symbol)
            frame = load_ohlcv(path)
            try:
                source = infer_timeframe_seconds(frame)
                frames[symbol], dropped[symbol] = resample_ohlcv(
                    frame, source, data.timeframe_seconds
                )
            except ConfigError as error:
                raise ConfigError(f"data.files.{symbol} ({path}): {error}") from error
        return cls(frames, dropped)

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
            elif now in self.dropped[symbol]:
                missing[symbol] = self.dropped[symbol][now]
            elif cursor >= len(rows):
                missing[symbol] = "source has no more rows"
            else:
                missing[symbol] = f"no bar at {now.isoformat()}"
        return now, bars, missing

    def poll(self) -> FeedPoll:
        """The next step of the replay, with synthetic book and tape for every sound bar."""
        now, bars, missing = self.next_bars()
        usable = {s: b for s, b in bars.items() if _finite_positive(b)}
        return FeedPoll(
            timestamp=now,
            bars=bars,
            books={s: synthetic_book(b) for s, b in usable.items()},
            tapes={s: synthetic_tape(b) for s, b in usable.items()},
            missing=missing,
            exhausted=self.exhausted,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"clock_index": self.clock_index, "cursors": dict(self.cursors)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.clock_index = state["clock_index"]
        self.cursors.update(state["cursors"])


def build_ccxt_exchange(live: LiveFeedConfig) -> ccxt.Exchange:
    """A synchronous ccxt client for market data, pointed at ``base_url`` when one is set.

    Every API section is redirected to the override and non-URL sections are dropped, so no
    request can leave for the real venue by a path nobody thought of.
    """
    exchange_class = getattr(ccxt, live.exchange_id, None)
    if not isinstance(exchange_class, type):
        raise ConfigError(f"data.live.exchange_id: ccxt has no exchange {live.exchange_id!r}")
    exchange: ccxt.Exchange = exchange_class(
        {
            "enableRateLimit": True,
            "timeout": live.timeout_ms,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    if live.base_url is not None:
        base = live.base_url.rstrip("/")
        exchange.urls["api"] = {
            section: re.sub(r"^https?://[^/]+", base, url)
            for section, url in exchange.urls["api"].items()
            if isinstance(url, str)
        }
    return exchange


def _note(notes: dict[str, str], symbol: str, note: str) -> None:
    """Append a data-quality note to a symbol's, so one symbol can carry several."""
    notes[symbol] = f"{notes[symbol]}; {note}" if symbol in notes else note


def _reason(prefix: str, error: Exception) -> str:
    return f"{prefix}: {type(error).__name__}: {error}"[:MAX_REASON]


def _utc(milliseconds: int | float) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


class CcxtFeed:
    """Live candles, books and trades from any synchronous ccxt exchange object.

    Each poll takes, per symbol, the newest *closed* candle (open time + timeframe at or before
    the exchange's clock). A candle already emitted is not emitted again: the symbol is reported
    missing ("no new bar"), so a stalled venue shows up instead of repeating a stale price. With
    ``late_after_s`` set, a candle that closed longer ago than that is reported late. The frame's
    timestamp is the newest candle of the poll, so validation's staleness check rejects a symbol
    lagging behind the others.

    Args:
        exchange: A ccxt exchange (sync API); ``fetch_ohlcv`` is required, ``fetch_order_book``
            and ``fetch_trades`` are used when they answer.
        symbols: ccxt unified symbols, e.g. ``"ETH/BTC"``.
        timeframe: Candle timeframe, e.g. ``"5m"``.
        book_depth: Levels of book to fetch.
        trades_limit: Most recent trades to fetch per candle; a tape that hits it is flagged.
        late_after_s: Report a candle that closed longer ago than this as late; None never.
    """

    exhausted = False

    def __init__(
        self,
        exchange: ccxt.Exchange,
        symbols: Sequence[str],
        timeframe: str,
        *,
        book_depth: int = 10,
        trades_limit: int = 200,
        late_after_s: float | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.timeframe_ms = TIMEFRAME_SECONDS[timeframe] * 1000
        self.book_depth = book_depth
        self.trades_limit = trades_limit
        self.late_after_s = late_after_s
        self.last_emitted: dict[str, int] = {}

    @classmethod
    def from_config(cls, config: FluxtradeConfig) -> CcxtFeed:
        live = config.data.live
        if live is None:
            raise ConfigError("data.live: a ccxt feed needs its live settings")
        return cls(
            build_ccxt_exchange(live), config.symbols, config.data.timeframe,
            book_depth=live.book_depth, trades_limit=live.trades_limit,
            late_after_s=live.late_after_s,
        )

    def poll(self) -> FeedPoll:
        """One request round per symbol: candle, then book and trades for a new candle."""
        now_ms = self.exchange.milliseconds()
        out = FeedPoll(timestamp=None, bars={})
        for symbol in self.symbols:
            bar = self._bar(symbol, now_ms, out)
            if bar is None:
                continue
            out.bars[symbol] = bar
            self._book(symbol, out)
            self._tape(symbol, bar, out)
        if out.bars:
            out.timestamp = max(b.timestamp for b in out.bars.values())
        return out

    def _bar(self, symbol: str, now_ms: int, out: FeedPoll) -> Bar | None:
        try:
            rows = self.exchange.fetch_ohlcv(symbol, self.timeframe, limit=3)
        except ccxt.BaseError as error:
            out.missing[symbol] = _reason("candles unavailable", error)
            return None
        closed = [r for r in rows or [] if r[0] + self.timeframe_ms <= now_ms]
        if not closed:
            out.missing[symbol] = "no closed candle yet"
            return None
        stamp, o, h, lo, c, v = closed[-1][:6]
        previous = self.last_emitted.get(symbol)
        if previous is not None and stamp <= previous:
            out.missing[symbol] = f"no new bar since {_utc(previous).isoformat()}"
            return None
        lag_s = (now_ms - stamp - self.timeframe_ms) / 1000
        if self.late_after_s is not None and lag_s > self.late_after_s:
            out.missing[symbol] = (
                f"late: newest closed bar {_utc(stamp).isoformat()} closed {lag_s:.0f} s ago"
            )
            return None
        self.last_emitted[symbol] = int(stamp)
        values = [math.nan if x is None else float(x) for x in (o, h, lo, c, v)]
        return Bar(symbol=symbol, timestamp=_utc(stamp), open=values[0], high=values[1],
                   low=values[2], close=values[3], volume=values[4])

    def _book(self, symbol: str, out: FeedPoll) -> None:
        try:
            raw = self.exchange.fetch_order_book(symbol, limit=self.book_depth)
            stamp = raw.get("timestamp") or self.exchange.milliseconds()
            out.books[symbol] = OrderBook(
                symbol=symbol,
                timestamp=_utc(stamp),
                bids=tuple(BookLevel(price=p, quantity=q) for p, q, *_ in raw["bids"]),
                asks=tuple(BookLevel(price=p, quantity=q) for p, q, *_ in raw["asks"]),
                synthetic=False,
            )
        except (ccxt.BaseError, ValueError, KeyError) as error:
            out.degraded[symbol] = _reason("order book unavailable", error)

    def _tape(self, symbol: str, bar: Bar, out: FeedPoll) -> None:
        start = int(bar.timestamp.timestamp() * 1000)
        try:
            trades = self.exchange.fetch_trades(symbol, since=start, limit=self.trades_limit)
        except ccxt.BaseError as error:
            _note(out.degraded, symbol, _reason("trades unavailable", error))
            return
        inside = [t for t in trades if start <= t["timestamp"] < start + self.timeframe_ms]
        buys = sum(float(t["amount"]) for t in inside if t.get("side") == "buy")
        sells = sum(float(t["amount"]) for t in inside if t.get("side") == "sell")
        out.tapes[symbol] = TradeTape(
            symbol=symbol, timestamp=bar.timestamp, buy_volume=buys, sell_volume=sells,
            trade_count=len(inside), synthetic=False,
        )
        if len(trades) >= self.trades_limit:
            limit = self.trades_limit
            _note(out.degraded, symbol, f"tape may be incomplete: {limit}-trade limit hit")

    def state_dict(self) -> dict[str, Any]:
        return {"last_emitted": dict(self.last_emitted)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_emitted = {s: int(v) for s, v in state["last_emitted"].items()}


# ------------------------------------------------------------------------------------------
# the agent
# ------------------------------------------------------------------------------------------


class FeedsAgent(Agent):
    """Polls the configured bar source and derives the per-symbol signals of the cycle."""

    role = "feeds"

    def setup(self) -> None:
        data = self.config.data
        self.feed: ReplayFeed | CcxtFeed = (
            ReplayFeed.from_config(self.config) if data.source == "replay"
            else CcxtFeed.from_config(self.config)
        )
        self.sentiment: SentimentSource | None = (
            load_sentiment_source(data.sentiment, self.config.symbols) if data.sentiment else None
        )
        self.last_close: dict[str, float] = {}
        self.volumes: dict[str, deque[float]] = {
            s: deque(maxlen=VOLUME_WINDOW) for s in self.config.symbols
        }

    def step(self, cycle: int) -> MarketFrame:
        poll = self.feed.poll()
        signals = {s: self._signals(bar) for s, bar in poll.bars.items()}
        degraded = dict(poll.degraded)
        for symbol, book in poll.books.items():
            features = book_features(book)
            if not features:
                _note(degraded, symbol, "order book one-sided or crossed")
            signals[symbol].update(features)
        for symbol, tape in poll.tapes.items():
            signals[symbol].update(tape_features(tape))
        if self.sentiment is not None and poll.timestamp is not None:
            for symbol in poll.bars:
                note = self._sentiment(symbol, poll.timestamp, signals[symbol])
                if note:
                    _note(degraded, symbol, note)
        return MarketFrame(
            cycle=cycle,
            timestamp=poll.timestamp,
            bars=poll.bars,
            books=poll.books,
            tapes=poll.tapes,
            signals=signals,
            missing=poll.missing,
            degraded=degraded,
            exhausted=poll.exhausted,
        )

    def _sentiment(self, symbol: str, now: datetime, signals: dict[str, float]) -> str:
        """Add a fresh sentiment score to ``signals``; return why not when there is none."""
        assert self.sentiment is not None and self.config.data.sentiment is not None
        reading = self.sentiment.latest(symbol, now)
        if reading is None:
            return "no sentiment score published yet"
        age = (now - reading.published).total_seconds() / self.config.data.timeframe_seconds
        if age > self.config.data.sentiment.max_age_bars:
            return f"sentiment stale: last score {reading.published.isoformat()}"
        signals["sentiment"] = reading.score
        signals["sentiment_age_bars"] = age
        return ""

    def _signals(self, bar: Bar) -> dict[str, float]:
        previous = self.last_close.get(bar.symbol)
        history = self.volumes[bar.symbol]
        mean_volume = float(np.mean(history)) if history else math.nan
        signals = {
            "log_return": math.log(bar.close / previous)
            if previous and bar.close > 0 and previous > 0
            else math.nan,
            "range_fraction": (bar.high - bar.low) / bar.close if bar.close > 0 else math.nan,
            "volume_ratio": bar.volume / mean_volume if mean_volume > 0 else math.nan,
        }
        if _finite_positive(bar):
            self.last_close[bar.symbol] = bar.close
            history.append(bar.volume)
        return signals

    def extra_metrics(self) -> dict[str, float]:
        if isinstance(self.feed, ReplayFeed):
            return {
                "clock_index": float(self.feed.clock_index),
                "clock_length": float(len(self.feed.clock)),
            }
        return {"symbols_emitted": float(len(self.feed.last_emitted))}

    def state_dict(self) -> dict[str, Any]:
        return {
            "feed": self.feed.state_dict(),
            "last_close": dict(self.last_close),
            "volumes": {s: list(v) for s, v in self.volumes.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.feed.load_state_dict(state["feed"])
        self.last_close = dict(state["last_close"])
        for symbol, values in state["volumes"].items():
            self.volumes[symbol] = deque(values, maxlen=VOLUME_WINDOW)


def _finite_positive(bar: Bar) -> bool:
    values = (bar.open, bar.high, bar.low, bar.close)
    return all(math.isfinite(v) and v > 0 for v in values) and bar.high >= bar.low
