"""Simulated paper broker: fills orders against the *next* bar, never the one they were decided on.

An order submitted after bar t has been seen fills on bar t+1: a market order at t+1's open moved
against the taker by ``slippage_bps``; a limit order when t+1 trades through its price, at the
better of the open and the limit, as a maker. Each bar lends an order book of
``max_participation * volume`` per symbol; an order larger than that fills partially and waits for
the next bar. Fees are a rate of traded notional in the quote currency. Latency is sampled per
call from config and, with ``realtime_latency``, really waited (for throughput tests); otherwise
it is only reported.

Submitting a client order id twice returns the first order unchanged: a retry never doubles.

The venue can misbehave as configured in ``failures`` (:class:`cycle.config.BrokerFailures`), on
its own clock of bars seen and seconds since it started: rate limits, downtime windows, slow
answers, timeouts (some hiding a write that happened), refusals (insufficient balance, invalid
order, a KYC-restricted symbol) and an API version change that alters the shape of order answers.
Events are never lost to a failed answer: fills and order changes wait in the venue until a sync
answer carrying them is delivered, so a timeout or an unreadable answer only delays them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from actors.adapters.broker import Broker, report_latency
from actors.adapters.learning.api_monitor import APIMonitor, ResponseShape, ShapeDiff
from actors.adapters.limiter import Limiter
from cycle.config import BrokerConfig
from cycle.errors import (
    APIChangedError,
    BrokerTimeoutError,
    BrokerUnavailableError,
    InsufficientFundsError,
    InvalidOrderError,
    RateLimitError,
    RestrictedSymbolError,
)
from cycle.messages import (
    Bar,
    BrokerReport,
    Fill,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    utc_now,
)

SIMULATED_REJECTION = "simulated rejection: venue risk check failed"
API_VERSION = "1"
MAX_CALL_LOG = 100_000

ORDER_FIELDS = frozenset(
    {
        "symbol",
        "orderId",
        "clientOrderId",
        "price",
        "origQty",
        "executedQty",
        "status",
        "type",
        "side",
    }
)
PAPER_ORDER_SHAPE = ResponseShape(
    kind="order",
    required=ORDER_FIELDS,
    known=ORDER_FIELDS,
    enums={"status": frozenset(s.value.upper() for s in OrderStatus)},
    version_field="apiVersion",
    versions=frozenset({API_VERSION}),
)


class PaperVenueState(BaseModel):
    """What the simulated venue holds, for tests and the training report (not a broker call).

    ``calls`` are the monotonic arrival times of every request the venue received.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    calls: tuple[float, ...]
    filled: dict[str, float]
    statuses: dict[str, str]


class PaperBroker(Broker):
    """One pool member's simulated venue; deterministic for a given seed.

    Args:
        config: The broker's settings and injected failures.
        member: Index of the pool member (seeds its randomness).
        seed: The run's seed.
        limiter: The pool's shared rate limiter, awaited before every request.
        clock: Monotonic seconds, for rate limits and windows in seconds.
    """

    def __init__(
        self,
        config: BrokerConfig,
        member: int = 0,
        seed: int = 0,
        *,
        limiter: Limiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = config.name
        self.config = config
        self.failures = config.failures
        self.member = member
        self.rng = random.Random(f"{seed}:{config.name}:{member}")
        self.chaos = random.Random(f"{seed}:{config.name}:{member}:failures")
        self.limiter = limiter
        self.clock = clock
        self.epoch = clock()
        self.monitor = APIMonitor({"order": PAPER_ORDER_SHAPE})
        self.orders: dict[str, Order] = {}
        self.open: dict[str, datetime | None] = {}
        self.last_bar: dict[str, datetime] = {}
        self.bars_seen = 0
        self.newest_bar: datetime | None = None
        self.admitted: deque[float] = deque()
        self.calls: deque[float] = deque(maxlen=MAX_CALL_LOG)
        self.pending_orders: dict[str, Order] = {}
        self.pending_fills: list[Fill] = []

    # ------------------------------------------------------------ the venue's behaviour

    def _latency(self) -> float:
        jitter = self.config.latency_jitter_ms
        latency = max(0.0, self.config.latency_ms + self.rng.uniform(-jitter, jitter))
        if self.failures.slow_rate and self.chaos.random() < self.failures.slow_rate:
            latency += self.failures.slow_ms
        return latency

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self.chaos.random() < rate

    async def _request(self, operation: str, *, read: bool = True) -> float:
        """One request reaching the venue: rate limit, outage, latency, and for reads a timeout.

        Returns the latency; raises what the venue (or the wire) would.
        """
        if self.limiter is not None:
            await self.limiter.acquire()
        now = self.clock()
        self.calls.append(now)
        seconds = now - self.epoch
        if any(window.active(self.bars_seen, seconds) for window in self.failures.downtime):
            raise BrokerUnavailableError(f"{self.name} {operation}: venue is down for maintenance")
        limit = self.failures.rate_limit
        if limit is not None:
            window = self.failures.rate_limit_window_s
            while self.admitted and self.admitted[0] <= now - window:
                self.admitted.popleft()
            if len(self.admitted) >= limit:
                raise RateLimitError(
                    f"{self.name} {operation}: too many requests; limit {limit} per {window:g}s"
                )
            self.admitted.append(now)
        latency = self._latency()
        if self.config.realtime_latency and latency > 0:
            await asyncio.sleep(latency / 1000.0)
        report_latency(latency)
        if read and self._roll(self.failures.timeout_rate):
            raise BrokerTimeoutError(f"{self.name} {operation}: no answer in time")
        return latency

    def _raw(self, order: Order) -> dict[str, Any]:
        """The order as the venue's API sends it, in the version active now."""
        raw: dict[str, Any] = {
            "symbol": order.request.symbol,
            "orderId": order.broker_order_id or "",
            "clientOrderId": order.client_order_id,
            "price": f"{order.average_price:.10f}",
            "origQty": f"{order.request.quantity:.10f}",
            "executedQty": f"{order.filled_quantity:.10f}",
            "status": order.status.value.upper(),
            "type": order.request.order_type.value.upper(),
            "side": order.request.side.value.upper(),
            "apiVersion": API_VERSION,
        }
        change = self.failures.api_change
        seconds = self.clock() - self.epoch
        if change is None or (change.window and not change.window.active(self.bars_seen, seconds)):
            return raw
        for old, new in change.renamed.items():
            if old in raw:
                raw[new] = raw.pop(old)
        for name in change.removed:
            raw.pop(name, None)
        if change.version is not None:
            raw["apiVersion"] = change.version
        return raw

    def _answer(self, report: BrokerReport) -> BrokerReport:
        """Deliver an answer only if every order in it can be read as the adapter expects."""
        for order in report.orders:
            diff = self.monitor.check(self.name, "order", self._raw(order))
            if diff.breaking:
                raise APIChangedError(f"{self.name}: {diff.describe()}")
        return report

    def _refuse(self, request: OrderRequest) -> None:
        """The venue's reasons to refuse a new order before placing it."""
        if request.symbol in self.failures.restricted_symbols:
            raise RestrictedSymbolError(
                f"{self.name} submit: {request.symbol} is restricted for this account"
            )
        if self._roll(self.failures.insufficient_balance_rate):
            raise InsufficientFundsError(
                f"{self.name} submit: insufficient balance for {request.client_order_id}"
            )
        if self._roll(self.failures.invalid_order_rate):
            raise InvalidOrderError(
                f"{self.name} submit: {request.client_order_id} fails the LOT_SIZE filter"
            )

    # ------------------------------------------------------------ Broker contract

    async def submit(self, request: OrderRequest) -> BrokerReport:
        await self._request("submit", read=False)
        known = self.orders.get(request.client_order_id)
        if known is not None:
            return self._answer(BrokerReport(orders=(known,)))
        self._refuse(request)
        timed_out = self._roll(self.failures.timeout_rate)
        if timed_out and not self._roll(self.failures.hidden_fill_rate):
            raise BrokerTimeoutError(f"{self.name} submit: no answer in time; the order was lost")
        order = Order(request=request, broker=self.name, updated_at=utc_now())
        if self.rng.random() < self.config.reject_rate:
            order = order.transition(OrderStatus.REJECTED, reason=SIMULATED_REJECTION)
        else:
            order = order.transition(
                OrderStatus.ACCEPTED,
                broker_order_id=f"{self.name}-{self.member}-{len(self.orders)}",
            )
            self.open[request.client_order_id] = self.last_bar.get(request.symbol)
        self.orders[request.client_order_id] = order
        if timed_out:
            raise BrokerTimeoutError(f"{self.name} submit: no answer in time; the order was placed")
        return self._answer(BrokerReport(orders=(order,)))

    async def sync(self, bars: dict[str, Bar]) -> BrokerReport:
        """Match open orders on the new bars; deliver every event not yet delivered.

        The venue's bar clock moves even when the request fails, so a downtime measured in bars
        ends on time for a desk that keeps asking.
        """
        newest = max((bar.timestamp for bar in bars.values()), default=None)
        if newest is not None and (self.newest_bar is None or newest > self.newest_bar):
            self.newest_bar = newest
            self.bars_seen += 1
        latency = await self._request("sync", read=False)
        self._match(bars, latency)
        if self._roll(self.failures.timeout_rate):
            raise BrokerTimeoutError(f"{self.name} sync: no answer in time")
        report = self._answer(
            BrokerReport(
                orders=tuple(self.pending_orders.values()), fills=tuple(self.pending_fills)
            )
        )
        self.pending_orders.clear()
        self.pending_fills.clear()
        return report

    def _match(self, bars: dict[str, Bar], latency: float) -> None:
        capacity = {s: self.config.max_participation * b.volume for s, b in bars.items()}
        for cid, seen_before in list(self.open.items()):
            order = self.orders[cid]
            bar = bars.get(order.request.symbol)
            if bar is None or (seen_before is not None and bar.timestamp <= seen_before):
                continue
            fill = self._fill(order, bar, capacity, latency)
            if fill is None:
                continue
            order = order.with_fill(fill)
            self.orders[cid] = order
            if order.status.terminal:
                del self.open[cid]
            self.pending_orders[cid] = order
            self.pending_fills.append(fill)
        for symbol, bar in bars.items():
            self.last_bar[symbol] = bar.timestamp

    def _fill(
        self, order: Order, bar: Bar, capacity: dict[str, float], latency: float
    ) -> Fill | None:
        request = order.request
        room = capacity[request.symbol]
        quantity = min(order.remaining, room)
        if quantity <= 0:
            return None
        if request.order_type is OrderType.MARKET:
            reference = bar.open
            price = reference * (1 + request.side.sign * self.config.slippage_bps / 1e4)
            liquidity, rate = "taker", self.config.taker_fee
        else:
            limit = request.limit_price
            assert limit is not None
            touched = bar.low <= limit if request.side is Side.BUY else bar.high >= limit
            if not touched:
                return None
            reference = limit
            price = min(bar.open, limit) if request.side is Side.BUY else max(bar.open, limit)
            liquidity, rate = "maker", self.config.maker_fee
        capacity[request.symbol] = room - quantity
        return Fill(
            fill_id=f"{request.client_order_id}:{bar.timestamp.isoformat()}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            quantity=quantity,
            price=price,
            fee=quantity * price * rate,
            broker=self.name,
            liquidity=liquidity,
            reference_price=reference,
            slippage_bps=request.side.sign * (price / reference - 1) * 1e4,
            latency_ms=latency,
            timestamp=bar.timestamp,
        )

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        await self._request("fetch_order")
        order = self.orders.get(client_order_id)
        return None if order is None else self._answer(BrokerReport(orders=(order,))).orders[0]

    async def cancel(self, client_order_id: str, symbol: str) -> BrokerReport:
        await self._request("cancel", read=False)
        order = self.orders.get(client_order_id)
        if order is None:
            raise InvalidOrderError(f"{self.name}: unknown order {client_order_id}")
        if order.status.terminal:
            return self._answer(BrokerReport(orders=(order,)))
        timed_out = self._roll(self.failures.timeout_rate)
        if timed_out and not self._roll(self.failures.hidden_fill_rate):
            raise BrokerTimeoutError(f"{self.name} cancel: no answer in time; not cancelled")
        order = order.transition(OrderStatus.CANCELLED, reason="cancelled by the desk")
        self.orders[client_order_id] = order
        self.open.pop(client_order_id, None)
        if client_order_id in self.pending_orders:
            self.pending_orders[client_order_id] = order
        if timed_out:
            raise BrokerTimeoutError(f"{self.name} cancel: no answer in time; cancelled")
        return self._answer(BrokerReport(orders=(order,)))

    async def open_orders(self) -> list[Order]:
        await self._request("open_orders")
        return list(
            self._answer(BrokerReport(orders=tuple(self.orders[c] for c in self.open))).orders
        )

    async def balances(self) -> dict[str, float]:
        """A paper venue holds no custody: the desk's portfolio is the account of record."""
        await self._request("balances")
        return {}

    async def ping(self) -> float:
        return await self._request("ping")

    def api_changes(self) -> list[ShapeDiff]:
        return self.monitor.changes(self.name)

    def venue_state(self) -> PaperVenueState:
        return PaperVenueState(
            calls=tuple(self.calls),
            filled={cid: o.filled_quantity for cid, o in self.orders.items()},
            statuses={cid: o.status.value for cid, o in self.orders.items()},
        )
