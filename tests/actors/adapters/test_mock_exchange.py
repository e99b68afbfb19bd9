"""The mock exchange over plain HTTP: Binance's wire format, signing, matching and failures."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import ccxt
import pytest

from actors.adapters.mock_exchange import (
    ApiChange,
    DowntimeWindow,
    MockExchange,
    MockFailures,
    MockMarket,
)
from cycle.messages import Bar
from tests.actors.adapters.conftest import API_KEY, API_SECRET, START_BALANCES

REPO = Path(__file__).resolve().parents[3]


def call(
    mock: MockExchange,
    method: str,
    endpoint: str,
    params: dict[str, Any] | None = None,
    *,
    signed: bool = False,
    key: str = API_KEY,
    secret: str = API_SECRET,
    timestamp_ms: int | None = None,
    timeout: float = 2.0,
) -> tuple[int, Any]:
    """One request as Binance clients send it: query (GET/DELETE) or form body (POST), signed."""
    params = dict(params or {})
    headers = {}
    if signed:
        params["timestamp"] = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        query = urlencode(params)
        signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        params["signature"] = signature
        headers["X-MBX-APIKEY"] = key
    encoded = urlencode(params)
    url = f"{mock.url}/api/v3/{endpoint}"
    data = None
    if method == "POST":
        data = encoded.encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif encoded:
        url += "?" + encoded
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read().decode()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, body


def new_order(mock: MockExchange, **params: Any) -> tuple[int, Any]:
    return call(mock, "POST", "order", {"symbol": "ETHBTC", **params}, signed=True)


def test_mock_serves_replayed_market_data_from_the_csv(
    mock: MockExchange, market: MockMarket
) -> None:
    cursor_bar = market.bars[288]

    status, ticker = call(mock, "GET", "ticker/24hr", {"symbol": "ETHBTC"})
    _, klines = call(mock, "GET", "klines", {"symbol": "ETHBTC", "interval": "5m", "limit": 2})
    _, depth = call(mock, "GET", "depth", {"symbol": "ETHBTC", "limit": 3})

    assert status == 200
    assert float(ticker["lastPrice"]) == pytest.approx(cursor_bar.close)
    assert float(ticker["highPrice"]) == pytest.approx(max(b.high for b in market.bars[1:289]))
    assert [float(row[4]) for row in klines] == pytest.approx(
        [market.bars[287].close, cursor_bar.close]
    )
    assert klines[-1][0] == int(cursor_bar.timestamp.timestamp() * 1000)
    assert float(depth["bids"][0][0]) < cursor_bar.close < float(depth["asks"][0][0])
    assert len(depth["bids"]) == 3


def test_mock_refuses_bad_credentials_with_binance_codes(mock: MockExchange) -> None:
    unsigned = call(mock, "GET", "account")
    wrong_key = call(mock, "GET", "account", signed=True, key="someone-else")
    wrong_secret = call(mock, "GET", "account", signed=True, secret="wrong")
    stale = call(mock, "GET", "account", signed=True, timestamp_ms=int(time.time() * 1000) - 60_000)
    good = call(mock, "GET", "account", signed=True)

    assert unsigned == (401, {"code": -2015, "msg": unsigned[1]["msg"]})
    assert wrong_key[0] == 401 and wrong_key[1]["code"] == -2015
    assert wrong_secret == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    assert stale[0] == 400 and stale[1]["code"] == -1021
    assert good[0] == 200
    assert {b["asset"]: float(b["free"]) for b in good[1]["balances"]} == START_BALANCES


def test_market_buy_fills_at_the_replayed_price_and_moves_balances_with_the_fee(
    mock: MockExchange,
) -> None:
    price = mock.engine.price("ETHBTC")

    status, ack = new_order(
        mock, side="BUY", type="MARKET", quantity="0.5", newClientOrderId="ft-buy-1"
    )

    assert status == 200
    assert ack["status"] == "FILLED"
    assert ack["clientOrderId"] == "ft-buy-1"
    assert float(ack["executedQty"]) == 0.5
    assert float(ack["cummulativeQuoteQty"]) == pytest.approx(0.5 * price)
    assert float(ack["fills"][0]["commission"]) == pytest.approx(0.5 * price * 0.001, abs=1e-8)
    assert ack["fills"][0]["commissionAsset"] == "BTC"
    assert mock.engine.balance("BTC") == pytest.approx((1.0 - 0.5 * price * 1.001, 0.0))
    assert mock.engine.balance("ETH") == pytest.approx((10.5, 0.0))


def test_limit_order_rests_with_locked_funds_until_a_bar_crosses_it(
    mock: MockExchange, market: MockMarket
) -> None:
    cursor = 288
    next_low = min(bar.low for bar in market.bars[cursor + 1 : cursor + 50])
    limit = round(next_low + 1e-6, 6)
    assert limit < market.bars[cursor].close
    crossing = next(i for i in range(cursor + 1, cursor + 50) if market.bars[i].low <= limit)

    _, ack = new_order(
        mock,
        side="BUY",
        type="LIMIT",
        quantity="1",
        price=f"{limit:.6f}",
        timeInForce="GTC",
        newClientOrderId="ft-lim-1",
    )
    locked_while_resting = mock.engine.balance("BTC")[1]
    mock.engine.advance(crossing - cursor - 1)
    still_open = call(mock, "GET", "openOrders", {"symbol": "ETHBTC"}, signed=True)[1]
    mock.engine.advance()
    _, final = call(
        mock, "GET", "order", {"symbol": "ETHBTC", "origClientOrderId": "ft-lim-1"}, signed=True
    )

    assert ack["status"] == "NEW"
    assert locked_while_resting == pytest.approx(limit * 1.001)
    assert [o["clientOrderId"] for o in still_open] == ["ft-lim-1"]
    assert final["status"] == "FILLED"
    assert float(final["cummulativeQuoteQty"]) == pytest.approx(limit)
    assert mock.engine.balance("BTC") == pytest.approx((1.0 - limit * 1.001, 0.0))
    assert mock.engine.balance("ETH")[0] == pytest.approx(11.0)


def test_cancel_releases_the_locked_funds_and_unknown_orders_get_binance_errors(
    mock: MockExchange,
) -> None:
    new_order(
        mock, side="SELL", type="LIMIT", quantity="2", price="0.500000", newClientOrderId="ft-s1"
    )
    locked = mock.engine.balance("ETH")

    _, cancelled = call(
        mock, "DELETE", "order", {"symbol": "ETHBTC", "origClientOrderId": "ft-s1"}, signed=True
    )
    again = call(
        mock, "DELETE", "order", {"symbol": "ETHBTC", "origClientOrderId": "ft-s1"}, signed=True
    )
    missing = call(
        mock, "GET", "order", {"symbol": "ETHBTC", "origClientOrderId": "nope"}, signed=True
    )

    assert locked == (8.0, 2.0)
    assert cancelled["status"] == "CANCELED"
    assert mock.engine.balance("ETH") == (10.0, 0.0)
    assert again == (400, {"code": -2011, "msg": "Unknown order sent."})
    assert missing == (400, {"code": -2013, "msg": "Order does not exist."})


def test_order_rules_reject_with_binance_payloads(mock: MockExchange) -> None:
    off_step = new_order(mock, side="BUY", type="MARKET", quantity="0.0005")
    too_big = new_order(mock, side="BUY", type="MARKET", quantity="50")
    bad_symbol = call(
        mock, "POST", "order", {"symbol": "DOGEBTC", "side": "BUY", "type": "MARKET"}, signed=True
    )
    new_order(mock, side="SELL", type="LIMIT", quantity="1", price="0.5", newClientOrderId="ft-d")
    duplicate = new_order(
        mock, side="SELL", type="LIMIT", quantity="1", price="0.5", newClientOrderId="ft-d"
    )

    assert off_step == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    assert too_big[1] == {
        "code": -2010,
        "msg": "Account has insufficient balance for requested action.",
    }
    assert bad_symbol == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert duplicate == (400, {"code": -2010, "msg": "Duplicate order sent."})


def clocked_mock(market: MockMarket, now: list[float], failures: MockFailures) -> MockExchange:
    """A mock whose failure windows run on a clock the test moves by hand."""
    return MockExchange(
        [market],
        START_BALANCES,
        api_key=API_KEY,
        api_secret=API_SECRET,
        failures=failures,
        clock=lambda: now[0],
    )


def test_test_order_validates_without_placing_anything(mock: MockExchange) -> None:
    valid = call(
        mock,
        "POST",
        "order/test",
        {"symbol": "ETHBTC", "side": "BUY", "type": "MARKET", "quantity": "0.1"},
        signed=True,
    )
    invalid = call(
        mock,
        "POST",
        "order/test",
        {"symbol": "ETHBTC", "side": "BUY", "type": "MARKET", "quantity": "0.0001"},
        signed=True,
    )

    assert valid == (200, {})
    assert invalid == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    assert call(mock, "GET", "openOrders", signed=True) == (200, [])
    assert mock.engine.balance("BTC") == (1.0, 0.0)


def test_rate_limit_answers_429_then_418_and_reopens_after_the_window(
    market: MockMarket,
) -> None:
    now = [100.0]
    failures = MockFailures(rate_limit=2, rate_limit_window_s=10, ban_after=1)

    with clocked_mock(market, now, failures) as mock:
        statuses = [call(mock, "GET", "time")[0] for _ in range(4)]
        now[0] += 10.5
        after_window = call(mock, "GET", "time")[0]

    assert statuses == [200, 200, 429, 418]
    assert after_window == 200


def test_downtime_windows_and_unavailable_budget_answer_503(market: MockMarket) -> None:
    now = [0.0]
    failures = MockFailures(
        unavailable_next=1, downtime=(DowntimeWindow(start_s=5, end_s=10, maintenance=True),)
    )

    with clocked_mock(market, now, failures) as mock:
        first, second = call(mock, "GET", "time")[0], call(mock, "GET", "time")[0]
        now[0] = 7.0
        maintenance = call(mock, "GET", "time")
        now[0] = 10.0
        recovered = call(mock, "GET", "time")[0]

    assert (first, second) == (503, 200)
    assert maintenance == (503, {"code": -1000, "msg": "System is under maintenance."})
    assert recovered == 200


def test_injected_rejections_use_the_venue_messages(mock: MockExchange) -> None:
    replies = []
    for failures in (
        MockFailures(reject_insufficient_balance=True),
        MockFailures(reject_invalid_order=True),
        MockFailures(restricted_symbols=frozenset({"ETHBTC"})),
    ):
        mock.engine.set_failures(failures)
        replies.append(new_order(mock, side="BUY", type="MARKET", quantity="0.01")[1]["msg"])

    assert replies == [
        "Account has insufficient balance for requested action.",
        "Filter failure: LOT_SIZE",
        "This symbol is restricted for this account.",
    ]
    assert mock.engine.balance("BTC") == (1.0, 0.0)


def test_api_change_renames_drops_and_aliases_order_fields(mock: MockExchange) -> None:
    mock.engine.set_failures(
        MockFailures(
            api_change=ApiChange(
                renamed={"executedQty": "filledQuantity"},
                removed=frozenset({"cummulativeQuoteQty"}),
                status_aliases={"FILLED": "DONE"},
            )
        )
    )

    _, ack = new_order(mock, side="BUY", type="MARKET", quantity="0.1")

    assert "executedQty" not in ack and ack["filledQuantity"] == "0.10000000"
    assert "cummulativeQuoteQty" not in ack
    assert ack["status"] == "DONE"


def test_hidden_fill_executes_the_order_although_the_client_times_out(
    mock: MockExchange,
) -> None:
    mock.engine.set_failures(MockFailures(hidden_fill_delay_s=1.0))

    with pytest.raises(TimeoutError):
        call(
            mock,
            "POST",
            "order",
            {
                "symbol": "ETHBTC",
                "side": "BUY",
                "type": "MARKET",
                "quantity": "0.1",
                "newClientOrderId": "ft-hidden",
            },
            signed=True,
            timeout=0.2,
        )

    assert [o["status"] for o in mock.engine.orders_by_client_id("ft-hidden")] == ["FILLED"]


def test_lost_order_post_answers_gateway_timeout_without_executing(mock: MockExchange) -> None:
    mock.engine.set_failures(MockFailures(lose_order_posts=1))

    lost = new_order(mock, side="BUY", type="MARKET", quantity="0.1", newClientOrderId="ft-lost")
    resent = new_order(mock, side="BUY", type="MARKET", quantity="0.1", newClientOrderId="ft-lost")

    assert lost[0] == 504
    assert resent[0] == 200
    assert len(mock.engine.orders_by_client_id("ft-lost")) == 1


def test_latency_delays_only_the_named_endpoints(mock: MockExchange) -> None:
    mock.engine.set_failures(MockFailures(latency_s=0.3, latency_paths=frozenset({"depth"})))

    started = time.perf_counter()
    call(mock, "GET", "time")
    fast = time.perf_counter() - started
    started = time.perf_counter()
    call(mock, "GET", "depth", {"symbol": "ETHBTC"})
    slow = time.perf_counter() - started

    assert fast < 0.2 <= 0.3 <= slow


def test_stop_drops_open_connections_and_restart_reuses_the_port(mock: MockExchange) -> None:
    port = mock.port

    mock.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass
    mock.start()

    assert mock.port == port
    assert call(mock, "GET", "ping") == (200, {})


def test_request_log_keeps_params_but_never_signatures(mock: MockExchange) -> None:
    call(mock, "GET", "account", signed=True)

    recorded = mock.engine.requests[-1]

    assert recorded.path == "/api/v3/account"
    assert "timestamp" in recorded.params and "signature" not in recorded.params


def test_module_runs_as_a_loopback_demo_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "actors.adapters.mock_exchange", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        reply = None
        while time.monotonic() < deadline and reply is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/v3/ticker/24hr?symbol=ETHBTC", timeout=1
                ) as response:
                    reply = json.loads(response.read())
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert reply is not None and reply["symbol"] == "ETHBTC"
    assert float(reply["lastPrice"]) > 0


# ------------------------------------------------------------------ the trade tape (aggTrades)


@pytest.fixture
def binance(mock: MockExchange) -> ccxt.binance:
    """The real ccxt client on the mock: spot only, no client-side throttle, every URL local."""
    exchange = ccxt.binance(
        {
            "enableRateLimit": False,
            "timeout": 2000,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    exchange.urls["api"] = {
        section: re.sub(r"^https?://[^/]+", mock.url, url)
        for section, url in exchange.urls["api"].items()
        if isinstance(url, str)
    }
    return exchange


def open_ms(bar: Bar) -> int:
    return int(bar.timestamp.timestamp() * 1000)


def test_fetch_trades_reproduces_the_candle_under_the_cursor(
    mock: MockExchange, binance: ccxt.binance, market: MockMarket
) -> None:
    bar = market.bars[288]
    start = open_ms(bar)

    trades = binance.fetch_trades("ETH/BTC", since=start, limit=1000)
    _, depth = call(mock, "GET", "depth", {"symbol": "ETHBTC", "limit": 1})

    prices = [t["price"] for t in trades]
    ids = [int(t["id"]) for t in trades]
    stamps = [t["timestamp"] for t in trades]
    assert len(trades) == len(mock.engine.bar_trades("ETHBTC")) >= 4
    assert all(bar.low <= p <= bar.high for p in prices)
    assert (prices[0], max(prices), min(prices), prices[-1]) == (
        bar.open,
        bar.high,
        bar.low,
        bar.close,
    )
    assert sum(t["amount"] for t in trades) == pytest.approx(bar.volume, abs=1e-7)
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert stamps == sorted(stamps) and start <= stamps[0] and stamps[-1] < start + 300_000
    assert prices[-1] == mock.engine.price("ETHBTC")
    assert float(depth["bids"][0][0]) < prices[-1] < float(depth["asks"][0][0])
    ticks = [(now["price"] - before["price"], now["side"]) for before, now in pairwise(trades)]
    assert {side for move, side in ticks if move > 0} == {"buy"}
    assert {side for move, side in ticks if move < 0} == {"sell"}


def test_fetch_trades_honours_since_limit_and_start_time_alone(
    mock: MockExchange, binance: ccxt.binance, market: MockMarket
) -> None:
    since = open_ms(market.bars[200])
    window = [
        row
        for index in range(200, 214)
        for row in mock.engine.bar_trades("ETHBTC", index)
        if since <= row["T"] <= since + 3_600_000
    ]

    last_of_window = binance.fetch_trades("ETH/BTC", since=since, limit=5)
    _, first_after = call(
        mock, "GET", "aggTrades", {"symbol": "ETHBTC", "startTime": since, "limit": 3}
    )
    recent = binance.fetch_trades("ETH/BTC")

    assert [int(t["id"]) for t in last_of_window] == [row["a"] for row in window[-5:]]
    assert first_after == window[:3]
    assert len(recent) == 500
    assert int(recent[-1]["id"]) == mock.engine.bar_trades("ETHBTC")[-1]["a"]


def test_fetch_trades_pages_forward_by_from_id(mock: MockExchange, binance: ccxt.binance) -> None:
    expected = [
        row["a"] for index in range(280, 289) for row in mock.engine.bar_trades("ETHBTC", index)
    ]
    seen: list[int] = []
    pages = 0

    while True:
        page = binance.fetch_trades(
            "ETH/BTC", limit=100, params={"fromId": expected[0] + len(seen)}
        )
        pages += 1
        seen += [int(t["id"]) for t in page]
        if len(page) < 100:
            break

    assert seen == expected
    assert pages == len(expected) // 100 + 1


def test_fetch_trades_for_an_unknown_symbol_is_bad_symbol(
    mock: MockExchange, binance: ccxt.binance
) -> None:
    with pytest.raises(ccxt.BadSymbol, match="Invalid symbol"):
        binance.fetch_trades("ETH/BTC", params={"symbol": "DOGEBTC"})

    assert call(mock, "GET", "aggTrades", {"symbol": "DOGEBTC"}) == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )


def test_agg_trades_refuses_bad_queries_with_binance_codes(mock: MockExchange) -> None:
    def code(**params: Any) -> int:
        return call(mock, "GET", "aggTrades", params)[1]["code"]

    assert code() == -1102
    assert code(symbol="ETHBTC", fromId=1, startTime=0) == -1128
    assert code(symbol="ETHBTC", startTime=0, endTime=3_600_001) == -1127
    assert code(symbol="ETHBTC", fromId="x") == -1100


def test_trade_tape_is_the_same_for_a_seed_and_reproduces_the_candle_for_any(
    market: MockMarket,
) -> None:
    def tape(seed: int) -> list[dict[str, Any]]:
        exchange = MockExchange([market], START_BALANCES, api_key="k", api_secret="s", seed=seed)
        return exchange.engine.bar_trades("ETHBTC", 100)

    bar = market.bars[100]
    first, again, other = tape(7), tape(7), tape(8)

    assert first == again and first != other
    for trades in (first, other):
        assert (float(trades[0]["p"]), float(trades[-1]["p"])) == (bar.open, bar.close)
        assert sum(float(t["q"]) for t in trades) == pytest.approx(bar.volume, abs=1e-7)


def test_failure_injection_reaches_the_trade_tape(mock: MockExchange) -> None:
    query = {"symbol": "ETHBTC", "limit": 1}
    mock.engine.set_failures(MockFailures(unavailable_next=1))
    unavailable = call(mock, "GET", "aggTrades", query)[0]
    mock.engine.set_failures(MockFailures(rate_limit=0))
    throttled = call(mock, "GET", "aggTrades", query)[0]
    renamed = ApiChange(endpoints=frozenset({"aggTrades"}), renamed={"m": "isBuyerMaker"})
    mock.engine.set_failures(MockFailures(api_change=renamed))
    _, changed = call(mock, "GET", "aggTrades", query)

    assert (unavailable, throttled) == (503, 429)
    assert "m" not in changed[0] and isinstance(changed[0]["isBuyerMaker"], bool)
