"""The error-translation contract of a ccxt broker, checked method by method.

For every broker method and every failure the mock can inject that applies to it, a fresh broker
(markets loaded, an open order in place) meets the failure and must raise the expected
:mod:`cycle.errors` type with the ccxt exception kept in ``__cause__``. A new method or a new
failure kind is one row below; the check itself is one function, :func:`check_error_contract`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import ccxt

from actors.adapters.ccxt_broker import CcxtBroker
from actors.adapters.mock_exchange import (
    ApiChange,
    DowntimeWindow,
    MockExchange,
    MockFailures,
)
from cycle.errors import (
    APIChangedError,
    AuthenticationError,
    BrokerTimeoutError,
    BrokerUnavailableError,
    FluxtradeError,
    InsufficientFundsError,
    InvalidOrderError,
    NetworkError,
    RateLimitError,
    RestrictedSymbolError,
)
from cycle.messages import OrderRequest, OrderType, Side, new_client_order_id
from tests.actors.adapters.conftest import API_KEY, API_SECRET, KEY_ENV, SECRET_ENV

SYMBOL = "ETH/BTC"

Call = Callable[[CcxtBroker, OrderRequest], Awaitable[object]]


def market_buy(quantity: float = 0.01) -> OrderRequest:
    return OrderRequest(
        client_order_id=new_client_order_id(),
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=quantity,
        cycle=1,
        strategy="contract",
        created_at=datetime.now(UTC),
    )


def resting_buy(quantity: float = 0.01, price: float = 0.05) -> OrderRequest:
    return market_buy(quantity).model_copy(
        update={"order_type": OrderType.LIMIT, "limit_price": price}
    )


# Each method gets the request of a resting order placed before the failure was injected.
METHODS: dict[str, Call] = {
    "load_markets": lambda broker, _: broker.load_markets(),
    "fetch_ticker": lambda broker, _: broker.fetch_ticker(SYMBOL),
    "fetch_order_book": lambda broker, _: broker.fetch_order_book(SYMBOL, 5),
    "fetch_ohlcv": lambda broker, _: broker.fetch_ohlcv(SYMBOL, "5m", limit=3),
    "ping": lambda broker, _: broker.ping(),
    "balances": lambda broker, _: broker.balances(),
    "open_orders": lambda broker, _: broker.open_orders(),
    "fetch_order": lambda broker, order: broker.fetch_order(order.client_order_id, SYMBOL),
    "cancel": lambda broker, order: broker.cancel(order.client_order_id, SYMBOL),
    "sync": lambda broker, _: broker.sync({}),
    "submit": lambda broker, _: broker.submit(market_buy()),
}
SIGNED = frozenset({"balances", "open_orders", "fetch_order", "cancel", "sync", "submit"})
ORDER_SHAPED = frozenset({"open_orders", "fetch_order", "cancel", "sync", "submit"})
EVERY_ENDPOINT = frozenset(
    {"ticker/24hr", "account", "order", "openOrders", "depth", "klines", "exchangeInfo", "time"}
)


@dataclass(frozen=True)
class FailureCase:
    """One injectable failure: how to inject it, where it applies, what must come out.

    ``cause`` is the ccxt exception that must sit in ``__cause__``; ``None`` means the adapter
    itself detected the failure (a changed API shape), so no vendor exception exists to chain.
    """

    failures: MockFailures | None
    expected: type[FluxtradeError]
    cause: type[BaseException] | None
    methods: frozenset[str] = frozenset(METHODS)
    wrong_secret: bool = False
    server_down: bool = False
    timeout_ms: int = 2000


CASES: dict[str, FailureCase] = {
    "client_timeout": FailureCase(
        MockFailures(latency_s=0.6), BrokerTimeoutError, ccxt.RequestTimeout, timeout_ms=300
    ),
    "http_429": FailureCase(MockFailures(rate_limit=0), RateLimitError, ccxt.DDoSProtection),
    "http_418_ban": FailureCase(
        MockFailures(rate_limit=0, ban_after=0), RateLimitError, ccxt.DDoSProtection
    ),
    "http_503": FailureCase(
        MockFailures(unavailable_next=1000), BrokerUnavailableError, ccxt.ExchangeNotAvailable
    ),
    "maintenance": FailureCase(
        MockFailures(downtime=(DowntimeWindow(start_s=0, end_s=3600, maintenance=True),)),
        BrokerUnavailableError,
        ccxt.OnMaintenance,
    ),
    "server_down": FailureCase(
        None, BrokerUnavailableError, ccxt.ExchangeNotAvailable, server_down=True
    ),
    "clock_skew": FailureCase(
        MockFailures(clock_skew_ms=-60_000), NetworkError, ccxt.InvalidNonce, SIGNED
    ),
    "bad_signature": FailureCase(
        None, AuthenticationError, ccxt.AuthenticationError, SIGNED, wrong_secret=True
    ),
    "insufficient_funds": FailureCase(
        MockFailures(reject_insufficient_balance=True),
        InsufficientFundsError,
        ccxt.InsufficientFunds,
        frozenset({"submit"}),
    ),
    "invalid_order": FailureCase(
        MockFailures(reject_invalid_order=True),
        InvalidOrderError,
        ccxt.InvalidOrder,
        frozenset({"submit"}),
    ),
    "restricted_symbol": FailureCase(
        MockFailures(restricted_symbols=frozenset({"ETHBTC"})),
        RestrictedSymbolError,
        ccxt.InvalidOrder,
        frozenset({"submit"}),
    ),
    "gateway_timeout_on_order": FailureCase(
        MockFailures(lose_order_posts=1),
        BrokerTimeoutError,
        ccxt.RequestTimeout,
        frozenset({"submit"}),
    ),
    "api_changed": FailureCase(
        MockFailures(
            api_change=ApiChange(
                endpoints=EVERY_ENDPOINT,
                renamed={"executedQty": "qtyExecuted", "lastPrice": "last", "balances": "assets"},
            )
        ),
        APIChangedError,
        None,
        ORDER_SHAPED | {"fetch_ticker", "balances"},
    ),
}


def check_error_contract(mock: MockExchange, make_broker: Callable[..., CcxtBroker]) -> int:
    """Assert the contract for every (method, failure) pair; returns how many pairs were checked.

    All mismatches are collected and reported together, so one run shows the whole gap.
    """
    problems: list[str] = []

    async def check_one(method: str, kind: str, case: FailureCase, primer: CcxtBroker) -> None:
        mock.engine.set_failures(MockFailures())
        resting = (await primer.submit(resting_buy())).orders[0]
        environ = {
            KEY_ENV: API_KEY,
            SECRET_ENV: "not-the-secret" if case.wrong_secret else API_SECRET,
        }
        broker = make_broker(environ=environ, timeout_ms=case.timeout_ms)
        try:
            await broker.load_markets()
            broker.track(resting)
            if case.failures is not None:
                mock.engine.set_failures(case.failures)
            if case.server_down:
                mock.stop()
            try:
                await METHODS[method](broker, resting.request)
            except FluxtradeError as error:
                cause = error.__cause__
                if type(error) is not case.expected:
                    problems.append(
                        f"{method}/{kind}: {type(error).__name__} instead of "
                        f"{case.expected.__name__} ({error})"
                    )
                elif case.cause is not None and not isinstance(cause, case.cause):
                    problems.append(
                        f"{method}/{kind}: cause {type(cause).__name__}, "
                        f"expected {case.cause.__name__}"
                    )
            else:
                problems.append(f"{method}/{kind}: raised nothing")
        finally:
            if case.server_down:
                mock.start()
            mock.engine.set_failures(MockFailures())
            await broker.close()

    async def check_all() -> int:
        primer = make_broker()
        checked = 0
        try:
            for kind, case in CASES.items():
                for method in METHODS:
                    if method in case.methods:
                        await check_one(method, kind, case, primer)
                        checked += 1
        finally:
            await primer.close()
        return checked

    checked = asyncio.run(check_all())
    assert not problems, "error contract broken:\n" + "\n".join(problems)
    return checked
