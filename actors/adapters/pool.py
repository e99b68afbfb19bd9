"""Broker pools: every configured broker runs as ``pool_size`` members called in parallel.

:class:`BrokerPool` is what the adapters agent talks to, from its own event loop: ``call`` sends one
broker call to one member and waits at most ``timeout_s`` for the :class:`MemberAnswer`. Calls to
a member beyond its ``max_in_flight`` wait for a free slot (on Ray, one more may wait in the
member's own queue, where the actor's ``max_concurrency`` holds the cap); a slot stays taken until
the member really finishes, even when the caller stopped waiting, so the cap holds.
:meth:`BrokerPool.choose` picks the member with the most room.

The Ray pool's members are async actors named ``broker:<name>:<i>`` in the run's namespace, so a
restarted adapters agent finds them again. Ray's exceptions stop here: a member that died is
re-created under the same name through ``actors/factory.py`` (the pool returns to its size) and the
call answers ``BrokerTimeoutError`` for a write (the member may have sent it before dying: look it
up) or ``BrokerUnavailableError`` for a read. A member that comes back with a new incarnation
(re-created, or restarted by Ray) is reported by :meth:`BrokerPool.drain_replaced`, so the agent
can look up the orders the old one held.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any

from loguru import logger

from actors.adapters.limiter import SlidingWindowLimiter
from actors.adapters.member import (
    MemberAnswer,
    MemberCore,
    broker_of,
    index_of,
    make_broker,
    member_id,
)
from actors.adapters.paper import PaperVenueState
from cycle.config import BrokerConfig, FluxtradeConfig
from cycle.errors import (
    BrokerTimeoutError,
    BrokerUnavailableError,
    FluxtradeError,
    OperationalError,
)

WRITES = frozenset({"submit", "cancel"})
RECREATE_ATTEMPTS = 40
RECREATE_PAUSE_S = 0.05


class BrokerPool(ABC):
    """Members of every configured broker, called from one event loop.

    ``queued_ahead`` calls beyond a member's cap may wait *at the member* (where the cap is
    enforced too), so it starts the next one as soon as one ends instead of idling for a round trip.
    """

    queued_ahead = 0

    def __init__(self, config: FluxtradeConfig) -> None:
        self.config = config
        self.specs: dict[str, BrokerConfig] = {b.name: b for b in config.brokers}
        self.members: dict[str, list[str]] = {
            b.name: [member_id(b.name, i) for i in range(b.pool_size)] for b in config.brokers
        }
        self.incarnations: dict[str, str] = {}
        self._replaced: set[str] = set()
        self._busy: Counter[str] = Counter()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.log = logger.bind(agent_id="adapters")

    def choose(self, broker: str) -> str:
        """The member of ``broker`` with the fewest calls in flight or waiting."""
        return min(self.members[broker], key=lambda m: self._busy[m])

    def in_flight(self, member: str) -> int:
        return self._busy[member]

    async def call(
        self,
        member: str,
        method: str,
        args: tuple[Any, ...],
        *,
        timeout_s: float,
        acks: tuple[int, ...] = (),
    ) -> MemberAnswer:
        """One call to one member, within the member's in-flight cap; never raises."""
        slot = self._slots.setdefault(
            member,
            asyncio.Semaphore(self.specs[broker_of(member)].max_in_flight + self.queued_ahead),
        )
        self._busy[member] += 1
        try:
            await slot.acquire()
        except BaseException:
            self._busy[member] -= 1
            raise
        try:
            pending = await self._start(member, method, args, acks)
        except FluxtradeError as error:
            self._release(member, slot)
            return MemberAnswer(error=error)
        except BaseException:
            self._release(member, slot)
            raise
        pending.add_done_callback(lambda _: self._release(member, slot))
        done, _ = await asyncio.wait({pending}, timeout=timeout_s)
        if not done:
            return MemberAnswer(
                error=BrokerTimeoutError(f"{member} {method}: no answer within {timeout_s:g}s"),
                latency_ms=timeout_s * 1000,
            )
        answer = await self._finish(member, method, pending)
        self._note_incarnation(member, answer)
        return answer

    def _release(self, member: str, slot: asyncio.Semaphore) -> None:
        self._busy[member] -= 1
        slot.release()

    def _note_incarnation(self, member: str, answer: MemberAnswer) -> None:
        if not answer.incarnation:
            return
        known = self.incarnations.get(member)
        if known is not None and known != answer.incarnation:
            self.log.warning("{} came back as a new incarnation; its orders are looked up", member)
            self._replaced.add(member)
        self.incarnations[member] = answer.incarnation

    def drain_replaced(self) -> list[str]:
        """Members replaced since the last call: the orders they held must be looked up."""
        replaced, self._replaced = sorted(self._replaced), set()
        return replaced

    def snapshot(self) -> dict[str, str]:
        return dict(self.incarnations)

    def restore(self, incarnations: dict[str, str]) -> None:
        self.incarnations = dict(incarnations)

    @abstractmethod
    async def _start(
        self, member: str, method: str, args: tuple[Any, ...], acks: tuple[int, ...]
    ) -> asyncio.Future[Any]:
        """Send the call; the future resolves to the member's answer."""

    @abstractmethod
    async def _finish(self, member: str, method: str, done: asyncio.Future[Any]) -> MemberAnswer:
        """The answer of a finished call, with transport failures translated."""

    @abstractmethod
    async def venue_state(self, member: str) -> PaperVenueState | None:
        """A simulated member's venue (tests, training reports)."""

    async def close(self) -> None:
        """Release what the pool holds in this process."""
        return None


class LocalPool(BrokerPool):
    """Members as plain objects in this process, on the caller's event loop (tests, training).

    The members of one broker share one rate limiter, as on Ray.
    """

    def __init__(self, config: FluxtradeConfig) -> None:
        super().__init__(config)
        self.cores: dict[str, MemberCore] = {}
        for spec in config.brokers:
            limiter = (
                SlidingWindowLimiter(spec.rate_limit.requests, spec.rate_limit.window_s)
                if spec.rate_limit is not None
                else None
            )
            for index in range(spec.pool_size):
                member = member_id(spec.name, index)
                self.cores[member] = MemberCore(make_broker(config, spec, index, limiter), member)

    async def _start(
        self, member: str, method: str, args: tuple[Any, ...], acks: tuple[int, ...]
    ) -> asyncio.Future[Any]:
        return asyncio.ensure_future(self.cores[member].call(method, args, acks))

    async def _finish(self, member: str, method: str, done: asyncio.Future[Any]) -> MemberAnswer:
        return done.result()

    async def venue_state(self, member: str) -> PaperVenueState | None:
        return self.cores[member].venue_state()

    async def close(self) -> None:
        await asyncio.gather(*(core.close() for core in self.cores.values()))


class RayPool(BrokerPool):
    """Members as named async actors, looked up in the run's namespace and re-created if lost.

    Each actor runs at most ``max_in_flight`` calls at once (its ``max_concurrency``); one more
    call waits in its queue, ready to start the moment a running one ends.
    """

    queued_ahead = 1

    def __init__(self, config: FluxtradeConfig) -> None:
        super().__init__(config)
        self.namespace = config.ray.namespace
        self.handles: dict[str, Any] = {}

    async def _handle(self, member: str) -> Any:
        if member not in self.handles:
            import ray

            try:
                self.handles[member] = ray.get_actor(member, namespace=self.namespace)
            except ValueError:
                await self._recreate(member, "not running")
        return self.handles[member]

    async def _start(
        self, member: str, method: str, args: tuple[Any, ...], acks: tuple[int, ...]
    ) -> asyncio.Future[Any]:
        handle = await self._handle(member)
        ref = handle.call.remote(method, args, acks)
        return asyncio.wrap_future(ref.future())

    async def _finish(self, member: str, method: str, done: asyncio.Future[Any]) -> MemberAnswer:
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayError

        try:
            return done.result()
        except ActorUnavailableError as error:
            failure = "is restarting"
            cause: RayError = error
        except (ActorDiedError, RayActorError) as error:
            failure, cause = "died", error
            with contextlib.suppress(BrokerUnavailableError):
                await self._recreate(member, "died")
        except RayError as error:
            translated = OperationalError(f"{member} {method}: {type(error).__name__}")
            translated.__cause__ = error
            return MemberAnswer(error=translated)
        kind = BrokerTimeoutError if method in WRITES else BrokerUnavailableError
        translated = kind(f"{member} {failure} during {method}; outcome unknown")
        translated.__cause__ = cause
        return MemberAnswer(error=translated)

    async def _recreate(self, member: str, why: str) -> None:
        """Start a member again under its name via the factory, so the pool keeps its size."""
        from actors.factory import create_broker_member

        self.handles.pop(member, None)
        spec = self.specs[broker_of(member)]
        for _ in range(RECREATE_ATTEMPTS):
            try:
                self.handles[member] = create_broker_member(self.config, spec, index_of(member))
                break
            except ValueError:
                # The dead actor still holds the name for a moment.
                await asyncio.sleep(RECREATE_PAUSE_S)
        else:
            raise BrokerUnavailableError(f"{member} {why} and could not be started again")
        self._replaced.add(member)
        self.log.warning("{} {}; started again under the same name", member, why)

    async def venue_state(self, member: str) -> PaperVenueState | None:
        handle = await self._handle(member)
        return await asyncio.wrap_future(handle.venue_state.remote().future())
