from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from actors.adapters.paper import SIMULATED_REJECTION, PaperBroker
from cycle.config import BrokerConfig
from cycle.messages import Bar, OrderRequest, OrderStatus, OrderType, Side

T0 = datetime(2018, 1, 10, 5, 0, tzinfo=UTC)


def run(coro):
    return asyncio.run(coro)


def broker(**changes) -> PaperBroker:
    fields = dict(name="paper", taker_fee=0.001, maker_fee=0.0005, slippage_bps=10.0,
                  latency_ms=5.0, latency_jitter_ms=0.0, max_participation=0.5)
    fields.update(changes)
    return PaperBroker(BrokerConfig(**fields), member=0, seed=1)


def bar(minutes: int, **changes) -> Bar:
    fields = dict(symbol="ETH/BTC", timestamp=T0 + timedelta(minutes=minutes), open=0.1, high=0.11,
                  low=0.09, close=0.105, volume=100.0)
    fields.update(changes)
    return Bar(**fields)


def request(cid: str = "ft-000001", **changes) -> OrderRequest:
    fields = dict(client_order_id=cid, symbol="ETH/BTC", side=Side.BUY, order_type=OrderType.MARKET,
                  quantity=10.0, cycle=1, strategy="s", created_at=T0)
    fields.update(changes)
    return OrderRequest(**fields)


def test_market_order_fills_on_the_next_bar_open_with_slippage_and_fee() -> None:
    b = broker()
    run(b.sync({"ETH/BTC": bar(0)}))
    accepted = run(b.submit(request()))
    assert accepted.orders[0].status is OrderStatus.ACCEPTED
    same_bar = run(b.sync({"ETH/BTC": bar(0)}))
    assert same_bar.fills == ()
    report = run(b.sync({"ETH/BTC": bar(5, open=0.2)}))
    (fill,) = report.fills
    assert fill.price == pytest.approx(0.2 * 1.001)
    assert fill.fee == pytest.approx(10.0 * 0.2 * 1.001 * 0.001)
    assert fill.slippage_bps == pytest.approx(10.0)
    assert fill.liquidity == "taker" and fill.latency_ms == 5.0
    assert report.orders[0].status is OrderStatus.FILLED


def test_large_order_fills_partially_against_bar_volume() -> None:
    b = broker(max_participation=0.1)
    run(b.sync({"ETH/BTC": bar(0)}))
    run(b.submit(request(quantity=25.0)))
    first = run(b.sync({"ETH/BTC": bar(5)}))
    assert first.fills[0].quantity == pytest.approx(10.0)
    assert first.orders[0].status is OrderStatus.PARTIALLY_FILLED
    second = run(b.sync({"ETH/BTC": bar(10)}))
    third = run(b.sync({"ETH/BTC": bar(15)}))
    assert second.fills[0].quantity == pytest.approx(10.0)
    assert third.fills[0].quantity == pytest.approx(5.0)
    assert third.orders[0].status is OrderStatus.FILLED


def test_limit_order_fills_only_when_touched_as_maker() -> None:
    b = broker()
    run(b.sync({"ETH/BTC": bar(0)}))
    run(b.submit(request(order_type=OrderType.LIMIT, limit_price=0.085)))
    untouched = run(b.sync({"ETH/BTC": bar(5)}))
    assert untouched.fills == ()
    touched = run(b.sync({"ETH/BTC": bar(10, open=0.09, low=0.08)}))
    (fill,) = touched.fills
    assert fill.price == 0.085 and fill.liquidity == "maker"
    assert fill.fee == pytest.approx(10.0 * 0.085 * 0.0005)


def test_submitting_the_same_client_order_id_twice_never_doubles() -> None:
    b = broker()
    run(b.sync({"ETH/BTC": bar(0)}))
    first = run(b.submit(request()))
    second = run(b.submit(request()))
    assert first.orders == second.orders
    report = run(b.sync({"ETH/BTC": bar(5)}))
    assert len(report.fills) == 1


def test_cancel_ends_an_open_order_and_lookup_finds_it() -> None:
    b = broker()
    run(b.submit(request()))
    cancelled = run(b.cancel("ft-000001", "ETH/BTC"))
    assert cancelled.orders[0].status is OrderStatus.CANCELLED
    assert run(b.fetch_order("ft-000001", "ETH/BTC")).status is OrderStatus.CANCELLED
    assert run(b.fetch_order("ft-unknown", "ETH/BTC")) is None
    assert run(b.open_orders()) == []


def test_configured_rejection_rate_rejects_with_a_reason() -> None:
    b = broker(reject_rate=1.0)
    report = run(b.submit(request()))
    assert report.orders[0].status is OrderStatus.REJECTED
    assert report.orders[0].reason == SIMULATED_REJECTION
