"""One pool member: a broker connection behind the guards that keep orders safe across calls.

:class:`MemberCore` is plain code, used in this process by the local pool and inside the async
actor :class:`BrokerMember` on Ray. It adds three things to a :class:`Broker`:

* **Lookups wait for the submit they ask about.** A submit the desk stopped waiting for (a pool
  timeout) may still be running here; a lookup of the same client order id waits until it has
  settled, so "the venue never saw it" is only ever said when it is true and a re-send cannot
  double the order.
* **Events are delivered at least once.** Fills (and the order changes of a sync) go into an
  outbox numbered by sequence and stay there until the desk acknowledges them with a later call;
  a sync answer carries everything not yet acknowledged. An answer lost on the way (a timeout,
  an actor restart of the caller) therefore delays fills but never loses them; the desk drops the
  repeats by fill id.
* **Every answer is a value.** Errors come back as :mod:`cycle.errors` types with the latency the
  venue took, this connection's incarnation (a new one means the venue forgot what it held) and
  any change of the venue's API shape seen, so one failure spoils nothing else in a batch.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from loguru import logger

from actors.adapters.broker import Broker, latency_probe
from actors.adapters.learning.api_monitor import ShapeDiff
from actors.adapters.limiter import Limiter, RemoteLimiter
from actors.adapters.paper import PaperBroker, PaperVenueState
from cycle.config import BrokerConfig, FluxtradeConfig
from cycle.errors import FluxtradeError, OperationalError
from cycle.messages import BrokerReport

CALLS = frozenset(
    {"submit", "sync", "fetch_order", "cancel", "open_orders", "balances", "ping", "track"}
)
BY_CLIENT_ID = frozenset({"fetch_order", "cancel"})
MAX_OUTBOX = 10_000


def member_id(broker: str, index: int) -> str:
    """Actor name of a pool member, ``broker:<name>:<i>``."""
    return f"broker:{broker}:{index}"


def broker_of(member: str) -> str:
    return member.split(":")[1]


def index_of(member: str) -> int:
    return int(member.split(":")[2])


def make_broker(
    config: FluxtradeConfig, spec: BrokerConfig, index: int, limiter: Limiter | None = None
) -> Broker:
    """The Broker implementation for a config entry (ccxt is imported only when used)."""
    if spec.kind == "ccxt":
        from actors.adapters.ccxt_broker import CcxtBroker

        return CcxtBroker(spec.venue(), limiter=limiter)
    return PaperBroker(spec, member=index, seed=config.run.seed, limiter=limiter)


@dataclass(frozen=True)
class MemberAnswer:
    """One call's outcome, as the member (or the pool, for a call that got no answer) saw it.

    Attributes:
        value: What the broker returned; ``None`` on error.
        error: The failure, already translated to the fluxtrade error tree.
        latency_ms: The venue's latency (simulated venues report theirs), else the wall time.
        incarnation: The member's incarnation; empty when the answer did not come from it.
        seqs: Outbox entries carried by this answer, to acknowledge with the next call.
        api_changes: Changes of the venue's response shape first seen during this call.
    """

    value: Any = None
    error: FluxtradeError | None = None
    latency_ms: float = 0.0
    incarnation: str = ""
    seqs: tuple[int, ...] = ()
    api_changes: tuple[ShapeDiff, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


class MemberCore:
    """A broker with the member's guards; see the module docstring."""

    def __init__(self, broker: Broker, member: str) -> None:
        self.broker = broker
        self.member = member
        self.incarnation = uuid.uuid4().hex[:12]
        self.log = logger.bind(agent_id=member)
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._outbox: OrderedDict[int, BrokerReport] = OrderedDict()
        self._seq = 0
        self._api_reported = 0

    async def call(
        self, method: str, args: tuple[Any, ...], acks: tuple[int, ...] = ()
    ) -> MemberAnswer:
        """Run one broker method; never raises."""
        for seq in acks:
            self._outbox.pop(seq, None)
        if method not in CALLS:
            return self._answer(error=OperationalError(f"{self.member}: no broker call {method!r}"))
        if method in BY_CLIENT_ID and args[0] in self._inflight:
            await asyncio.shield(self._inflight[args[0]])
        settled: asyncio.Future[None] | None = None
        if method == "submit":
            settled = asyncio.get_running_loop().create_future()
            self._inflight[args[0].client_order_id] = settled
        started = time.perf_counter()
        value: Any = None
        error: FluxtradeError | None = None
        with latency_probe() as reported:
            try:
                value = getattr(self.broker, method)(*args)
                if inspect.isawaitable(value):
                    value = await value
            except FluxtradeError as failure:
                error = failure
            except Exception as failure:  # noqa: BLE001 - a broker bug must not kill the member
                error = OperationalError(f"{self.member} {method}: {type(failure).__name__}")
                error.__cause__ = failure
                self.log.exception("{} raised outside the error tree", method)
            finally:
                if settled is not None:
                    settled.set_result(None)
                    self._inflight.pop(args[0].client_order_id, None)
        latency = sum(reported) if reported else (time.perf_counter() - started) * 1000
        if error is not None:
            return self._answer(error=error, latency_ms=latency)
        value, seqs = self._deliver(method, value)
        return self._answer(value=value, latency_ms=latency, seqs=seqs)

    def _deliver(self, method: str, value: Any) -> tuple[Any, tuple[int, ...]]:
        """Put events in the outbox; a sync answer carries every one not yet acknowledged."""
        if not isinstance(value, BrokerReport) or not (method == "sync" or value.fills):
            return value, ()
        if value.orders or value.fills:
            self._seq += 1
            self._outbox[self._seq] = value
            while len(self._outbox) > MAX_OUTBOX:
                self._outbox.popitem(last=False)
        if method != "sync":
            return value, (self._seq,)
        entries = list(self._outbox.values())
        merged = BrokerReport(
            orders=tuple(o for e in entries for o in e.orders),
            fills=tuple(f for e in entries for f in e.fills),
        )
        return merged, tuple(self._outbox)

    def _answer(self, **fields: Any) -> MemberAnswer:
        changes = self.broker.api_changes()
        new = tuple(changes[self._api_reported :])
        self._api_reported = len(changes)
        return MemberAnswer(incarnation=self.incarnation, api_changes=new, **fields)

    def venue_state(self) -> PaperVenueState | None:
        """The simulated venue's state, for tests and training reports (``None`` for real ones)."""
        return self.broker.venue_state() if isinstance(self.broker, PaperBroker) else None

    async def close(self) -> None:
        await self.broker.close()


class BrokerMember:
    """Ray shell of one pool member: an async actor (options live in ``actors/factory.py``)."""

    def __init__(self, config: FluxtradeConfig, broker: str, index: int) -> None:
        spec = next(b for b in config.brokers if b.name == broker)
        limiter = (
            RemoteLimiter(
                broker,
                config.ray.namespace,
                spec.rate_limit.requests,
                spec.rate_limit.window_s,
                spec.pool_size,
            )
            if spec.rate_limit is not None
            else None
        )
        self.core = MemberCore(make_broker(config, spec, index, limiter), member_id(broker, index))

    async def call(
        self, method: str, args: tuple[Any, ...], acks: tuple[int, ...] = ()
    ) -> MemberAnswer:
        return await self.core.call(method, args, acks)

    async def venue_state(self) -> PaperVenueState | None:
        return self.core.venue_state()

    async def incarnation(self) -> str:
        return self.core.incarnation
