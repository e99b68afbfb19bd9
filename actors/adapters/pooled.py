"""A configured broker as the router sees it: one venue behind a pool of members.

:class:`actors.adapters.learning.BrokerRouter` routes over :class:`Broker` objects; a
:class:`PooledBroker` is that object for a pool. Its submit goes to the member with the most room
through :meth:`RetryHandler.place`: retries with backoff, and before any re-send a lookup by client
order id on the member that was sent the order (on the paper venue, each member is its own venue).
The member that holds each order is written to ``owners`` *before* the order is sent, so an answer
that never comes still leaves the order findable.

A lookup that fails after a timeout must not read as "the venue refused": the first send may have
landed, and failing over would double the order. Such a lookup raises ``BrokerTimeoutError``
(outcome unknown), which the router answers with one more lookup and, failing that, leaves the
order UNKNOWN.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from actors.adapters.broker import Broker
from actors.adapters.learning.retry import RetryHandler
from cycle.errors import BrokerTimeoutError, FluxtradeError, TemporaryError
from cycle.messages import Bar, BrokerReport, Order, OrderRequest

MemberCall = Callable[..., Awaitable[Any]]
"""``call(member, method, *args, cid=None)``: the value, or raises a FluxtradeError."""


class PooledBroker(Broker):
    """One broker's pool, as a Broker.

    Args:
        name: The broker's name.
        members: Its members' actor names.
        call: Sends one call to one member (and records it).
        choose: The member with the most room for a new order.
        retry: Backoff per broker, learnt from what each broker has shown.
        owners: Client order id -> member holding the order, shared with the agent.
    """

    def __init__(
        self,
        name: str,
        members: Sequence[str],
        call: MemberCall,
        choose: Callable[[str], str],
        retry: RetryHandler,
        owners: dict[str, str],
    ) -> None:
        self.name = name
        self.members = list(members)
        self._call = call
        self._choose = choose
        self._retry = retry
        self._owners = owners

    async def submit(self, request: OrderRequest) -> BrokerReport:
        cid = request.client_order_id
        uncertain = False

        async def send() -> BrokerReport:
            nonlocal uncertain
            member = self._choose(self.name)
            self._owners[cid] = member
            try:
                report: BrokerReport = await self._call(member, "submit", request, cid=cid)
            except BrokerTimeoutError:
                uncertain = True
                raise
            except TemporaryError:
                uncertain = False
                raise
            return report

        async def lookup() -> Order | None:
            try:
                found: Order | None = await self._call(
                    self._owners[cid], "fetch_order", cid, request.symbol, cid=cid
                )
            except TemporaryError as error:
                if not uncertain:
                    raise
                raise BrokerTimeoutError(
                    f"{self.name}: order {cid} timed out and its lookup failed "
                    f"({type(error).__name__}); its outcome is unknown"
                ) from error
            return found

        outcome = await self._retry.place(self.name, send, lookup)
        return outcome if isinstance(outcome, BrokerReport) else BrokerReport(orders=(outcome,))

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        member = self._owners.get(client_order_id)
        if member is not None:
            found: Order | None = await self._call(
                member, "fetch_order", client_order_id, symbol, cid=client_order_id
            )
            return found
        for candidate in self.members:
            found = await self._call(
                candidate, "fetch_order", client_order_id, symbol, cid=client_order_id
            )
            if found is not None:
                self._owners[client_order_id] = candidate
                return found
        return None

    async def cancel(self, client_order_id: str, symbol: str) -> BrokerReport:
        member = self._owners.get(client_order_id) or self._choose(self.name)
        report: BrokerReport = await self._call(
            member, "cancel", client_order_id, symbol, cid=client_order_id
        )
        return report

    async def sync(self, bars: dict[str, Bar]) -> BrokerReport:
        """Every member's report merged; raises only when no member answered."""
        answers = await asyncio.gather(
            *(self._call(m, "sync", bars) for m in self.members), return_exceptions=True
        )
        reports = [a for a in answers if isinstance(a, BrokerReport)]
        if not reports:
            error = next(a for a in answers if isinstance(a, FluxtradeError))
            raise error
        return BrokerReport(
            orders=tuple(o for r in reports for o in r.orders),
            fills=tuple(f for r in reports for f in r.fills),
        )

    async def open_orders(self) -> list[Order]:
        answers = await asyncio.gather(*(self._call(m, "open_orders") for m in self.members))
        return [order for orders in answers for order in orders]

    async def balances(self) -> dict[str, float]:
        balances: dict[str, float] = await self._call(self._choose(self.name), "balances")
        return balances

    async def ping(self) -> float:
        latency: float = await self._call(self._choose(self.name), "ping")
        return latency
