"""A mock Binance spot REST server, so the real ccxt client can be driven offline.

Broker adapters are only trustworthy if they are tested against the real vendor client, with real
HTTP, real HMAC signing and the exchange's own error payloads: a fake transport would test our idea
of ccxt, not ccxt. This module serves the ``/api/v3`` endpoints ccxt's ``binance`` class uses for
spot trading, replays a bundled OHLCV series as the market, prints a trade tape inside each bar,
fills market orders at the replayed price, rests limit orders until a bar crosses them, and moves
balances with fills and fees.

Everything that goes wrong with a real venue can be injected through a frozen :class:`MockFailures`
(rate limits, downtime, slowness, rejections, a changed response shape, and a write that succeeds on
the server while the client times out), so the adapter's error translation and the order-safety
rules (look up before re-sending) are exercised against the same payloads Binance sends.

The server binds ``127.0.0.1`` only. Run a demo with
``python -m actors.adapters.mock_exchange --port 8765``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import hmac
import json
import math
import random
import socket
import statistics
import sys
import threading
import time
import traceback
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import accumulate
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loguru import logger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    model_validator,
)

from cycle.messages import Bar

LOOPBACK = "127.0.0.1"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "data" / "freqtrade_ETH_BTC-5m.csv"
API_PREFIX = "/api/v3/"
RECV_WINDOW_MS = 5000
FUTURE_TOLERANCE_MS = 1000
BARS_PER_DAY = 288
MAX_RECORDED_REQUESTS = 10_000
# The trade tape: prints in a bar of the series' median volume; the fewest a bar prints (its open,
# high, low and close); the most, well inside one default 500-trade page; quantity resolution
# (Binance's 8 decimals); and Binance's widest startTime..endTime window.
TRADES_PER_TYPICAL_BAR = 24
MIN_TRADES_PER_BAR = 4
MAX_TRADES_PER_BAR = 120
QTY_UNITS = 100_000_000
MAX_TRADE_WINDOW_MS = 3_600_000

log = logger.bind(broker="mock-exchange")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DowntimeWindow(_Frozen):
    """A span, in seconds after the failures were set, during which every request fails.

    ``maintenance`` answers Binance's maintenance payload instead of a bare 503 page, because ccxt
    maps the two to different exceptions (OnMaintenance vs ExchangeNotAvailable).
    """

    start_s: NonNegativeFloat
    end_s: PositiveFloat
    maintenance: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> DowntimeWindow:
        if self.end_s <= self.start_s:
            raise ValueError("end_s: a downtime window must end after it starts")
        return self


class ApiChange(_Frozen):
    """A new API version's response shape, applied to the named endpoints' JSON objects.

    Venues rename and drop fields between versions; a client that reads the old names gets
    defaults (ccxt reads a missing ``executedQty`` as ``"0"``), which is worse than an error.
    """

    endpoints: frozenset[str] = frozenset({"order", "openOrders"})
    renamed: dict[str, str] = Field(default_factory=dict)
    removed: frozenset[str] = frozenset()
    status_aliases: dict[str, str] = Field(default_factory=dict)


class MockFailures(_Frozen):
    """Everything the mock can do wrong; the default does nothing wrong.

    Attributes:
        rate_limit: Requests admitted per ``rate_limit_window_s``; the rest get HTTP 429 (-1003).
            0 refuses every request.
        rate_limit_window_s: Length of the sliding rate-limit window.
        ban_after: After this many 429 answers in one window, answer 418 (an IP ban) instead;
            0 bans at once.
        downtime: Windows of 503 (or maintenance) answers, timed from when the failures were set.
        unavailable_next: The next N requests answer 503, then the venue recovers.
        latency_s: Delay added before every answer (a slow venue; past the client's timeout it is
            a client-side timeout).
        latency_paths: Endpoints (``"ticker/24hr"``, ``"order"``...) the latency applies to; empty
            means all.
        hidden_fill_delay_s: An order POST is executed at once but its answer is held this long:
            the client times out while the order rests or fills ("a timeout hides a fill").
        lose_order_posts: The next N order POSTs answer a gateway timeout without executing.
        reject_insufficient_balance: Every new order is refused for insufficient balance (-2010).
        reject_invalid_order: Every new order fails the LOT_SIZE filter (-1013).
        restricted_symbols: Exchange symbol ids (``"ETHBTC"``) the account may not trade (KYC).
        api_change: A changed response shape, or ``None``.
        clock_skew_ms: The server clock runs this far ahead (+) or behind (-) the wall clock.
    """

    rate_limit: NonNegativeInt | None = None
    rate_limit_window_s: PositiveFloat = 1.0
    ban_after: NonNegativeInt | None = None
    downtime: tuple[DowntimeWindow, ...] = ()
    unavailable_next: NonNegativeInt = 0
    latency_s: NonNegativeFloat = 0.0
    latency_paths: frozenset[str] = frozenset()
    hidden_fill_delay_s: NonNegativeFloat = 0.0
    lose_order_posts: NonNegativeInt = 0
    reject_insufficient_balance: bool = False
    reject_invalid_order: bool = False
    restricted_symbols: frozenset[str] = frozenset()
    api_change: ApiChange | None = None
    clock_skew_ms: int = 0


class MockMarket(_Frozen):
    """One spot market of the mock: its rules and the bars it replays."""

    symbol: str = Field(pattern=r"^[A-Z0-9]+$")
    base: str
    quote: str
    bars: tuple[Bar, ...] = Field(min_length=2)
    interval: str = "5m"
    tick_size: PositiveFloat = 1e-6
    step_size: PositiveFloat = 1e-3
    min_qty: PositiveFloat = 1e-3
    min_notional: NonNegativeFloat = 1e-4


def load_ohlcv_csv(path: Path, symbol: str) -> tuple[Bar, ...]:
    """Read a ``timestamp,open,high,low,close,volume`` CSV (ISO-8601 UTC times) into bars."""
    with path.open(newline="") as handle:
        return tuple(
            Bar(
                symbol=symbol,
                timestamp=datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")),
                open=float(row["open"]),
                high=float(row["high"]),
                low=float(row["low"]),
                close=float(row["close"]),
                volume=float(row["volume"]),
            )
            for row in csv.DictReader(handle)
        )


def eth_btc_market(path: Path = DEFAULT_DATA) -> MockMarket:
    """The bundled ETH/BTC 5-minute series as a mock market (the default for tests and the demo)."""
    return MockMarket(symbol="ETHBTC", base="ETH", quote="BTC", bars=load_ohlcv_csv(path, "ETHBTC"))


@dataclass
class _Reply:
    status: int
    body: str
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class BinanceError(Exception):
    """A Binance error payload to answer with; raised inside the engine, never outside it."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


@dataclass
class _MockOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    price: float
    orig_qty: float
    time_ms: int
    update_ms: int
    executed_qty: float = 0.0
    cum_quote: float = 0.0
    status: str = "NEW"
    fills: list[dict[str, str]] = field(default_factory=list)
    locked: float = 0.0

    @property
    def remaining(self) -> float:
        return max(self.orig_qty - self.executed_qty, 0.0)

    @property
    def open(self) -> bool:
        return self.status in {"NEW", "PARTIALLY_FILLED"}


def _num(value: float) -> str:
    """Binance sends decimals as fixed-point strings."""
    return f"{value:.8f}"


def _floor_to_step(value: float, step: float) -> float:
    return math.floor(value / step + 1e-9) * step


def _on_grid(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-6


def _prints_trades(bar: Bar) -> bool:
    """Whether a tape can reproduce the bar: finite, ordered prices and volume for four prints."""
    values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    return (
        all(map(math.isfinite, values))
        and 0 < bar.low <= min(bar.open, bar.close)
        and max(bar.open, bar.close) <= bar.high
        and bar.volume * QTY_UNITS >= MIN_TRADES_PER_BAR
    )


def _trade_counts(bars: Sequence[Bar]) -> list[int]:
    """Aggregate trades per bar: busier bars print more, no bar that a tape cannot reproduce."""
    volumes = [bar.volume if _prints_trades(bar) else 0.0 for bar in bars]
    printing = [volume for volume in volumes if volume > 0]
    typical = statistics.median(printing) if printing else 1.0
    return [
        min(
            max(round(TRADES_PER_TYPICAL_BAR * volume / typical), MIN_TRADES_PER_BAR),
            MAX_TRADES_PER_BAR,
            round(volume * QTY_UNITS),
        )
        if volume > 0
        else 0
        for volume in volumes
    ]


@dataclass(frozen=True)
class _TapeIndex:
    """Where each bar's trades sit in a market's tape, so a query generates only the bars it needs.

    ``first_id[i]`` is bar ``i``'s first aggregate trade id and ``first_id[i + 1]`` the next bar's;
    the list has one entry past the last bar.
    """

    open_ms: list[int]
    first_id: list[int]

    @classmethod
    def of(cls, market: MockMarket) -> _TapeIndex:
        return cls(
            open_ms=[int(bar.timestamp.timestamp() * 1000) for bar in market.bars],
            first_id=list(accumulate(_trade_counts(market.bars), initial=1)),
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the mock saw it, for tests to assert what the client sent.

    Headers are not kept: they carry the API key, and nothing a test needs.
    """

    method: str
    path: str
    params: dict[str, str]


class MockBinanceEngine:
    """The exchange itself, without HTTP: state, matching, signing checks and failure injection.

    One lock guards all state, because ThreadingHTTPServer answers each request on its own thread;
    delays are returned to the caller and slept outside the lock, so a slow answer blocks no other.
    A bar's trades are drawn from ``seed``, the symbol and the bar alone, so every query and every
    run sees the same tape.
    """

    def __init__(
        self,
        markets: Sequence[MockMarket],
        balances: Mapping[str, float],
        *,
        api_key: str,
        api_secret: str,
        taker_fee: float = 0.001,
        maker_fee: float = 0.001,
        start_index: int | None = None,
        failures: MockFailures | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        seed: int = 0,
    ) -> None:
        self._markets = {market.symbol: market for market in markets}
        self._seed = seed
        self._tapes: dict[str, _TapeIndex] = {}
        self._free: dict[str, float] = {asset: float(v) for asset, v in balances.items()}
        self._locked: dict[str, float] = dict.fromkeys(self._free, 0.0)
        for market in markets:
            for asset in (market.base, market.quote):
                self._free.setdefault(asset, 0.0)
                self._locked.setdefault(asset, 0.0)
        self._api_key = api_key
        self._secret = api_secret.encode()
        self._taker_fee = taker_fee
        self._maker_fee = maker_fee
        shortest = min(len(market.bars) for market in markets)
        self._cursor = min(BARS_PER_DAY, shortest - 1) if start_index is None else start_index
        if not 0 <= self._cursor < shortest:
            raise ValueError(f"start_index: {self._cursor} is outside the replayed series")
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._lock = threading.Lock()
        self._orders: dict[int, _MockOrder] = {}
        self._by_client_id: dict[str, int] = {}
        self._next_order_id = 1
        self._admitted: deque[float] = deque()
        self._throttled = 0
        self.requests: deque[RecordedRequest] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self.set_failures(failures or MockFailures())

    # ---------------------------------------------------------------- test and demo controls

    def set_failures(self, failures: MockFailures) -> None:
        """Replace the injected failures; downtime windows and counters restart from now."""
        with self._lock:
            self._failures = failures
            self._epoch = self._clock()
            self._budget = Counter(
                unavailable=failures.unavailable_next, lose_order=failures.lose_order_posts
            )
            self._admitted.clear()
            self._throttled = 0

    def price(self, symbol: str) -> float:
        """The current replayed price of a market (the close of the bar under the cursor)."""
        with self._lock:
            return self._markets[symbol].bars[self._cursor].close

    def bar_trades(self, symbol: str, index: int | None = None) -> list[dict[str, Any]]:
        """A replayed bar's trades as ``aggTrades`` rows (the bar under the cursor by default)."""
        with self._lock:
            index = self._cursor if index is None else index
            if not 0 <= index <= self._cursor:
                raise ValueError(f"index: {index} is not a replayed bar (0..{self._cursor})")
            return self._bar_trades(self._markets[symbol], index)

    def advance(self, steps: int = 1) -> None:
        """Replay the next bars; resting limit orders fill where a bar crosses their price."""
        with self._lock:
            for _ in range(steps):
                if self._cursor + 1 >= min(len(m.bars) for m in self._markets.values()):
                    return
                self._cursor += 1
                for order in list(self._orders.values()):
                    if order.open and order.type == "LIMIT":
                        bar = self._markets[order.symbol].bars[self._cursor]
                        crossed = (
                            bar.low <= order.price
                            if order.side == "BUY"
                            else (bar.high >= order.price)
                        )
                        if crossed:
                            self._fill(order, order.remaining, order.price, maker=True)

    def fill_resting(self, client_order_id: str, quantity: float) -> None:
        """Fill part of a resting limit order at its limit price, for partial-fill tests."""
        with self._lock:
            order = self._orders[self._by_client_id[client_order_id]]
            if not order.open:
                raise ValueError(f"order {client_order_id} is {order.status}, not open")
            self._fill(order, min(quantity, order.remaining), order.price, maker=True)

    def balance(self, asset: str) -> tuple[float, float]:
        """(free, locked) of an asset."""
        with self._lock:
            return self._free.get(asset, 0.0), self._locked.get(asset, 0.0)

    def orders_by_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        """Every order the venue holds with this client id (a doubled order shows up as two)."""
        with self._lock:
            return [
                self._order_json(order, full=True)
                for order in self._orders.values()
                if order.client_order_id == client_order_id
            ]

    def server_time_ms(self) -> int:
        return self._wall_clock_ms() + self._failures.clock_skew_ms

    # ---------------------------------------------------------------- request handling

    def handle(
        self, method: str, path: str, query: str, body: str, api_key_header: str | None
    ) -> _Reply:
        """Answer one HTTP request; every outcome, errors included, is a Binance-shaped reply."""
        params = dict(parse_qsl(query + ("&" if query and body else "") + body))
        endpoint = path.removeprefix(API_PREFIX) if path.startswith(API_PREFIX) else None
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, {k: v for k, v in params.items() if k != "signature"})
            )
            failures = self._failures
            delay = (
                failures.latency_s
                if endpoint is not None
                and (not failures.latency_paths or endpoint in failures.latency_paths)
                else 0.0
            )
            try:
                reply = self._handle_locked(method, endpoint, query, body, params, api_key_header)
            except BinanceError as error:
                reply = _Reply(error.status, json.dumps({"code": error.code, "msg": error.msg}))
            except Exception:
                # A bug in the mock must show in the test log, and reach the client as what a
                # venue sends for its own bugs, not as a dropped connection. The stdlib traceback
                # carries no local values (a diagnosing logger would print the API key header).
                log.error(
                    "mock exchange failed on {} {}:\n{}", method, path, traceback.format_exc()
                )
                msg = "An unknown error occurred while processing the request."
                reply = _Reply(500, json.dumps({"code": -1000, "msg": msg}))
        reply.delay_s += delay
        return reply

    def _handle_locked(
        self,
        method: str,
        endpoint: str | None,
        query: str,
        body: str,
        params: dict[str, str],
        api_key_header: str | None,
    ) -> _Reply:
        outage = self._outage()
        if outage is not None:
            return outage
        throttled = self._throttle()
        if throttled is not None:
            return throttled
        route = _ROUTES.get((method, endpoint or ""))
        if route is None:
            return _Reply(404, "<html><body>404 Not Found</body></html>", "text/html")
        handler, signed = route
        if signed:
            self._check_signature(query, body, params, api_key_header)
        if (method, endpoint) == ("POST", "order") and self._budget["lose_order"] > 0:
            self._budget["lose_order"] -= 1
            return _Reply(504, "<html><body>504 Gateway Time-out</body></html>", "text/html")
        payload = handler(self, params)
        if (
            self._failures.api_change is not None
            and endpoint in self._failures.api_change.endpoints
        ):
            payload = _apply_api_change(payload, self._failures.api_change)
        reply = _Reply(200, json.dumps(payload))
        if (method, endpoint) == ("POST", "order"):
            reply.delay_s = self._failures.hidden_fill_delay_s
        return reply

    def _outage(self) -> _Reply | None:
        elapsed = self._clock() - self._epoch
        for window in self._failures.downtime:
            if window.start_s <= elapsed < window.end_s:
                if window.maintenance:
                    body = json.dumps({"code": -1000, "msg": "System is under maintenance."})
                    return _Reply(503, body)
                return _Reply(503, "<html><body>503 Service Unavailable</body></html>", "text/html")
        if self._budget["unavailable"] > 0:
            self._budget["unavailable"] -= 1
            return _Reply(503, "<html><body>503 Service Unavailable</body></html>", "text/html")
        return None

    def _throttle(self) -> _Reply | None:
        limit = self._failures.rate_limit
        if limit is None:
            return None
        now = self._clock()
        window = self._failures.rate_limit_window_s
        while self._admitted and self._admitted[0] <= now - window:
            self._admitted.popleft()
        if not self._admitted:
            self._throttled = 0
        if len(self._admitted) < limit:
            self._admitted.append(now)
            return None
        self._throttled += 1
        reopens = self._admitted[0] + window if self._admitted else now + window
        retry_after = str(max(1, math.ceil(reopens - now)))
        ban_after = self._failures.ban_after
        if ban_after is not None and self._throttled > ban_after:
            msg = "Way too much request weight used; IP banned until further notice."
            return _Reply(
                418, json.dumps({"code": -1003, "msg": msg}), headers={"Retry-After": retry_after}
            )
        msg = (
            f"Too much request weight used; current limit is {limit} request weight per "
            f"{window:g} SECOND. Please use WebSocket Streams for live updates."
        )
        return _Reply(
            429, json.dumps({"code": -1003, "msg": msg}), headers={"Retry-After": retry_after}
        )

    def _check_signature(
        self, query: str, body: str, params: dict[str, str], api_key_header: str | None
    ) -> None:
        if api_key_header != self._api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = query + body
        payload, _, tail = total.partition("&signature=")
        signature = tail.split("&", 1)[0]
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(signature, expected):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        try:
            timestamp = int(params["timestamp"])
        except (KeyError, ValueError):
            raise _missing_parameter("timestamp") from None
        now = self.server_time_ms()
        recv_window = int(params.get("recvWindow", RECV_WINDOW_MS))
        if timestamp > now + FUTURE_TOLERANCE_MS:
            raise BinanceError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - timestamp > recv_window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

    # ---------------------------------------------------------------- endpoints

    def _market(self, params: Mapping[str, str]) -> MockMarket:
        symbol = params.get("symbol")
        if symbol is None:
            raise _missing_parameter("symbol")
        market = self._markets.get(symbol)
        if market is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return market

    def _ping(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {}

    def _time(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {"serverTime": self.server_time_ms()}

    def _exchange_info(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(market) for market in self._markets.values()],
        }

    @staticmethod
    def _symbol_info(market: MockMarket) -> dict[str, Any]:
        return {
            "symbol": market.symbol,
            "status": "TRADING",
            "baseAsset": market.base,
            "baseAssetPrecision": 8,
            "quoteAsset": market.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _num(market.tick_size),
                    "maxPrice": "100000.00000000",
                    "tickSize": _num(market.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _num(market.min_qty),
                    "maxQty": "100000.00000000",
                    "stepSize": _num(market.step_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "100000.00000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": _num(market.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER"],
        }

    def _ticker(self, params: Mapping[str, str]) -> dict[str, Any] | list[dict[str, Any]]:
        if "symbol" not in params:
            return [self._ticker_json(market) for market in self._markets.values()]
        return self._ticker_json(self._market(params))

    def _ticker_json(self, market: MockMarket) -> dict[str, Any]:
        day = market.bars[max(0, self._cursor - BARS_PER_DAY + 1) : self._cursor + 1]
        last = day[-1].close
        first = day[0].open
        volume = sum(bar.volume for bar in day)
        quote_volume = sum(bar.volume * bar.close for bar in day)
        close_ms = int(day[-1].timestamp.timestamp() * 1000) + _interval_ms(market.interval) - 1
        return {
            "symbol": market.symbol,
            "priceChange": _num(last - first),
            "priceChangePercent": f"{(last - first) / first * 100:.3f}",
            "weightedAvgPrice": _num(quote_volume / volume if volume else last),
            "prevClosePrice": _num(day[-2].close if len(day) > 1 else first),
            "lastPrice": _num(last),
            "lastQty": "1.00000000",
            "bidPrice": _num(last - market.tick_size),
            "bidQty": "10.00000000",
            "askPrice": _num(last + market.tick_size),
            "askQty": "10.00000000",
            "openPrice": _num(first),
            "highPrice": _num(max(bar.high for bar in day)),
            "lowPrice": _num(min(bar.low for bar in day)),
            "volume": _num(volume),
            "quoteVolume": _num(quote_volume),
            "openTime": int(day[0].timestamp.timestamp() * 1000),
            "closeTime": close_ms,
            "firstId": 1,
            "lastId": len(day),
            "count": len(day),
        }

    def _depth(self, params: Mapping[str, str]) -> dict[str, Any]:
        market = self._market(params)
        levels = min(int(params.get("limit", 100)), 100)
        last = market.bars[self._cursor].close
        return {
            "lastUpdateId": self._cursor,
            "bids": [
                [_num(last - (i + 1) * market.tick_size), _num(10.0 * (i + 1))]
                for i in range(levels)
            ],
            "asks": [
                [_num(last + (i + 1) * market.tick_size), _num(10.0 * (i + 1))]
                for i in range(levels)
            ],
        }

    def _klines(self, params: Mapping[str, str]) -> list[list[Any]]:
        market = self._market(params)
        if params.get("interval") != market.interval:
            raise BinanceError(400, -1120, "Invalid interval.")
        limit = min(int(params.get("limit", 500)), 1000)
        start = int(params["startTime"]) if "startTime" in params else None
        end = int(params["endTime"]) if "endTime" in params else None
        step = _interval_ms(market.interval)
        rows: list[list[Any]] = []
        for bar in market.bars[: self._cursor + 1]:
            open_ms = int(bar.timestamp.timestamp() * 1000)
            if (start is not None and open_ms < start) or (end is not None and open_ms > end):
                continue
            rows.append(
                [
                    open_ms,
                    _num(bar.open),
                    _num(bar.high),
                    _num(bar.low),
                    _num(bar.close),
                    _num(bar.volume),
                    open_ms + step - 1,
                    _num(bar.volume * bar.close),
                    1,
                    _num(bar.volume / 2),
                    _num(bar.volume * bar.close / 2),
                    "0",
                ]
            )
        return rows[:limit] if start is not None else rows[-limit:]

    def _agg_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Binance's ``aggTrades`` over the replayed bars, oldest first.

        As on Binance: ``fromId`` pages forward from an id, and so does ``startTime`` alone; a
        time window holding more than ``limit`` trades answers its *last* ones (ccxt notes this),
        and so does a query with no bounds.
        """
        market = self._market(params)
        requested = _int_param(params, "limit")
        limit = 500 if requested is None else min(max(requested, 1), 1000)
        from_id, start, end = (_int_param(params, n) for n in ("fromId", "startTime", "endTime"))
        if from_id is not None and (start is not None or end is not None):
            raise BinanceError(400, -1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None and end - start > MAX_TRADE_WINDOW_MS:
            raise BinanceError(400, -1127, "More than 1 hours between startTime and endTime.")
        tape = self._tape(market)
        if from_id is not None:
            first_bar = bisect_right(tape.first_id, from_id) - 1
            return self._trades_from(market, first_bar, "a", from_id, limit)
        if start is not None and end is None:
            first_bar = bisect_right(tape.open_ms, start - _interval_ms(market.interval))
            return self._trades_from(market, first_bar, "T", start, limit)
        return self._trades_until(market, start, end, limit)

    def _trades_from(
        self, market: MockMarket, first_bar: int, key: str, minimum: int, limit: int
    ) -> list[dict[str, Any]]:
        """The first ``limit`` trades from ``first_bar`` on whose id (``"a"``) or time (``"T"``)
        is at least ``minimum``."""
        rows: list[dict[str, Any]] = []
        for index in range(max(first_bar, 0), self._cursor + 1):
            rows.extend(row for row in self._bar_trades(market, index) if row[key] >= minimum)
            if len(rows) >= limit:
                break
        return rows[:limit]

    def _trades_until(
        self, market: MockMarket, start: int | None, end: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """The last ``limit`` trades between ``start`` and ``end`` (inclusive, either open)."""
        tape = self._tape(market)
        step = _interval_ms(market.interval)
        earliest = -math.inf if start is None else start
        latest = math.inf if end is None else end
        last_bar = self._cursor if end is None else bisect_right(tape.open_ms, end) - 1
        rows: list[dict[str, Any]] = []
        for index in range(min(last_bar, self._cursor), -1, -1):
            if tape.open_ms[index] + step <= earliest:
                break
            bar_rows = self._bar_trades(market, index)
            rows[:0] = [row for row in bar_rows if earliest <= row["T"] <= latest]
            if len(rows) >= limit:
                break
        return rows[-limit:]

    def _tape(self, market: MockMarket) -> _TapeIndex:
        """The market's tape index, built on its first trade query (most engines never get one)."""
        if market.symbol not in self._tapes:
            self._tapes[market.symbol] = _TapeIndex.of(market)
        return self._tapes[market.symbol]

    def _bar_trades(self, market: MockMarket, index: int) -> list[dict[str, Any]]:
        """One bar's aggregate trades, which reproduce its candle exactly.

        The first print is the open and the last the close; the high and the low print once each
        in between, every other print lies in the range on the tick grid, and the quantities split
        the bar's volume to the last 1e-8. The aggressor follows the tick rule, as the book quotes
        one tick either side of the last price: an uptick is a buyer lifting the ask, a downtick a
        seller hitting the bid, and an unchanged print keeps the side.
        """
        tape = self._tape(market)
        first_id = tape.first_id[index]
        count = tape.first_id[index + 1] - first_id
        if count == 0:
            return []
        bar = market.bars[index]
        rng = random.Random(f"{self._seed}:{market.symbol}:{index}")
        offsets = sorted(rng.sample(range(_interval_ms(market.interval)), count))
        units = round(bar.volume * QTY_UNITS)
        cuts = [0, *sorted(rng.sample(range(1, units), count - 1)), units]
        tick = market.tick_size
        inner = [round(rng.uniform(bar.low, bar.high) / tick) * tick for _ in range(count - 2)]
        inner = [min(max(price, bar.low), bar.high) for price in inner]
        at_high, at_low = rng.sample(range(count - 2), 2)
        inner[at_high], inner[at_low] = bar.high, bar.low
        previous = market.bars[index - 1].close if index > 0 else bar.open
        buyer_is_maker = rng.random() < 0.5
        trades = []
        for k, price in enumerate([bar.open, *inner, bar.close]):
            if price != previous:
                buyer_is_maker = price < previous
            previous = price
            trades.append(
                {
                    "a": first_id + k,
                    "p": _num(price),
                    "q": _num((cuts[k + 1] - cuts[k]) / QTY_UNITS),
                    "f": first_id + k,
                    "l": first_id + k,
                    "T": tape.open_ms[index] + offsets[k],
                    "m": buyer_is_maker,
                    "M": True,
                }
            )
        return trades

    def _account(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {
            "makerCommission": round(self._maker_fee * 10_000),
            "takerCommission": round(self._taker_fee * 10_000),
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "updateTime": self.server_time_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": _num(free), "locked": _num(self._locked[asset])}
                for asset, free in sorted(self._free.items())
            ],
            "permissions": ["SPOT"],
        }

    def _validate_new_order(self, params: Mapping[str, str]) -> tuple[MockMarket, float, float]:
        """Check a new order as Binance would; returns (market, quantity, limit price or 0)."""
        market = self._market(params)
        failures = self._failures
        if market.symbol in failures.restricted_symbols:
            raise BinanceError(400, -2010, "This symbol is restricted for this account.")
        if failures.reject_insufficient_balance:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        if failures.reject_invalid_order:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        side, kind = params.get("side"), params.get("type")
        if side not in {"BUY", "SELL"} or kind not in {"MARKET", "LIMIT"}:
            raise BinanceError(400, -1116, "Invalid orderType.")
        current = market.bars[self._cursor].close
        price = 0.0
        if kind == "LIMIT":
            price = float(params.get("price", "0"))
            if price <= 0 or not _on_grid(price, market.tick_size):
                raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if "quantity" in params:
            quantity = float(params["quantity"])
        elif kind == "MARKET" and "quoteOrderQty" in params:
            quantity = _floor_to_step(float(params["quoteOrderQty"]) / current, market.step_size)
        else:
            raise _missing_parameter("quantity")
        if quantity < market.min_qty or not _on_grid(quantity, market.step_size):
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if quantity * (price or current) < market.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        existing = self._by_client_id.get(params.get("newClientOrderId", ""))
        if existing is not None and self._orders[existing].open:
            raise BinanceError(400, -2010, "Duplicate order sent.")
        return market, quantity, price

    def _new_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        market, quantity, price = self._validate_new_order(params)
        side, kind = params["side"], params["type"]
        current = market.bars[self._cursor].close
        fill_price = current if kind == "MARKET" else price
        fee_rate = max(self._taker_fee, self._maker_fee)
        if side == "BUY":
            need, asset = quantity * fill_price * (1 + fee_rate), market.quote
        else:
            need, asset = quantity, market.base
        if self._free.get(asset, 0.0) + 1e-12 < need:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        now = self.server_time_ms()
        order = _MockOrder(
            order_id=self._next_order_id,
            client_order_id=params.get("newClientOrderId") or f"mock-{self._next_order_id}",
            symbol=market.symbol,
            side=side,
            type=kind,
            price=price,
            orig_qty=quantity,
            time_ms=now,
            update_ms=now,
            locked=need,
        )
        self._next_order_id += 1
        self._orders[order.order_id] = order
        self._by_client_id[order.client_order_id] = order.order_id
        self._free[asset] -= need
        self._locked[asset] += need
        marketable = kind == "MARKET" or (price >= current if side == "BUY" else price <= current)
        if marketable:
            self._fill(order, quantity, current, maker=False)
        return self._order_json(order, full=False)

    def _test_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._validate_new_order(params)
        return {}

    def _fill(self, order: _MockOrder, quantity: float, price: float, *, maker: bool) -> None:
        """Execute part of an order: move balances, charge the fee in the quote asset."""
        market = self._markets[order.symbol]
        fee = quantity * price * (self._maker_fee if maker else self._taker_fee)
        share = order.locked * quantity / order.remaining
        if order.side == "BUY":
            self._locked[market.quote] -= share
            self._free[market.quote] += share - quantity * price - fee
            self._free[market.base] += quantity
        else:
            self._locked[market.base] -= share
            self._free[market.quote] += quantity * price - fee
        order.locked -= share
        order.executed_qty += quantity
        order.cum_quote += quantity * price
        order.update_ms = self.server_time_ms()
        order.fills.append(
            {
                "price": _num(price),
                "qty": _num(quantity),
                "commission": _num(fee),
                "commissionAsset": market.quote,
                "tradeId": str(len(order.fills) + 1),
            }
        )
        done = order.executed_qty >= order.orig_qty * (1 - 1e-12)
        order.status = "FILLED" if done else "PARTIALLY_FILLED"
        if done:
            self._release(order)

    def _release(self, order: _MockOrder) -> None:
        asset = (
            self._markets[order.symbol].quote
            if order.side == "BUY"
            else (self._markets[order.symbol].base)
        )
        self._locked[asset] -= order.locked
        self._free[asset] += order.locked
        order.locked = 0.0

    def _find(self, params: Mapping[str, str], missing: BinanceError) -> _MockOrder:
        market = self._market(params)
        if "orderId" in params:
            order = self._orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            order_id = self._by_client_id.get(params["origClientOrderId"])
            order = self._orders.get(order_id) if order_id is not None else None
        else:
            raise _missing_parameter("origClientOrderId' or 'orderId")
        if order is None or order.symbol != market.symbol:
            raise missing
        return order

    def _get_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._find(params, BinanceError(400, -2013, "Order does not exist."))
        return self._order_json(order, full=True)

    def _cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._find(params, BinanceError(400, -2011, "Unknown order sent."))
        if not order.open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        self._release(order)
        order.status = "CANCELED"
        order.update_ms = self.server_time_ms()
        reply = self._order_json(order, full=False)
        reply.pop("fills")
        reply["origClientOrderId"] = order.client_order_id
        return reply

    def _open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = self._market(params).symbol if "symbol" in params else None
        return [
            self._order_json(order, full=True)
            for order in self._orders.values()
            if order.open and (symbol is None or order.symbol == symbol)
        ]

    def _order_json(self, order: _MockOrder, *, full: bool) -> dict[str, Any]:
        """An order as Binance shows it: FULL ack for a POST, the order record for a GET."""
        body: dict[str, Any] = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "price": _num(order.price),
            "origQty": _num(order.orig_qty),
            "executedQty": _num(order.executed_qty),
            "cummulativeQuoteQty": _num(order.cum_quote),
            "status": order.status,
            "timeInForce": "GTC",
            "type": order.type,
            "side": order.side,
            "workingTime": order.time_ms,
            "selfTradePreventionMode": "NONE",
        }
        if full:
            body.update(
                stopPrice="0.00000000",
                icebergQty="0.00000000",
                time=order.time_ms,
                updateTime=order.update_ms,
                isWorking=True,
                origQuoteOrderQty="0.00000000",
            )
        else:
            body.update(transactTime=order.update_ms, fills=list(order.fills))
        return body


def _missing_parameter(name: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    if name not in params:
        return None
    try:
        return int(params[name])
    except ValueError:
        legal = "'^[0-9]{1,20}$'"
        raise BinanceError(
            400, -1100, f"Illegal characters found in parameter '{name}'; legal range is {legal}."
        ) from None


def _interval_ms(interval: str) -> int:
    units = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
    return int(interval[:-1]) * units[interval[-1]]


def _apply_api_change(payload: Any, change: ApiChange) -> Any:
    if isinstance(payload, list):
        return [_apply_api_change(item, change) for item in payload]
    if not isinstance(payload, dict):
        return payload
    changed: dict[str, Any] = {}
    for key, value in payload.items():
        if key in change.removed:
            continue
        if key == "status" and isinstance(value, str):
            value = change.status_aliases.get(value, value)
        changed[change.renamed.get(key, key)] = value
    return changed


_Handler = Callable[[MockBinanceEngine, Mapping[str, str]], Any]
_ROUTES: dict[tuple[str, str], tuple[_Handler, bool]] = {
    ("GET", "ping"): (MockBinanceEngine._ping, False),
    ("GET", "time"): (MockBinanceEngine._time, False),
    ("GET", "exchangeInfo"): (MockBinanceEngine._exchange_info, False),
    ("GET", "ticker/24hr"): (MockBinanceEngine._ticker, False),
    ("GET", "depth"): (MockBinanceEngine._depth, False),
    ("GET", "klines"): (MockBinanceEngine._klines, False),
    ("GET", "aggTrades"): (MockBinanceEngine._agg_trades, False),
    ("GET", "account"): (MockBinanceEngine._account, True),
    ("POST", "order"): (MockBinanceEngine._new_order, True),
    ("POST", "order/test"): (MockBinanceEngine._test_order, True),
    ("GET", "order"): (MockBinanceEngine._get_order, True),
    ("DELETE", "order"): (MockBinanceEngine._cancel_order, True),
    ("GET", "openOrders"): (MockBinanceEngine._open_orders, True),
}


class _RequestHandler(BaseHTTPRequestHandler):
    """Thin HTTP shell over the engine; keep-alive, no Nagle (else ~44 ms per call)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _MockHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - the stdlib names these handlers
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        reply = self.server.engine.handle(
            method, url.path, url.query, body, self.headers.get("X-MBX-APIKEY")
        )
        if reply.delay_s and self.server.stopping.wait(reply.delay_s):
            return
        encoded = reply.body.encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(encoded)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(encoded)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client left before the answer to {} {}", method, url.path)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("mock {}", format % args)


class _MockHTTPServer(ThreadingHTTPServer):
    """Tracks its connections: keep-alive handler threads outlive ``shutdown``, and a stopped
    exchange that still answers on old connections would be no outage at all."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, engine: MockBinanceEngine) -> None:
        super().__init__((LOOPBACK, port), _RequestHandler)
        self.engine = engine
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out, closed its session) is routine, not a traceback."""
        log.debug("connection from {} ended: {}", client_address, sys.exc_info()[0])

    def drop_connections(self) -> None:
        """Cut every open client connection, as a crashed venue would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class MockExchange:
    """The mock server on ``127.0.0.1`` in a background thread; a context manager.

    Example::

        with MockExchange([eth_btc_market()], {"BTC": 1.0}, api_key="k", api_secret="s") as mock:
            ...  # point a client at mock.url; mock.engine controls prices and failures
    """

    def __init__(
        self,
        markets: Sequence[MockMarket],
        balances: Mapping[str, float],
        *,
        api_key: str,
        api_secret: str,
        port: int = 0,
        **engine_options: Any,
    ) -> None:
        self.engine = MockBinanceEngine(
            markets, balances, api_key=api_key, api_secret=api_secret, **engine_options
        )
        self._port = port
        self._server: _MockHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the mock exchange is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to give a client (its ``/api/v3`` paths are appended by the client)."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> MockExchange:
        """Bind 127.0.0.1 and serve in a daemon thread.

        The first start takes the given port (a free one for 0); a restart after :meth:`stop`
        binds the same port again, so a stop/start pair is an outage the clients recover from.
        """
        self._server = _MockHTTPServer(self._port, self.engine)
        self._port = self.port
        self._thread = threading.Thread(
            # A short poll keeps stop() fast: shutdown() waits for the loop's next poll.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="mock-exchange",
            daemon=True,
        )
        self._thread.start()
        log.info("mock exchange serving on {}", self.url)
        return self

    def stop(self) -> None:
        """Stop serving; slow answers still sleeping are woken and dropped."""
        if self._server is None:
            return
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> MockExchange:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the bundled ETH/BTC replay on 127.0.0.1 until interrupted (a local demo)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--api-key", default="demo-key")
    parser.add_argument("--api-secret", default="demo-secret")
    parser.add_argument("--btc", type=float, default=1.0, help="starting BTC balance")
    parser.add_argument("--eth", type=float, default=10.0, help="starting ETH balance")
    parser.add_argument("--bar-seconds", type=float, default=5.0, help="replay one bar per N s")
    args = parser.parse_args(argv)
    market = eth_btc_market(args.data)
    mock = MockExchange(
        [market],
        {"BTC": args.btc, "ETH": args.eth},
        api_key=args.api_key,
        api_secret=args.api_secret,
        port=args.port,
    )
    with mock:
        log.info("ETH/BTC replay, one bar every {} s; Ctrl-C stops", args.bar_seconds)
        try:
            while True:
                time.sleep(args.bar_seconds)
                mock.engine.advance()
        except KeyboardInterrupt:
            log.info("stopping")


if __name__ == "__main__":
    main()
