"""CcxtBroker against the mock exchange: real ccxt, real HTTP on loopback, real signing."""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import ccxt
import pytest
from pydantic import ValidationError

from actors.adapters.ccxt_broker import (
    BINANCE_SHAPES,
    CcxtBroker,
    CcxtBrokerConfig,
    load_credentials,
    translate_error,
)
from actors.adapters.learning import (
    APIMonitor,
    BrokerEvent,
    BrokerLogger,
    HealthChecker,
    HealthState,
    RetryHandler,
    RetryParams,
    read_logs,
)
from actors.adapters.mock_exchange import (
    ApiChange,
    MockExchange,
    MockFailures,
    MockMarket,
)
from cycle.errors import (
    APIChangedError,
    AuthenticationError,
    BrokerTimeoutError,
    BrokerUnavailableError,
    ConfigError,
    FluxtradeError,
    InsufficientFundsError,
    InvalidOrderError,
    NetworkError,
    OperationalError,
    RateLimitError,
    RestrictedSymbolError,
)
from cycle.messages import Bar, BrokerReport, Order, OrderStatus
from tests.actors.adapters.conftest import (
    API_KEY,
    API_SECRET,
    KEY_ENV,
    SECRET_ENV,
    START_BALANCES,
    BrokerFactory,
)
from tests.actors.adapters.error_contract import (
    CASES,
    METHODS,
    SYMBOL,
    check_error_contract,
    market_buy,
    resting_buy,
)
from tests.actors.adapters.secrets_scan import (
    PROVOKED_ERRORS,
    assert_secrets_absent,
    captured_logs,
)


def test_every_broker_method_translates_every_injected_failure(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    checked = check_error_contract(mock, make_broker)

    assert checked == sum(len(case.methods & set(METHODS)) for case in CASES.values())
    assert checked == 89


@pytest.mark.parametrize(
    ("vendor", "expected"),
    [
        (ccxt.RequestTimeout("t"), BrokerTimeoutError),
        (ccxt.DDoSProtection("429"), RateLimitError),
        (ccxt.RateLimitExceeded("-1003"), RateLimitError),
        (ccxt.OnMaintenance("maintenance"), BrokerUnavailableError),
        (ccxt.ExchangeNotAvailable("refused"), BrokerUnavailableError),
        (ccxt.OperationFailed("-1001 internal"), BrokerUnavailableError),
        (ccxt.InvalidNonce("-1021"), NetworkError),
        (ccxt.NetworkError("reset"), NetworkError),
        (ccxt.NullResponse("empty"), APIChangedError),
        (ccxt.BadResponse("garbled"), APIChangedError),
        (ccxt.AuthenticationError("-2015"), AuthenticationError),
        (ccxt.PermissionDenied("no trading"), AuthenticationError),
        (
            ccxt.PermissionDenied("This symbol is not permitted for this account."),
            RestrictedSymbolError,
        ),
        (ccxt.AccountSuspended("banned"), RestrictedSymbolError),
        (ccxt.InsufficientFunds("-2010"), InsufficientFundsError),
        (ccxt.OrderNotFound("-2013"), InvalidOrderError),
        (ccxt.BadSymbol("-1121"), InvalidOrderError),
        (ccxt.BadRequest("NOTIONAL"), InvalidOrderError),
        (ccxt.NotSupported("sapi"), ConfigError),
        (ccxt.ExchangeError("-9999 something new"), OperationalError),
        (KeyError("executedQty"), APIChangedError),
    ],
)
def test_translate_error_picks_the_most_specific_type(
    vendor: BaseException, expected: type
) -> None:
    translated = translate_error(vendor, "binance op")

    assert type(translated) is expected
    assert str(translated).startswith(f"binance op: {type(vendor).__name__}")


def test_translate_error_redacts_credentials_echoed_by_a_venue() -> None:
    echoed = ccxt.AuthenticationError('{"msg": "API-key sekrit-123 format invalid."}')

    translated = translate_error(echoed, "x", lambda text: text.replace("sekrit-123", "***"))

    assert "sekrit-123" not in str(translated) and "***" in str(translated)


def test_market_data_is_returned_as_typed_messages(
    mock: MockExchange, market: MockMarket, make_broker: BrokerFactory
) -> None:
    async def scenario() -> None:
        broker = make_broker()
        try:
            symbols = await broker.load_markets()
            ticker = await broker.fetch_ticker(SYMBOL)
            book = await broker.fetch_order_book(SYMBOL, 3)
            since = market.bars[280].timestamp
            bars = await broker.fetch_ohlcv(SYMBOL, "5m", since=since, limit=3)
        finally:
            await broker.close()

        assert symbols == ["ETH/BTC"]
        assert ticker.last == pytest.approx(market.bars[288].close)
        assert ticker.bid is not None and ticker.bid < ticker.last
        assert len(book.bids) == 3 and not book.synthetic
        assert [bar.close for bar in bars] == pytest.approx([b.close for b in market.bars[280:283]])
        assert bars[0].timestamp == since

    asyncio.run(scenario())


def test_submit_market_order_reports_the_fill_with_the_venue_fee(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    price = mock.engine.price("ETHBTC")
    reference = Bar(
        symbol=SYMBOL,
        timestamp=datetime.now(UTC),
        open=price,
        high=price,
        low=price,
        close=price * 0.999,
        volume=1.0,
    )
    request = market_buy(0.5)

    async def scenario() -> tuple[BrokerReport, dict[str, float]]:
        broker = make_broker()
        try:
            await broker.sync({SYMBOL: reference})
            report = await broker.submit(request)
            return report, await broker.balances()
        finally:
            await broker.close()

    report, balances = asyncio.run(scenario())

    (order,) = report.orders
    (fill,) = report.fills
    assert order.status is OrderStatus.FILLED
    assert order.filled_quantity == 0.5 and order.average_price == pytest.approx(price)
    assert fill.quantity == 0.5 and fill.price == pytest.approx(price)
    assert fill.fee == pytest.approx(0.5 * price * 0.001, abs=1e-8)
    assert order.fees == fill.fee
    assert fill.liquidity == "taker"
    assert fill.reference_price == pytest.approx(price * 0.999)
    assert fill.slippage_bps == pytest.approx((1 / 0.999 - 1) * 1e4)
    assert mock.engine.requests[-2].params["newClientOrderId"] == request.client_order_id
    assert balances["ETH"] == pytest.approx(10.5)
    assert balances["BTC"] == pytest.approx(mock.engine.balance("BTC")[0])


def test_resting_limit_order_fills_are_reported_once_as_deltas(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    request = resting_buy(1.0, 0.05)

    async def scenario() -> list[BrokerReport]:
        broker = make_broker()
        try:
            reports = [await broker.submit(request), await broker.sync({})]
            mock.engine.fill_resting(request.client_order_id, 0.3)
            reports += [await broker.sync({}), await broker.sync({})]
            mock.engine.fill_resting(request.client_order_id, 0.7)
            reports.append(await broker.sync({}))
            requests_before = len(mock.engine.requests)
            reports.append(await broker.sync({}))
            assert len(mock.engine.requests) == requests_before
            return reports
        finally:
            await broker.close()

    accepted, quiet, partial, repeat, final, done = asyncio.run(scenario())

    assert accepted.orders[0].status is OrderStatus.ACCEPTED and not accepted.fills
    assert quiet == BrokerReport() == repeat == done
    assert [f.quantity for f in partial.fills] == pytest.approx([0.3])
    assert partial.orders[0].status is OrderStatus.PARTIALLY_FILLED
    assert partial.fills[0].price == pytest.approx(0.05)
    assert partial.fills[0].liquidity == "maker"
    assert partial.fills[0].fee == pytest.approx(0.3 * 0.05 * 0.001)
    assert [f.quantity for f in final.fills] == pytest.approx([0.7])
    assert final.orders[0].status is OrderStatus.FILLED
    assert final.orders[0].fees == pytest.approx(0.05 * 0.001)
    assert len({f.fill_id for f in partial.fills + final.fills}) == 2


def test_cancel_reports_fills_before_it_then_terminal_unchanged_and_unknown_raises(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    request = resting_buy(1.0, 0.05)

    async def scenario() -> tuple[BrokerReport, BrokerReport]:
        broker = make_broker()
        try:
            await broker.submit(request)
            mock.engine.fill_resting(request.client_order_id, 0.25)
            cancelled = await broker.cancel(request.client_order_id, SYMBOL)
            again = await broker.cancel(request.client_order_id, SYMBOL)
            with pytest.raises(InvalidOrderError, match="unknown to the venue"):
                await broker.cancel("ft-never-sent", SYMBOL)
            return cancelled, again
        finally:
            await broker.close()

    cancelled, again = asyncio.run(scenario())

    assert cancelled.orders[0].status is OrderStatus.CANCELLED
    assert [f.quantity for f in cancelled.fills] == pytest.approx([0.25])
    assert again.orders[0].status is OrderStatus.CANCELLED and not again.fills
    assert again.orders[0].filled_quantity == pytest.approx(0.25)
    assert mock.engine.balance("BTC")[1] == pytest.approx(0.0)


def test_lookups_find_known_orders_and_report_no_fills(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    request = market_buy(0.2)

    async def scenario() -> tuple[Order | None, Order | None]:
        broker = make_broker()
        try:
            await broker.submit(request)
            return (
                await broker.fetch_order(request.client_order_id, SYMBOL),
                await broker.fetch_order("ft-never-sent", SYMBOL),
            )
        finally:
            await broker.close()

    found, missing = asyncio.run(scenario())

    assert missing is None
    assert found is not None and found.request == request
    assert found.status is OrderStatus.FILLED and found.filled_quantity == pytest.approx(0.2)


def test_open_orders_include_orders_sent_by_another_process(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    request = resting_buy(2.0, 0.04)

    async def scenario() -> list[Order]:
        sender, other = make_broker(), make_broker()
        try:
            await sender.submit(request)
            return await other.open_orders()
        finally:
            await sender.close()
            await other.close()

    (order,) = asyncio.run(scenario())

    assert order.client_order_id == request.client_order_id
    assert order.request.strategy == "external"
    assert order.request.quantity == 2.0 and order.request.limit_price == pytest.approx(0.04)
    assert order.status is OrderStatus.ACCEPTED


def test_tracked_order_after_restart_reports_only_new_fills(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    request = resting_buy(1.0, 0.05)

    async def scenario() -> BrokerReport:
        first = make_broker()
        try:
            await first.submit(request)
            mock.engine.fill_resting(request.client_order_id, 0.4)
            known = (await first.sync({})).orders[0]
        finally:
            await first.close()
        restarted = make_broker()
        try:
            restarted.track(known)
            mock.engine.fill_resting(request.client_order_id, 0.6)
            return await restarted.sync({})
        finally:
            await restarted.close()

    report = asyncio.run(scenario())

    assert [f.quantity for f in report.fills] == pytest.approx([0.6])
    assert report.orders[0].status is OrderStatus.FILLED


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (ApiChange(renamed={"executedQty": "qtyExecuted"}), ["missing executedQty", "qtyExecuted"]),
        (ApiChange(removed=frozenset({"cummulativeQuoteQty"})), ["missing cummulativeQuoteQty"]),
        (ApiChange(status_aliases={"FILLED": "DONE"}), ["status='DONE'"]),
    ],
)
def test_api_change_raises_naming_what_changed_and_degrades_the_broker(
    mock: MockExchange, change: ApiChange, named: list[str], tmp_path: Path
) -> None:
    health = HealthChecker()
    monitor = APIMonitor(BINANCE_SHAPES, health)
    config = CcxtBrokerConfig(
        base_url=mock.url, api_key_env=KEY_ENV, api_secret_env=SECRET_ENV, enable_rate_limit=False
    )
    environ = {KEY_ENV: API_KEY, SECRET_ENV: API_SECRET}

    async def scenario() -> APIChangedError:
        broker = CcxtBroker(
            config, environ=environ, monitor=monitor, journal=BrokerLogger(tmp_path)
        )
        try:
            await broker.load_markets()
            mock.engine.set_failures(MockFailures(api_change=change))
            with pytest.raises(APIChangedError) as raised:
                await broker.submit(market_buy(0.1))
            return raised.value
        finally:
            await broker.close()

    error = asyncio.run(scenario())

    for text in named:
        assert text in str(error)
    last = list(read_logs(tmp_path, "binance"))[-1]
    assert (last.event, last.operation, last.error_type) == (
        BrokerEvent.ERROR,
        "submit",
        "APIChangedError",
    )
    assert health.status("binance") is HealthState.DEGRADED
    assert health.flags("binance") == [f"API changed: {monitor.changes('binance')[0].describe()}"]


def test_unseen_placement_is_followed_until_it_can_no_longer_land(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    request = market_buy(0.1)

    def lookups() -> int:
        return sum(r.method == "GET" and r.path.endswith("/order") for r in mock.engine.requests)

    async def scenario() -> list[int]:
        broker = make_broker(recv_window_ms=300)
        try:
            await broker.load_markets()
            mock.engine.set_failures(MockFailures(lose_order_posts=1))
            with pytest.raises(BrokerTimeoutError):
                await broker.submit(request)
            seen = []
            for pause in (0.0, 0.35, 0.0):
                await asyncio.sleep(pause)
                await broker.sync({})
                seen.append(lookups())
            return seen
        finally:
            await broker.close()

    assert asyncio.run(scenario()) == [1, 2, 2]


def test_ccxt_retries_reads_when_configured_but_never_an_order_placement(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    def posts() -> int:
        return sum(r.method == "POST" and r.path.endswith("/order") for r in mock.engine.requests)

    async def scenario() -> dict[str, float]:
        broker = make_broker(read_retries=2)
        try:
            await broker.load_markets()
            mock.engine.set_failures(MockFailures(lose_order_posts=1))
            with pytest.raises(BrokerTimeoutError):
                await broker.submit(market_buy(0.1))
            mock.engine.set_failures(MockFailures(unavailable_next=2))
            return await broker.balances()
        finally:
            await broker.close()

    assert asyncio.run(scenario()) == START_BALANCES
    assert posts() == 1


def test_sandbox_switch_keeps_the_base_url_override(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    async def scenario() -> list[str]:
        broker = make_broker(sandbox=True)
        try:
            return await broker.load_markets()
        finally:
            await broker.close()

    assert asyncio.run(scenario()) == ["ETH/BTC"]
    assert {r.path for r in mock.engine.requests} == {"/api/v3/exchangeInfo", "/api/v3/time"}


def test_quantity_off_the_lot_step_is_refused_before_anything_is_sent(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    async def scenario() -> None:
        broker = make_broker()
        try:
            await broker.load_markets()
            with pytest.raises(InvalidOrderError, match="sent as 0.01"):
                await broker.submit(market_buy(0.0105))
        finally:
            await broker.close()

    asyncio.run(scenario())

    assert not [r for r in mock.engine.requests if r.path.endswith("/order")]


def test_clock_skew_is_resynced_after_the_first_rejection(
    mock: MockExchange, make_broker: BrokerFactory
) -> None:
    async def scenario() -> dict[str, float]:
        broker = make_broker()
        try:
            await broker.load_markets()
            mock.engine.set_failures(MockFailures(clock_skew_ms=-30_000))
            with pytest.raises(NetworkError):
                await broker.balances()
            return await broker.balances()
        finally:
            await broker.close()

    assert asyncio.run(scenario()) == START_BALANCES


def test_config_holds_variable_names_not_secrets(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()

    with pytest.raises(ValidationError, match="api_key_env"):
        CcxtBrokerConfig(api_key_env="aB3dE5gH7jK9-looks-like-a-key")
    with pytest.raises(ValidationError, match="outside configs"):
        CcxtBrokerConfig(secrets_file=configs / "secrets.json")
    with pytest.raises(APIChangedError, match="ccxt 4.5.90 installed"):
        CcxtBroker(CcxtBrokerConfig(expected_ccxt_version="0.0.1"), environ={})
    with pytest.raises(ConfigError, match="exchange_id"):
        CcxtBroker(CcxtBrokerConfig(exchange_id="no_such_exchange"), environ={})


def test_credentials_come_from_env_first_then_the_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"K": "file-key", "S": "file-secret"}))
    config = CcxtBrokerConfig(api_key_env="K", api_secret_env="S", secrets_file=secrets)
    broken = CcxtBrokerConfig(secrets_file=tmp_path / "missing.json")

    key, secret = load_credentials(config, {"K": "env-key"})

    assert key is not None and key.get_secret_value() == "env-key"
    assert secret is not None and secret.get_secret_value() == "file-secret"
    assert "file-secret" not in repr(secret)
    assert load_credentials(CcxtBrokerConfig(), {}) == (None, None)
    with pytest.raises(ConfigError, match="missing.json"):
        load_credentials(broken, {})


@pytest.mark.parametrize(
    "failures",
    [MockFailures(hidden_fill_delay_s=1.0), MockFailures(lose_order_posts=1)],
    ids=["timeout-hides-a-fill", "order-lost-before-the-venue"],
)
def test_retry_with_lookup_never_doubles_a_fill(
    mock: MockExchange, make_broker: BrokerFactory, failures: MockFailures
) -> None:
    request = market_buy(0.3)
    retry = RetryHandler(RetryParams(max_retries=3, base_delay_s=0.05, jitter=0.0))

    async def scenario() -> tuple[BrokerReport | Order, list[BrokerReport]]:
        broker = make_broker(timeout_ms=300)
        try:
            await broker.load_markets()
            mock.engine.set_failures(failures)
            outcome = await retry.place(
                "binance",
                lambda: broker.submit(request),
                lambda: broker.fetch_order(request.client_order_id, SYMBOL),
            )
            mock.engine.set_failures(MockFailures())
            return outcome, [await broker.sync({}), await broker.sync({})]
        finally:
            await broker.close()

    outcome, syncs = asyncio.run(scenario())

    venue_orders = mock.engine.orders_by_client_id(request.client_order_id)
    reported = [f for r in syncs for f in r.fills]
    if isinstance(outcome, BrokerReport):
        reported += outcome.fills
    assert len(venue_orders) == 1 and venue_orders[0]["status"] == "FILLED"
    assert sum(f.quantity for f in reported) == pytest.approx(0.3)
    assert len(reported) == 1
    assert mock.engine.balance("ETH")[0] == pytest.approx(10.3)
    if failures.hidden_fill_delay_s:
        assert isinstance(outcome, Order) and outcome.status is OrderStatus.FILLED
        assert len(syncs[0].fills) == 1
    else:
        assert isinstance(outcome, BrokerReport) and len(outcome.fills) == 1


def test_rate_limited_reads_are_retried_until_the_window_reopens(
    mock: MockExchange, make_broker: BrokerFactory, tmp_path: Path
) -> None:
    retry = RetryHandler(RetryParams(max_retries=8, base_delay_s=0.1, multiplier=1.5))
    price = mock.engine.price("ETHBTC")

    async def scenario() -> list[float]:
        broker = make_broker(journal=True)
        try:
            await broker.load_markets()
            mock.engine.set_failures(MockFailures(rate_limit=2, rate_limit_window_s=0.3))
            return [
                (await retry.run("binance", lambda: broker.fetch_ticker(SYMBOL))).last
                for _ in range(6)
            ]
        finally:
            await broker.close()

    started = time.perf_counter()
    prices = asyncio.run(scenario())
    elapsed = time.perf_counter() - started

    records = [r for r in read_logs(tmp_path / "logs") if r.operation == "fetch_ticker"]
    assert prices == pytest.approx([price] * 6)
    assert sum(r.event is BrokerEvent.RESPONSE for r in records) == 6
    throttled = [r for r in records if r.event is BrokerEvent.ERROR]
    assert throttled and {r.error_type for r in throttled} == {"RateLimitError"}
    assert 0.6 <= elapsed < 10


def test_planted_credentials_appear_in_no_log_error_or_journal(
    market: MockMarket, tmp_path: Path
) -> None:
    key = "PLANTED-KEY-5d1c0ffee0ddf00d"
    secret = "PLANTED-SECRET-9a7be11ec0de"
    errors: list[BaseException] = []
    journal = BrokerLogger(tmp_path / "logs")

    async def expect_failure(call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except FluxtradeError as error:
            errors.append(error)

    async def scenario(mock: MockExchange) -> None:
        config = CcxtBrokerConfig(
            name="planted",
            base_url=mock.url,
            api_key_env="PLANTED_KEY",
            api_secret_env="PLANTED_SECRET",
            timeout_ms=300,
            enable_rate_limit=False,
        )
        broker = CcxtBroker(
            config, environ={"PLANTED_KEY": key, "PLANTED_SECRET": secret}, journal=journal
        )
        impostor = CcxtBroker(
            config.model_copy(update={"name": "impostor"}),
            environ={"PLANTED_KEY": key, "PLANTED_SECRET": "wrong"},
            journal=journal,
        )
        retry = RetryHandler(RetryParams(max_retries=1, base_delay_s=0.01))
        try:
            await broker.submit(market_buy(0.1))
            await broker.submit(resting_buy(0.5, 0.05))
            await broker.sync({})
            for failures in (
                MockFailures(latency_s=0.5),
                MockFailures(rate_limit=0),
                MockFailures(unavailable_next=10),
                MockFailures(reject_insufficient_balance=True),
                MockFailures(restricted_symbols=frozenset({"ETHBTC"})),
                MockFailures(api_change=ApiChange(renamed={"executedQty": "x"})),
                MockFailures(clock_skew_ms=-60_000),
            ):
                mock.engine.set_failures(failures)
                await expect_failure(broker.submit(market_buy(0.1)))
                await expect_failure(retry.run("planted", broker.balances))
                mock.engine.set_failures(MockFailures())
            await expect_failure(impostor.balances())
            await expect_failure(impostor.submit(market_buy(0.1)))
        finally:
            await broker.close()
            await impostor.close()

    with (
        captured_logs() as captured,
        MockExchange([market], START_BALANCES, api_key=key, api_secret=secret) as mock,
    ):
        asyncio.run(scenario(mock))

    texts = captured + [
        "".join(traceback.format_exception(error)) + repr(error) for error in errors
    ]
    texts += [path.read_text() for path in (tmp_path / "logs").glob("*.jsonl")]
    assert sum("failed after" in line for line in captured) >= 12
    assert len(errors) >= 12
    assert {type(e).__name__ for e in errors} >= PROVOKED_ERRORS
    assert sum(r.event is BrokerEvent.ERROR for r in read_logs(tmp_path / "logs")) >= 12
    assert_secrets_absent(texts, key, secret)
