"""Failure injection of the paper venue, one kind at a time, and its config."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actors.adapters.paper import PaperBroker
from cycle.config import BrokerConfig, FailureWindow, load_config
from cycle.errors import (
    APIChangedError,
    BrokerTimeoutError,
    BrokerUnavailableError,
    ConfigError,
    InsufficientFundsError,
    InvalidOrderError,
    RateLimitError,
    RestrictedSymbolError,
)
from cycle.messages import Bar, OrderRequest, OrderStatus, OrderType, Side
from tests.actors.adapters.desk import FakeClock
from tests.conftest import DEFAULT_CONFIG

T0 = datetime(2018, 1, 10, 5, 0, tzinfo=UTC)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def venue(clock: FakeClock | None = None, **failures: Any) -> PaperBroker:
    config = BrokerConfig(name="paper", latency_jitter_ms=0.0, failures=failures)
    return PaperBroker(config, member=0, seed=3, clock=clock or FakeClock())


def bars(minutes: int) -> dict[str, Bar]:
    bar = Bar(
        symbol="ETH/BTC",
        timestamp=T0 + timedelta(minutes=minutes),
        open=0.1,
        high=0.11,
        low=0.09,
        close=0.105,
        volume=1000.0,
    )
    return {"ETH/BTC": bar}


def request(cid: str = "ft-000001", symbol: str = "ETH/BTC") -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=1.0,
        cycle=1,
        strategy="s",
        created_at=T0,
    )


def test_window_in_bars_repeats_with_its_period_and_in_seconds_follows_the_clock() -> None:
    daily = FailureWindow(start=2, end=4, every=10)
    seconds = FailureWindow(start=1.0, end=2.5, unit="seconds")

    assert [b for b in range(25) if daily.active(b, 0.0)] == [2, 3, 12, 13, 22, 23]
    assert [seconds.active(0, s) for s in (0.5, 1.0, 2.4, 2.5)] == [False, True, True, False]


def test_downtime_in_bars_refuses_everything_until_the_window_ends() -> None:
    broker = venue(downtime=[{"start": 2, "end": 4}])
    outcomes = []
    for minute in range(0, 30, 5):
        try:
            run(broker.sync(bars(minute)))
            outcomes.append("up")
        except BrokerUnavailableError:
            outcomes.append("down")
    assert outcomes == ["up", "down", "down", "up", "up", "up"]


def test_downtime_in_seconds_and_ping_fail_inside_the_window() -> None:
    clock = FakeClock()
    broker = venue(clock, downtime=[{"start": 1.0, "end": 2.0, "unit": "seconds"}])
    run(broker.ping())
    clock.advance(1.5)
    with pytest.raises(BrokerUnavailableError, match="down for maintenance"):
        run(broker.ping())
    clock.advance(1.0)
    assert run(broker.ping()) == 5.0


def test_rate_limit_refuses_over_the_window_and_reopens() -> None:
    clock = FakeClock()
    broker = venue(clock, rate_limit=2, rate_limit_window_s=1.0)
    run(broker.ping())
    run(broker.ping())
    with pytest.raises(RateLimitError, match="limit 2 per 1s"):
        run(broker.ping())
    clock.advance(1.0)
    run(broker.ping())
    assert len(broker.venue_state().calls) == 4


def test_timeout_that_hides_the_write_leaves_the_order_findable_and_unique() -> None:
    broker = venue(hidden_fill_rate=1.0)
    run(broker.sync(bars(0)))
    broker.failures = broker.failures.model_copy(update={"timeout_rate": 1.0})
    with pytest.raises(BrokerTimeoutError, match="the order was placed"):
        run(broker.submit(request()))
    broker.failures = broker.failures.model_copy(update={"timeout_rate": 0.0})
    assert run(broker.fetch_order("ft-000001", "ETH/BTC")).status is OrderStatus.ACCEPTED
    again = run(broker.submit(request()))
    report = run(broker.sync(bars(5)))
    assert again.orders[0].status is OrderStatus.ACCEPTED
    assert len(report.fills) == 1 and report.fills[0].quantity == 1.0


def test_timeout_that_loses_the_write_leaves_nothing_at_the_venue() -> None:
    broker = venue(timeout_rate=1.0)
    with pytest.raises(BrokerTimeoutError, match="the order was lost"):
        run(broker.submit(request()))
    assert broker.venue_state().statuses == {}


def test_a_lost_sync_answer_delays_fills_but_never_loses_them() -> None:
    broker = venue()
    run(broker.sync(bars(0)))
    run(broker.submit(request()))
    broker.failures = broker.failures.model_copy(update={"timeout_rate": 1.0})
    with pytest.raises(BrokerTimeoutError):
        run(broker.sync(bars(5)))
    broker.failures = broker.failures.model_copy(update={"timeout_rate": 0.0})
    delivered = run(broker.sync(bars(10)))
    assert [f.quantity for f in delivered.fills] == [1.0]
    assert delivered.fills[0].timestamp == T0 + timedelta(minutes=5)
    assert run(broker.sync(bars(15))).fills == ()


@pytest.mark.parametrize(
    ("failures", "error", "phrase"),
    [
        ({"restricted_symbols": ["ETH/BTC"]}, RestrictedSymbolError, "restricted for this account"),
        ({"insufficient_balance_rate": 1.0}, InsufficientFundsError, "insufficient balance"),
        ({"invalid_order_rate": 1.0}, InvalidOrderError, "LOT_SIZE"),
    ],
)
def test_refusals_place_nothing(failures: dict[str, Any], error: type, phrase: str) -> None:
    broker = venue(**failures)
    with pytest.raises(error, match=phrase):
        run(broker.submit(request()))
    assert broker.venue_state().statuses == {}


def test_restriction_applies_to_its_symbol_only() -> None:
    broker = venue(restricted_symbols=["ETH/BTC"])
    assert run(broker.submit(request(symbol="LTC/BTC"))).orders[0].status is OrderStatus.ACCEPTED


def test_api_change_names_what_changed_holds_the_answer_and_ends_with_its_window() -> None:
    change = {"window": {"start": 2, "end": 3}, "renamed": {"executedQty": "qtyExecuted"}}
    broker = venue(api_change=change)
    run(broker.sync(bars(0)))
    run(broker.submit(request()))
    with pytest.raises(APIChangedError, match="missing executedQty; new qtyExecuted"):
        run(broker.sync(bars(5)))
    with pytest.raises(APIChangedError):
        run(broker.fetch_order("ft-000001", "ETH/BTC"))
    report = run(broker.sync(bars(10)))
    assert [f.quantity for f in report.fills] == [1.0]
    assert [d.describe() for d in broker.api_changes()] == [
        "order: missing executedQty; new qtyExecuted"
    ]


def test_a_version_bump_alone_is_a_breaking_change() -> None:
    broker = venue(api_change={"version": "2"})
    with pytest.raises(APIChangedError, match="unexpected version '2'"):
        run(broker.submit(request()))


def test_slow_answers_report_the_added_latency() -> None:
    broker = venue(slow_rate=1.0, slow_ms=3000.0)
    assert run(broker.ping()) == 3005.0


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ({"failures": {"timeout_rate": 1.5}}, "brokers.0.failures.timeout_rate: Input should be"),
        (
            {"failures": {"downtime": [{"start": 5, "end": 5}]}},
            "brokers.0.failures.downtime.0: end: a window must end after it starts",
        ),
        (
            {"failures": {"downtime": [{"start": 0, "end": 5, "every": 4}]}},
            "every: a repeating window must be shorter than its period",
        ),
        (
            {"failures": {"downtime": [{"start": 0, "end": 5, "unit": "hours"}]}},
            "brokers.0.failures.downtime.0.unit: Input should be 'bars' or 'seconds'",
        ),
        ({"failures": {"api_change": {}}}, "renamed: an API change must rename"),
        ({"kind": "ccxt"}, "brokers.0: ccxt: a ccxt broker needs its ccxt settings"),
        ({"ccxt": {"exchange_id": "binance"}}, "ccxt: only a ccxt broker takes ccxt settings"),
        (
            {"kind": "ccxt", "ccxt": {"taker_fee": 0.002}},
            "ccxt.taker_fee: set it on the broker, not in its ccxt settings",
        ),
        (
            {"kind": "ccxt", "ccxt": {"api_key_env": "my key"}},
            "brokers.0.ccxt.api_key_env: String should match pattern",
        ),
        (
            {"kind": "ccxt", "ccxt": {}, "failures": {"timeout_rate": 0.1}},
            "failures: only a paper broker injects failures",
        ),
        ({"rate_limit": {"requests": 0}}, "brokers.0.rate_limit.requests: Input should be greater"),
    ],
)
def test_bad_broker_config_names_the_field(broker: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(DEFAULT_CONFIG, {"brokers": [{"name": "x", **broker}]})
    assert message in str(caught.value)


def test_bad_routing_config_names_the_field(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="routing.policy: Input should be 'priority'"):
        load_config(DEFAULT_CONFIG, {"routing": {"policy": "lowest"}})
    with pytest.raises(ConfigError, match="routing.retry.jitter: Input should be less"):
        load_config(DEFAULT_CONFIG, {"routing": {"retry": {"jitter": 2}}})
    with pytest.raises(ConfigError, match="routing: learned: no such file"):
        load_config(DEFAULT_CONFIG, {"routing": {"learned": str(tmp_path / "none.json")}})


def test_ccxt_broker_takes_its_name_and_fees_from_the_broker_entry() -> None:
    config = load_config(
        DEFAULT_CONFIG,
        {
            "brokers": [
                {"name": "live", "kind": "ccxt", "taker_fee": 0.002, "ccxt": {"sandbox": True}}
            ]
        },
    )
    venue_config = config.brokers[0].venue()
    assert (venue_config.name, venue_config.taker_fee, venue_config.sandbox) == (
        "live",
        0.002,
        True,
    )
    assert venue_config.api_key_env == "FLUXTRADE_BINANCE_API_KEY"
