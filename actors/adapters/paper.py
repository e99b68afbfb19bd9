"""Simulated paper broker: fills orders against the *next* bar, never the one they were decided on.

An order submitted after bar t has been seen fills on bar t+1: a market order at t+1's open moved
against the taker by ``slippage_bps``; a limit order when t+1 trades through its price, at the better
of the open and the limit, as a maker. Each bar lends an order book of ``max_participation * volume``
per symbol; an order larger than that fills partially and waits for the next bar. Fees are a rate of
traded notional in the quote currency. Latency is sampled per call from config and, with
``realtime_latency``, really waited (for throughput tests); otherwise only recorded.

Submitting a client order id twice returns the first order unchanged: a retry never doubles.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

from actors.adapters.broker import Broker
from cycle.config import BrokerConfig
from cycle.errors import InvalidOrderError
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


class PaperBroker(Broker):
    """One pool member's simulated venue; deterministic for a given seed."""

    def __init__(self, config: BrokerConfig, member: int = 0, seed: int = 0) -> None:
        self.name = config.name
        self.config = config
        self.member = member
        self.rng = random.Random(f"{seed}:{config.name}:{member}")
        self.orders: dict[str, Order] = {}
        self.open: dict[str, datetime | None] = {}
        self.last_bar: dict[str, datetime] = {}

    def _latency(self) -> float:
        jitter = self.config.latency_jitter_ms
        return max(0.0, self.config.latency_ms + self.rng.uniform(-jitter, jitter))

    async def _wait(self) -> float:
        latency = self._latency()
        if self.config.realtime_latency and latency > 0:
            await asyncio.sleep(latency / 1000.0)
        return latency

    async def submit(self, request: OrderRequest) -> BrokerReport:
        await self._wait()
        known = self.orders.get(request.client_order_id)
        if known is not None:
            return BrokerReport(orders=(known,))
        order = Order(request=request, broker=self.name, updated_at=utc_now())
        if self.rng.random() < self.config.reject_rate:
            order = order.transition(OrderStatus.REJECTED, reason=SIMULATED_REJECTION)
        else:
            order = order.transition(
                OrderStatus.ACCEPTED, broker_order_id=f"{self.name}-{self.member}-{len(self.orders)}"
            )
            self.open[request.client_order_id] = self.last_bar.get(request.symbol)
        self.orders[request.client_order_id] = order
        return BrokerReport(orders=(order,))

    async def sync(self, bars: dict[str, Bar]) -> BrokerReport:
        latency = await self._wait()
        changed: list[Order] = []
        fills: list[Fill] = []
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
            changed.append(order)
            fills.append(fill)
        for symbol, bar in bars.items():
            self.last_bar[symbol] = bar.timestamp
        return BrokerReport(orders=tuple(changed), fills=tuple(fills))

    def _fill(self, order: Order, bar: Bar, capacity: dict[str, float], latency: float) -> Fill | None:
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
        await self._wait()
        return self.orders.get(client_order_id)

    async def cancel(self, client_order_id: str, symbol: str) -> BrokerReport:
        await self._wait()
        order = self.orders.get(client_order_id)
        if order is None:
            raise InvalidOrderError(f"{self.name}: unknown order {client_order_id}")
        if order.status.terminal:
            return BrokerReport(orders=(order,))
        order = order.transition(OrderStatus.CANCELLED, reason="cancelled by the desk")
        self.orders[client_order_id] = order
        self.open.pop(client_order_id, None)
        return BrokerReport(orders=(order,))

    async def open_orders(self) -> list[Order]:
        return [self.orders[cid] for cid in self.open]

    async def balances(self) -> dict[str, float]:
        """A paper venue holds no custody: the desk's portfolio is the account of record."""
        return {}

    async def ping(self) -> float:
        return await self._wait()
