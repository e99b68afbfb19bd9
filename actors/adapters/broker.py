"""The broker contract every adapter implements (paper, ccxt, anything later).

All methods are async because broker I/O is: pool members are async actors that keep several orders
in flight. A broker never invents a client order id: it receives one with the request and must let
the desk look the order up by it, which is what makes "retry without doubling" possible.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from cycle.messages import Bar, BrokerReport, Order, OrderRequest

if TYPE_CHECKING:
    from actors.adapters.learning.api_monitor import ShapeDiff

_LATENCIES: ContextVar[list[float] | None] = ContextVar("broker_latencies", default=None)


def report_latency(latency_ms: float) -> None:
    """Tell the caller how long the venue took, when that is not the wall time of the call.

    A simulated venue that does not really wait reports its simulated latency here, so routing,
    health and the logs see the venue it simulates rather than a venue that answers in 0 ms.
    """
    latencies = _LATENCIES.get()
    if latencies is not None:
        latencies.append(latency_ms)


@contextmanager
def latency_probe() -> Iterator[list[float]]:
    """Collect the latencies reported by broker calls awaited inside the block (this task only)."""
    latencies: list[float] = []
    token = _LATENCIES.set(latencies)
    try:
        yield latencies
    finally:
        _LATENCIES.reset(token)


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

    def track(self, order: Order) -> None:
        """Follow an order the desk knows but this connection did not send (a replaced member).

        The default follows nothing: a venue that forgets orders with its connection cannot be
        asked about them again, and the desk ends them terminal instead.
        """
        return None

    def api_changes(self) -> list[ShapeDiff]:
        """Every change of response shape this broker has seen, oldest first."""
        return []

    async def close(self) -> None:
        """Release connections; the default holds none."""
        return None
