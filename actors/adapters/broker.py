"""The broker contract every adapter implements (paper, ccxt, anything later).

All methods are async because broker I/O is: pool members are async actors that keep several orders
in flight. A broker never invents a client order id: it receives one with the request and must let
the desk look the order up by it, which is what makes "retry without doubling" possible.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from cycle.messages import Bar, BrokerReport, Order, OrderRequest


class Broker(ABC):
    """One connection to one trading venue."""

    name: str

    @abstractmethod
    async def submit(self, request: OrderRequest) -> BrokerReport:
        """Send a new order once; the report holds the order (accepted or rejected) and any fills.

        Raises a :class:`cycle.errors.FluxtradeError`; a ``BrokerTimeoutError`` means the outcome is
        unknown and the caller must look the order up before sending it again.
        """

    @abstractmethod
    async def sync(self, bars: dict[str, Bar]) -> BrokerReport:
        """Advance to the newest bars and report what changed on open orders since the last call.

        The paper broker fills against these bars; a live broker ignores them and polls its venue.
        """

    @abstractmethod
    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        """The broker's view of an order by client order id, or ``None`` if it never saw it."""

    @abstractmethod
    async def cancel(self, client_order_id: str, symbol: str) -> BrokerReport:
        """Cancel an open order; cancelling a terminal order reports it unchanged."""

    @abstractmethod
    async def open_orders(self) -> list[Order]:
        """Orders the broker still holds open."""

    @abstractmethod
    async def balances(self) -> dict[str, float]:
        """Free balance per asset."""

    @abstractmethod
    async def ping(self) -> float:
        """Round-trip latency of a cheap call, in milliseconds; raises when the venue is down."""

    async def close(self) -> None:
        """Release connections; the default holds none."""
