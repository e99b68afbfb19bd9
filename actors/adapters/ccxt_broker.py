"""The :class:`Broker` contract over ``ccxt.async_support``: real venues, one adapter.

Three rules shape this module:

* **Vendor errors stop here.** Every ccxt exception is translated by one table
  (:data:`ERROR_TABLE`, :func:`translate_error`) into the most specific :mod:`cycle.errors` type and
  raised ``from`` the original, so policy upstream is decided by type and the cause is kept.
* **An order is sent once.** ccxt's own retries are off for placement (``maxRetriesOnFailure=0``):
  after a timeout the venue may have the order, and only a lookup by client order id may decide to
  re-send (see :class:`actors.adapters.learning.RetryHandler`). An order is tracked *before* it is
  sent, so a fill hidden by a timeout still reaches the desk through :meth:`CcxtBroker.sync`, once.
* **A changed API is an error, not a default.** ccxt reads a missing field as a default (a renamed
  ``executedQty`` reads as ``"0"``, an order that never filled). Raw responses are compared with the
  shapes this adapter was written against and a breaking difference raises
  :class:`APIChangedError` naming what changed.

Credentials come only from environment variables (or a secrets file outside ``configs/``) named in
the config; they are never logged, journaled or put in an error message.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
from loguru import logger
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    NonNegativeFloat,
    PositiveFloat,
    SecretStr,
    ValidationError,
)

from actors.adapters.broker import Broker
from actors.adapters.learning.api_monitor import APIMonitor, ResponseShape, ShapeDiff
from actors.adapters.learning.logs import BrokerLogger
from actors.adapters.limiter import Limiter
from cycle.config import CcxtBrokerConfig
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
from cycle.messages import (
    Bar,
    BookLevel,
    BrokerReport,
    Fill,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    utc_now,
)

R = TypeVar("R")
P = TypeVar("P")

MAX_ERROR_TEXT = 400

# ---------------------------------------------------------------- error translation


@dataclass(frozen=True)
class ErrorRule:
    """One row of the translation table: a vendor type (and optional message phrases) -> ours."""

    vendor: type[BaseException] | tuple[type[BaseException], ...]
    error: type[FluxtradeError]
    phrases: tuple[str, ...] = ()

    def matches(self, error: BaseException, lowered: str) -> bool:
        return isinstance(error, self.vendor) and (
            not self.phrases or any(phrase in lowered for phrase in self.phrases)
        )


RESTRICTED_PHRASES = (
    "symbol is restricted",
    "symbol is not permitted",
    "restricted for this account",
    "restricted for self account",
)

# First match wins, so a subclass must come before its parent. ccxt's tree is not ours: its
# DDoSProtection, RateLimitExceeded, ExchangeNotAvailable, RequestTimeout and InvalidNonce are
# siblings under NetworkError < OperationFailed, and an HTTP 429 arrives as DDoSProtection.
ERROR_TABLE: tuple[ErrorRule, ...] = (
    # KYC / jurisdiction refusals: ccxt's exact-message entries for these were mangled by its
    # transpiler ("self account"), so Binance's real text arrives as a plain InvalidOrder.
    ErrorRule(
        (ccxt.InvalidOrder, ccxt.PermissionDenied, ccxt.BadRequest),
        RestrictedSymbolError,
        RESTRICTED_PHRASES,
    ),
    ErrorRule((ccxt.AccountSuspended, ccxt.RestrictedLocation), RestrictedSymbolError),
    ErrorRule(ccxt.RequestTimeout, BrokerTimeoutError),
    ErrorRule((ccxt.DDoSProtection, ccxt.RateLimitExceeded), RateLimitError),
    ErrorRule(ccxt.ExchangeNotAvailable, BrokerUnavailableError),
    ErrorRule(ccxt.NetworkError, NetworkError),
    ErrorRule(ccxt.BadResponse, APIChangedError),
    # What is left of OperationFailed is the venue's internal error (-1000, -1001, CancelPending).
    ErrorRule(ccxt.OperationFailed, BrokerUnavailableError),
    ErrorRule(ccxt.AuthenticationError, AuthenticationError),
    ErrorRule(ccxt.InsufficientFunds, InsufficientFundsError),
    ErrorRule((ccxt.InvalidOrder, ccxt.BadRequest, ccxt.MarketClosed), InvalidOrderError),
    ErrorRule((ccxt.NotSupported, ccxt.ArgumentsRequired, ccxt.InvalidProxySettings), ConfigError),
    # A parser that trips on a missing key or a wrong type met a shape it did not expect.
    ErrorRule((KeyError, TypeError, ValueError, IndexError, AttributeError), APIChangedError),
    # Any other venue refusal: retrying will not fix what we cannot classify.
    ErrorRule(BaseException, OperationalError),
)


def translate_error(
    error: BaseException, context: str, redact: Callable[[str], str] = lambda text: text
) -> FluxtradeError:
    """The fluxtrade error for a vendor exception, by the first matching row of ERROR_TABLE.

    Args:
        error: What ccxt (or its parser) raised.
        context: Broker and operation, prefixed to the message.
        redact: Removes credentials from the message (the venue's text is not ours to trust).

    Returns:
        The translated error; the caller raises it ``from error``.
    """
    text = str(error)
    lowered = text.lower()
    rule = next(rule for rule in ERROR_TABLE if rule.matches(error, lowered))
    return rule.error(f"{context}: {type(error).__name__}: {redact(text[:MAX_ERROR_TEXT])}")


# ---------------------------------------------------------------- expected shapes

BINANCE_ORDER_STATUSES = frozenset(
    {
        "NEW",
        "PARTIALLY_FILLED",
        "FILLED",
        "CANCELED",
        "PENDING_CANCEL",
        "REJECTED",
        "EXPIRED",
        "EXPIRED_IN_MATCH",
    }
)

BINANCE_SHAPES: dict[str, ResponseShape] = {
    "order": ResponseShape(
        kind="order",
        required=frozenset(
            {
                "symbol",
                "orderId",
                "clientOrderId",
                "price",
                "origQty",
                "executedQty",
                "cummulativeQuoteQty",
                "status",
                "type",
                "side",
            }
        ),
        known=frozenset(
            {
                "orderListId",
                "origClientOrderId",
                "transactTime",
                "timeInForce",
                "stopPrice",
                "icebergQty",
                "time",
                "updateTime",
                "isWorking",
                "workingTime",
                "origQuoteOrderQty",
                "fills",
                "selfTradePreventionMode",
                "preventedMatchId",
                "preventedQuantity",
                "usedSor",
                "workingFloor",
                "trailingDelta",
                "trailingTime",
                "strategyId",
                "strategyType",
            }
        ),
        enums={"status": BINANCE_ORDER_STATUSES},
    ),
    "ticker": ResponseShape(
        kind="ticker",
        required=frozenset({"symbol", "lastPrice", "bidPrice", "askPrice", "volume", "closeTime"}),
        known=frozenset(
            {
                "priceChange",
                "priceChangePercent",
                "weightedAvgPrice",
                "prevClosePrice",
                "lastQty",
                "bidQty",
                "askQty",
                "openPrice",
                "highPrice",
                "lowPrice",
                "quoteVolume",
                "openTime",
                "firstId",
                "lastId",
                "count",
            }
        ),
    ),
    "account": ResponseShape(
        kind="account",
        required=frozenset({"balances"}),
        known=frozenset(
            {
                "makerCommission",
                "takerCommission",
                "buyerCommission",
                "sellerCommission",
                "commissionRates",
                "canTrade",
                "canWithdraw",
                "canDeposit",
                "brokered",
                "requireSelfTradePrevention",
                "preventSor",
                "updateTime",
                "accountType",
                "permissions",
                "uid",
            }
        ),
    ),
}

SHAPES_BY_EXCHANGE: dict[str, dict[str, ResponseShape]] = {"binance": BINANCE_SHAPES}

UNIFIED_ORDER_FIELDS = ("id", "clientOrderId", "symbol", "status", "side", "type", "amount")
UNIFIED_STATUSES = frozenset({"open", "closed", "canceled", "canceling", "expired", "rejected"})


# ---------------------------------------------------------------- configuration


def load_credentials(
    config: CcxtBrokerConfig, environ: Mapping[str, str]
) -> tuple[SecretStr | None, SecretStr | None]:
    """API key and secret from the environment, else from the secrets file; ``None`` if absent.

    Raises:
        ConfigError: The secrets file is missing or is not a JSON object (its path is named,
            never its content).
    """
    values: dict[str, str] = {}
    if config.secrets_file is not None:
        try:
            loaded = json.loads(config.secrets_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"secrets_file: cannot read {config.secrets_file} as JSON ({type(error).__name__})"
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"secrets_file: {config.secrets_file} is not a JSON object")
        values.update({str(k): str(v) for k, v in loaded.items()})
    names = (config.api_key_env, config.api_secret_env)
    values.update({name: environ[name] for name in names if name in environ})
    key, secret = values.get(config.api_key_env), values.get(config.api_secret_env)
    return (SecretStr(key) if key else None, SecretStr(secret) if secret else None)


class Ticker(BaseModel):
    """Last, best bid and best ask of a symbol."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    timestamp: AwareDatetime
    last: PositiveFloat
    bid: PositiveFloat | None
    ask: PositiveFloat | None
    base_volume: NonNegativeFloat | None


@dataclass
class _Tracked:
    """What the desk has been told about an order it sent: the base for fill deltas."""

    request: OrderRequest
    filled: float = 0.0
    cost: float = 0.0
    fee: float = 0.0
    fills: int = 0
    status: OrderStatus = OrderStatus.NEW
    settled_at: float = 0.0


# ---------------------------------------------------------------- the broker


class CcxtBroker(Broker):
    """One venue through ccxt; symbols are ccxt unified symbols (``ETH/BTC``).

    Args:
        config: The venue and how to reach it.
        environ: Where credentials are read (``os.environ`` by default).
        journal: JSON-lines log of orders, fills, responses and errors, if wanted.
        monitor: Shape checker; by default one with the shapes known for ``exchange_id``.
        clock: Timestamps of orders and fills.
        limiter: The pool's shared rate limiter; when given it replaces ccxt's per-instance
            throttle, so N members of one pool stay under the venue's rate together.
    """

    def __init__(
        self,
        config: CcxtBrokerConfig,
        *,
        environ: Mapping[str, str] | None = None,
        journal: BrokerLogger | None = None,
        monitor: APIMonitor | None = None,
        clock: Callable[[], datetime] = utc_now,
        limiter: Limiter | None = None,
    ) -> None:
        self.name = config.name
        self._limiter = limiter
        self.config = config
        self._log = logger.bind(broker=config.name)
        if (
            config.expected_ccxt_version is not None
            and ccxt.__version__ != config.expected_ccxt_version
        ):
            raise APIChangedError(
                f"{self.name}: ccxt {ccxt.__version__} installed, adapter checked against "
                f"{config.expected_ccxt_version}; re-run the adapter tests before trusting it"
            )
        key, secret = load_credentials(config, os.environ if environ is None else environ)
        self._secrets = tuple(s.get_secret_value() for s in (key, secret) if s is not None)
        self._exchange = self._build_exchange(key, secret)
        self._journal = journal
        self._monitor = monitor or APIMonitor(SHAPES_BY_EXCHANGE.get(config.exchange_id, {}))
        self._clock = clock
        self._tracked: dict[str, _Tracked] = {}
        self._reference: dict[str, float] = {}

    def _build_exchange(
        self, key: SecretStr | None, secret: SecretStr | None
    ) -> ccxt_async.Exchange:
        exchange_class = getattr(ccxt_async, self.config.exchange_id, None)
        if not isinstance(exchange_class, type):
            raise ConfigError(f"exchange_id: ccxt has no exchange {self.config.exchange_id!r}")
        # ccxt's stdlib logger prints request headers (the API key) at DEBUG; a root handler that
        # forwards stdlib logging to loguru would leak it, so this instance's logger says nothing.
        quiet = logging.getLogger(f"fluxtrade.ccxt.{self.name}")
        quiet.propagate = False
        quiet.disabled = True
        settings: dict[str, Any] = {
            "enableRateLimit": self.config.enable_rate_limit,
            "timeout": self.config.timeout_ms,
            "logger": quiet,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "adjustForTimeDifference": self.config.adjust_for_time_difference,
                "recvWindow": self.config.recv_window_ms,
                "maxRetriesOnFailure": self.config.read_retries,
                "fetchOpenOrders": {"warnWithoutSymbol": False},
            },
        }
        if key is not None and secret is not None:
            settings["apiKey"] = key.get_secret_value()
            settings["secret"] = secret.get_secret_value()
        exchange: ccxt_async.Exchange = exchange_class(settings)
        if self.config.sandbox:
            exchange.set_sandbox_mode(True)
        if self.config.base_url is not None:
            # Every API section is pointed at the override, and sections that are not plain URLs
            # are dropped, so nothing can leave for the real venue by a path we did not think of.
            base = self.config.base_url
            exchange.urls["api"] = {
                section: re.sub(r"^https?://[^/]+", base, url)
                for section, url in exchange.urls["api"].items()
                if isinstance(url, str)
            }
            if base.startswith("http://"):
                # Every URL is now plain HTTP, so there is no TLS: skip loading a CA bundle for
                # each session (25 ms) and ccxt's 250 ms wait on close for TLS connections to drain.
                exchange.ssl_context = False
                exchange.timeout_on_exit = 0
        if self._limiter is not None:
            limiter = self._limiter

            async def throttle(cost: float | None = None) -> None:
                await limiter.acquire()

            exchange.throttle = throttle
            exchange.enableRateLimit = True
        return exchange

    # ------------------------------------------------------------ Broker contract

    async def submit(self, request: OrderRequest) -> BrokerReport:
        """Send the order once with its client order id; see :class:`Broker`."""
        await self._ensure_markets()
        tracked = self._tracked.get(request.client_order_id)
        if tracked is None or tracked.request != request:
            tracked = self._tracked[request.client_order_id] = _Tracked(request)
        params = {"clientOrderId": request.client_order_id, "maxRetriesOnFailure": 0}

        async def create() -> dict[str, Any]:
            self._check_precision(request)
            return await self._exchange.create_order(
                request.symbol,
                request.order_type.value,
                request.side.value,
                request.quantity,
                request.limit_price,
                params,
            )

        def read(raw: dict[str, Any], latency: float) -> BrokerReport:
            order, fills = self._update(tracked, raw, latency, "taker")
            return BrokerReport(orders=(order,), fills=tuple(fills))

        try:
            report = await self._call(
                "submit",
                create,
                read,
                client_order_id=request.client_order_id,
                fee_of=lambda report: sum(fill.fee for fill in report.fills),
            )
        except (InvalidOrderError, InsufficientFundsError, AuthenticationError, ConfigError):
            # Refused before it was placed: the venue holds no such order, nothing to follow.
            del self._tracked[request.client_order_id]
            raise
        finally:
            tracked.settled_at = time.monotonic()
        self._journal_report(report)
        self._log.info(
            "{} {} {} {}: {}",
            request.client_order_id,
            request.side.value,
            request.quantity,
            request.symbol,
            report.orders[0].status.value,
        )
        return report

    async def sync(self, bars: dict[str, Bar]) -> BrokerReport:
        """Poll the venue for tracked open orders; one Fill per change of filled quantity.

        The bars only set the reference prices of later market-order fills. Orders that left the
        open list are fetched once more for their final state. An order the venue has not seen (a
        placement that timed out) is kept until it can no longer land: the venue drops a signed
        request older than ``recv_window_ms``. Re-sending it tracks it again.
        """
        self._reference.update({symbol: bar.close for symbol, bar in bars.items()})
        live = [t for t in self._tracked.values() if not t.status.terminal]
        if not live:
            return BrokerReport()
        await self._ensure_markets()
        open_by_id, open_latency = await self._call(
            "sync",
            self._exchange.fetch_open_orders,
            lambda raws, latency: (
                {raw.get("clientOrderId"): self._checked(raw) for raw in raws},
                latency,
            ),
        )
        orders: list[Order] = []
        fills: list[Fill] = []
        for tracked in live:
            client_id = tracked.request.client_order_id
            raw, latency = open_by_id.get(client_id), open_latency
            if raw is None:
                raw, latency = await self._call(
                    "sync",
                    lambda t=tracked: self._fetch_raw(t.request.client_order_id, t.request.symbol),
                    lambda found, ms: (None if found is None else self._checked(found), ms),
                    client_order_id=client_id,
                )
            if raw is None:
                if time.monotonic() - tracked.settled_at > self.config.recv_window_ms / 1000:
                    self._log.warning("{} never reached the venue; no longer tracked", client_id)
                    del self._tracked[client_id]
                continue
            before = (tracked.status, tracked.filled)
            liquidity = "maker" if tracked.request.order_type is OrderType.LIMIT else "taker"
            order, new_fills = self._update(tracked, raw, latency, liquidity)
            if (order.status, order.filled_quantity) != before:
                orders.append(order)
                fills += new_fills
        report = BrokerReport(orders=tuple(orders), fills=tuple(fills))
        self._journal_report(report)
        return report

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        """The venue's view of an order, or ``None`` if it never saw it.

        A lookup reports no fills: fills reach the desk only through submit, sync and cancel, so a
        fill found by a lookup after a timeout is reported once, by the next sync.
        """
        await self._ensure_markets()
        return await self._call(
            "fetch_order",
            lambda: self._fetch_raw(client_order_id, symbol),
            lambda raw, _: None if raw is None else self._view(raw),
            client_order_id=client_order_id,
        )

    async def cancel(self, client_order_id: str, symbol: str) -> BrokerReport:
        """Cancel an open order; a terminal order is reported unchanged, an unknown one raises."""
        await self._ensure_markets()
        tracked = self._tracked.get(client_order_id)

        async def cancel_or_look_up() -> dict[str, Any] | None:
            try:
                return await self._exchange.cancel_order(
                    None, symbol, {"origClientOrderId": client_order_id}
                )
            except ccxt.OrderNotFound:
                return await self._fetch_raw(client_order_id, symbol)

        def read(raw: dict[str, Any] | None, latency: float) -> BrokerReport | None:
            if raw is None:
                return None
            if tracked is None:
                return BrokerReport(orders=(self._view(raw),))
            order, fills = self._update(tracked, raw, latency, "maker")
            return BrokerReport(orders=(order,), fills=tuple(fills))

        report = await self._call(
            "cancel", cancel_or_look_up, read, client_order_id=client_order_id
        )
        if report is None:
            raise InvalidOrderError(
                f"{self.name} cancel: order {client_order_id} on {symbol} is unknown to the venue"
            )
        self._journal_report(report)
        return report

    async def open_orders(self) -> list[Order]:
        """Open orders at the venue, including ones this process did not send."""
        await self._ensure_markets()
        return await self._call(
            "open_orders",
            self._exchange.fetch_open_orders,
            lambda raws, _: [order for order in map(self._view_or_skip, raws) if order],
        )

    async def balances(self) -> dict[str, float]:
        """Free balance per asset."""
        await self._ensure_markets()
        return await self._call("balances", self._exchange.fetch_balance, self._free_balances)

    async def ping(self) -> float:
        """Round trip of the venue's time endpoint, in milliseconds."""
        return await self._call("ping", self._exchange.fetch_time, lambda _, latency: latency)

    async def close(self) -> None:
        """Close ccxt's HTTP session (an unclosed one leaks sockets and warns)."""
        await self._exchange.close()

    def api_changes(self) -> list[ShapeDiff]:
        return self._monitor.changes(self.name)

    def track(self, order: Order) -> None:
        """Follow an order the desk already knows (after a restart), from what it knows.

        Fill deltas are then reported beyond ``order.filled_quantity``, so reconciling open orders
        from the ledger neither loses nor repeats fills.
        """
        self._tracked[order.client_order_id] = _Tracked(
            request=order.request,
            filled=order.filled_quantity,
            cost=order.filled_quantity * order.average_price,
            fee=order.fees,
            status=order.status,
        )

    # ------------------------------------------------------------ market data

    async def load_markets(self) -> list[str]:
        """(Re)load the venue's markets; returns the unified symbols."""
        return await self._call(
            "load_markets",
            lambda: self._exchange.load_markets(reload=True),
            lambda markets, _: sorted(markets),
        )

    async def fetch_ticker(self, symbol: str) -> Ticker:
        """Last, bid and ask now; raises APIChangedError rather than return a price of None."""
        await self._ensure_markets()
        return await self._call(
            "fetch_ticker",
            lambda: self._exchange.fetch_ticker(symbol),
            lambda raw, _: self._ticker(symbol, raw),
        )

    async def fetch_order_book(self, symbol: str, limit: int = 20) -> OrderBook:
        """The venue's top ``limit`` levels per side, as an observed (not synthetic) book."""
        await self._ensure_markets()
        return await self._call(
            "fetch_order_book",
            lambda: self._exchange.fetch_order_book(symbol, limit),
            lambda raw, _: self._order_book(symbol, raw),
        )

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "5m",
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Bar]:
        """Candles from ``since`` (aware) or the latest ones; timestamps are bar open times."""
        await self._ensure_markets()
        since_ms = None if since is None else int(since.timestamp() * 1000)
        return await self._call(
            "fetch_ohlcv",
            lambda: self._exchange.fetch_ohlcv(symbol, timeframe, since_ms, limit),
            lambda rows, _: self._bars(symbol, rows),
        )

    # ------------------------------------------------------------ internals

    async def _call(
        self,
        operation: str,
        call: Callable[[], Awaitable[R]],
        read: Callable[[R, float], P],
        *,
        client_order_id: str | None = None,
        fee_of: Callable[[P], float] | None = None,
    ) -> P:
        """Run one venue call and read its answer: time it, translate a failure, journal it.

        Reading happens here, so an answer the adapter cannot read (APIChangedError) is journaled
        as the call's failure like any other, not as a success followed by a mystery.
        """
        started = time.perf_counter()
        latency: float | None = None
        try:
            raw = await call()
            latency = (time.perf_counter() - started) * 1000
            result = read(raw, latency)
        except Exception as error:
            if latency is None:
                latency = (time.perf_counter() - started) * 1000
            translated = (
                error
                if isinstance(error, FluxtradeError)
                else translate_error(error, f"{self.name} {operation}", self._redact)
            )
            if isinstance(error, ccxt.InvalidNonce):
                await self._resync_clock()
            self._log.warning("{} failed after {:.0f} ms: {}", operation, latency, translated)
            if self._journal is not None:
                self._journal.error(
                    self.name, operation, latency, translated, client_order_id=client_order_id
                )
            if translated is error:
                raise
            raise translated from error
        self._log.debug("{} ok in {:.1f} ms", operation, latency)
        if self._journal is not None:
            self._journal.response(
                self.name,
                operation,
                latency,
                fee=fee_of(result) if fee_of is not None else 0.0,
                client_order_id=client_order_id,
            )
        return result

    async def _ensure_markets(self) -> None:
        if not self._exchange.markets:
            await self._call("load_markets", self._exchange.load_markets, lambda _, __: None)

    async def _resync_clock(self) -> None:
        """After a timestamp rejection, re-measure the venue's clock so a retry can pass."""
        try:
            await self._exchange.load_time_difference()
        except ccxt.BaseError as error:
            self._log.warning("clock resync failed: {}", type(error).__name__)

    async def _fetch_raw(self, client_order_id: str, symbol: str) -> dict[str, Any] | None:
        try:
            return await self._exchange.fetch_order(
                None, symbol, {"origClientOrderId": client_order_id}
            )
        except ccxt.OrderNotFound:
            return None

    def _check_precision(self, request: OrderRequest) -> None:
        """Refuse sizes and prices the venue would silently truncate to its step and tick."""
        checks = [("quantity", request.quantity, self._exchange.amount_to_precision)]
        if request.limit_price is not None:
            checks.append(("limit_price", request.limit_price, self._exchange.price_to_precision))
        for field, value, to_precision in checks:
            sent = float(to_precision(request.symbol, value))
            if not math.isclose(sent, value, rel_tol=1e-9):
                raise InvalidOrderError(
                    f"{self.name} submit: {field} {value} of {request.client_order_id} is off "
                    f"the venue's grid for {request.symbol}; it would be sent as {sent}"
                )

    def _check_raw(self, kind: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            raise APIChangedError(f"{self.name}: {kind} response is not an object")
        diff = self._monitor.check(self.name, kind, payload)
        if diff.breaking:
            raise APIChangedError(f"{self.name}: {diff.describe()}")

    def _checked(self, raw: dict[str, Any]) -> dict[str, Any]:
        """An order response, once its shape passed the checks (before any state changes)."""
        self._check_order(raw)
        return raw

    def _check_order(self, raw: dict[str, Any]) -> None:
        self._check_raw("order", raw.get("info"))
        absent = [name for name in UNIFIED_ORDER_FIELDS if raw.get(name) is None]
        if absent:
            raise APIChangedError(f"{self.name}: order without {', '.join(absent)}")
        if raw["status"] not in UNIFIED_STATUSES:
            raise APIChangedError(f"{self.name}: order status {raw['status']!r} is unknown")

    def _status(self, raw: dict[str, Any], filled: float) -> OrderStatus:
        status = raw["status"]
        if status in ("open", "canceling"):
            return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
        if status == "closed":
            return OrderStatus.FILLED
        if status == "rejected":
            return OrderStatus.REJECTED
        return OrderStatus.CANCELLED

    def _quantities(self, raw: dict[str, Any]) -> tuple[float, float, float | None]:
        """(filled, quote cost, venue fee in quote or None) of a checked ccxt order."""
        filled = float(raw.get("filled") or 0.0)
        cost = raw.get("cost")
        cost = float(cost) if cost is not None else filled * float(raw.get("average") or 0.0)
        market = self._exchange.market(raw["symbol"])
        fees = raw.get("fees") or ([raw["fee"]] if raw.get("fee") else [])
        venue_fee: float | None = 0.0 if fees else None
        for fee in fees:
            amount, currency = fee.get("cost"), fee.get("currency")
            if amount is None or currency not in (market["quote"], market["base"]):
                venue_fee = None
                break
            price = cost / filled if filled else 0.0
            venue_fee = (venue_fee or 0.0) + float(amount) * (
                1.0 if currency == market["quote"] else price
            )
        return filled, cost, venue_fee

    def _update(
        self,
        tracked: _Tracked,
        raw: dict[str, Any],
        latency_ms: float,
        liquidity: Literal["maker", "taker"],
    ) -> tuple[Order, list[Fill]]:
        """The order after a venue response, and a Fill for filled quantity not yet reported."""
        self._check_order(raw)
        filled, cost, venue_fee = self._quantities(raw)
        request = tracked.request
        fills: list[Fill] = []
        delta = filled - tracked.filled
        if delta > request.quantity * 1e-9:
            delta_cost = cost - tracked.cost
            price = delta_cost / delta
            rate = self.config.maker_fee if liquidity == "maker" else self.config.taker_fee
            fee = max(venue_fee - tracked.fee, 0.0) if venue_fee is not None else delta_cost * rate
            reference = request.limit_price or self._reference.get(request.symbol, price)
            fills.append(
                self._parsed(
                    "fill",
                    lambda: Fill(
                        fill_id=f"{self.name}:{raw['id']}:{tracked.fills + 1}",
                        client_order_id=request.client_order_id,
                        symbol=request.symbol,
                        side=request.side,
                        quantity=delta,
                        price=price,
                        fee=fee,
                        broker=self.name,
                        liquidity=liquidity,
                        reference_price=reference,
                        slippage_bps=request.side.sign * (price - reference) / reference * 1e4,
                        latency_ms=latency_ms,
                        timestamp=self._clock(),
                    ),
                )
            )
            tracked.fills += 1
            tracked.filled, tracked.cost, tracked.fee = filled, cost, tracked.fee + fee
        tracked.status = self._status(raw, filled)
        order = self._parsed(
            "order",
            lambda: Order(
                request=request,
                status=tracked.status,
                broker=self.name,
                broker_order_id=str(raw["id"]),
                filled_quantity=filled,
                average_price=cost / filled if filled else 0.0,
                fees=tracked.fee,
                updated_at=self._clock(),
            ),
        )
        return order, fills

    def _view(self, raw: dict[str, Any]) -> Order:
        """The venue's view of an order, without touching what the desk has been told."""
        self._check_order(raw)
        filled, cost, venue_fee = self._quantities(raw)
        tracked = self._tracked.get(raw["clientOrderId"])
        request = tracked.request if tracked else self._reconstruct(raw)
        rate = (
            self.config.maker_fee
            if request.order_type is OrderType.LIMIT
            else self.config.taker_fee
        )
        return self._parsed(
            "order",
            lambda: Order(
                request=request,
                status=self._status(raw, filled),
                broker=self.name,
                broker_order_id=str(raw["id"]),
                filled_quantity=filled,
                average_price=cost / filled if filled else 0.0,
                fees=venue_fee if venue_fee is not None else cost * rate,
                updated_at=self._clock(),
            ),
        )

    def _view_or_skip(self, raw: dict[str, Any]) -> Order | None:
        """An open order as an Order, or None (logged) for kinds fluxtrade does not model."""
        if raw.get("type") not in {t.value for t in OrderType}:
            self._log.warning("open order of type {!r} skipped", raw.get("type"))
            return None
        return self._view(raw)

    def _reconstruct(self, raw: dict[str, Any]) -> OrderRequest:
        """A request for an order this process did not send (another process, before a restart)."""
        order_type = OrderType(raw["type"])
        stamp = raw.get("timestamp")
        return self._parsed(
            "order",
            lambda: OrderRequest(
                client_order_id=raw["clientOrderId"],
                symbol=raw["symbol"],
                side=Side(raw["side"]),
                order_type=order_type,
                quantity=raw["amount"],
                limit_price=raw.get("price") if order_type is OrderType.LIMIT else None,
                cycle=0,
                strategy="external",
                reason="reconstructed from the venue; not sent by this process",
                created_at=self._clock() if stamp is None else _from_ms(stamp),
            ),
        )

    def _free_balances(self, balance: dict[str, Any], _: float) -> dict[str, float]:
        self._check_raw("account", balance.get("info"))
        free = balance.get("free")
        if not isinstance(free, dict):
            raise APIChangedError(f"{self.name} balances: no 'free' balances in the response")
        return self._parsed(
            "balances",
            lambda: {asset: float(value) for asset, value in free.items() if value is not None},
        )

    def _ticker(self, symbol: str, raw: dict[str, Any]) -> Ticker:
        self._check_raw("ticker", raw.get("info"))
        if raw.get("last") is None or raw.get("timestamp") is None:
            raise APIChangedError(f"{self.name} fetch_ticker: no last price or time for {symbol}")
        return self._parsed(
            "ticker",
            lambda: Ticker(
                symbol=symbol,
                timestamp=_from_ms(raw["timestamp"]),
                last=raw["last"],
                bid=raw.get("bid"),
                ask=raw.get("ask"),
                base_volume=raw.get("baseVolume"),
            ),
        )

    def _order_book(self, symbol: str, raw: dict[str, Any]) -> OrderBook:
        stamp = raw.get("timestamp")
        return self._parsed(
            "order book",
            lambda: OrderBook(
                symbol=symbol,
                timestamp=self._clock() if stamp is None else _from_ms(stamp),
                bids=tuple(BookLevel(price=p, quantity=q) for p, q, *_ in raw["bids"]),
                asks=tuple(BookLevel(price=p, quantity=q) for p, q, *_ in raw["asks"]),
                synthetic=False,
            ),
        )

    def _bars(self, symbol: str, rows: list[list[Any]]) -> list[Bar]:
        return self._parsed(
            "candles",
            lambda: [
                Bar(
                    symbol=symbol,
                    timestamp=_from_ms(stamp),
                    open=o,
                    high=h,
                    low=low,
                    close=c,
                    volume=v,
                )
                for stamp, o, h, low, c, v, *_ in rows
            ],
        )

    def _parsed(self, what: str, build: Callable[[], R]) -> R:
        """Build a message from venue values; values it cannot hold mean the API changed."""
        try:
            return build()
        except (ValidationError, TypeError, ValueError, KeyError) as error:
            raise APIChangedError(
                f"{self.name}: {what} cannot be built from the venue's response "
                f"({type(error).__name__})"
            ) from error

    def _journal_report(self, report: BrokerReport) -> None:
        if self._journal is None:
            return
        for order in report.orders:
            self._journal.order(self.name, order)
        for fill in report.fills:
            self._journal.fill(self.name, fill)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _from_ms(stamp: int | float) -> datetime:
    return datetime.fromtimestamp(stamp / 1000, UTC)
