"""Fixtures for the broker-adapter tests: a loopback-only network, the mock exchange, brokers.

Every test here talks real HTTP to the mock on 127.0.0.1. The autouse guard makes any attempt to
reach another address fail loudly, so a mis-set URL can never send a request to a real venue.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.adapters.ccxt_broker import CcxtBroker, CcxtBrokerConfig
from actors.adapters.learning.logs import BrokerLogger
from actors.adapters.mock_exchange import MockExchange, MockMarket, eth_btc_market

API_KEY = "test-api-key-0001"
API_SECRET = "test-api-secret-0001"
KEY_ENV = "FLUXTRADE_TEST_API_KEY"
SECRET_ENV = "FLUXTRADE_TEST_API_SECRET"
START_BALANCES = {"BTC": 1.0, "ETH": 10.0}

BrokerFactory = Callable[..., CcxtBroker]


def _loopback(host: Any) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse DNS lookups and connections to anything but loopback, before a packet leaves."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not _loopback(address[0]):
            raise PermissionError(f"test network guard: {address[0]} is not loopback")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check((host,))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="session")
def market() -> MockMarket:
    """The bundled ETH/BTC 5-minute replay (parsed once per run)."""
    return eth_btc_market()


@pytest.fixture
def mock(market: MockMarket) -> Iterator[MockExchange]:
    """A fresh mock exchange per test; stopped afterwards whatever the test did."""
    exchange = MockExchange([market], START_BALANCES, api_key=API_KEY, api_secret=API_SECRET)
    with exchange:
        yield exchange


@pytest.fixture
def make_broker(mock: MockExchange, tmp_path: Path) -> BrokerFactory:
    """Builds CcxtBrokers against ``mock``; keyword arguments override config fields.

    ``environ=`` replaces the credentials environment; ``journal=True`` logs to ``tmp_path/logs``.
    """

    def build(
        *,
        environ: dict[str, str] | None = None,
        journal: bool = False,
        mock_exchange: MockExchange | None = None,
        **overrides: Any,
    ) -> CcxtBroker:
        target = mock_exchange or mock
        settings: dict[str, Any] = {
            "name": "binance",
            "base_url": target.url,
            "api_key_env": KEY_ENV,
            "api_secret_env": SECRET_ENV,
            "timeout_ms": 1000,
            "enable_rate_limit": False,
        }
        settings.update(overrides)
        return CcxtBroker(
            CcxtBrokerConfig(**settings),
            environ={KEY_ENV: API_KEY, SECRET_ENV: API_SECRET} if environ is None else environ,
            journal=BrokerLogger(tmp_path / "logs") if journal else None,
        )

    return build
