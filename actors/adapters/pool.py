"""Broker pools: every configured broker runs as ``pool_size`` members called in parallel.

:class:`BrokerPool` is what the adapters agent talks to: a batch of calls goes out at once and is
gathered once, each answer either a value or a :class:`cycle.errors.FluxtradeError`. The Ray pool's
members are async actors (broker I/O is I/O bound) named ``broker:<name>:<i>``, so a restarted
adapters agent finds them again; a lost member raises ``BrokerUnavailableError`` and an answer that
does not come in time ``BrokerTimeoutError``, never a Ray exception.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from actors.adapters.broker import Broker
from actors.adapters.paper import PaperBroker
from cycle.config import BrokerConfig, FluxtradeConfig
from cycle.errors import BrokerTimeoutError, BrokerUnavailableError, FluxtradeError


def member_id(broker: str, index: int) -> str:
    return f"broker:{broker}:{index}"


def make_broker(config: FluxtradeConfig, broker: BrokerConfig, index: int) -> Broker:
    """The Broker implementation for a config entry."""
    return PaperBroker(broker, member=index, seed=config.run.seed)


@dataclass(frozen=True)
class PoolCall:
    member: str
    method: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class PoolResult:
    call: PoolCall
    value: Any = None
    error: FluxtradeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def _guarded(broker: Broker, method: str, args: tuple[Any, ...]) -> tuple[Any, FluxtradeError | None]:
    """Run one broker call; fluxtrade errors come back as values so one failure spoils nothing."""
    try:
        return await getattr(broker, method)(*args), None
    except FluxtradeError as error:
        return None, error


class BrokerPool(ABC):
    def __init__(self, config: FluxtradeConfig) -> None:
        self.members = {
            b.name: [member_id(b.name, i) for i in range(b.pool_size)] for b in config.brokers
        }

    @abstractmethod
    def call_many(self, calls: list[PoolCall], timeout_s: float) -> list[PoolResult]:
        """Send every call at once, gather once; results in the order of ``calls``."""


class LocalPool(BrokerPool):
    """Members as plain objects in this process, driven by one event loop (tests, no Ray)."""

    def __init__(self, config: FluxtradeConfig) -> None:
        super().__init__(config)
        self.brokers = {
            member_id(b.name, i): make_broker(config, b, i)
            for b in config.brokers
            for i in range(b.pool_size)
        }
        self.loop = asyncio.new_event_loop()

    def call_many(self, calls: list[PoolCall], timeout_s: float) -> list[PoolResult]:
        async def gather() -> list[tuple[Any, FluxtradeError | None]]:
            return await asyncio.gather(
                *(_guarded(self.brokers[c.member], c.method, c.args) for c in calls)
            )

        answers = self.loop.run_until_complete(gather())
        return [PoolResult(call, value, error) for call, (value, error) in zip(calls, answers, strict=True)]


class BrokerMember:
    """Ray shell of one pool member: an async actor keeping up to ``max_in_flight`` calls open."""

    def __init__(self, config: FluxtradeConfig, broker: str, index: int) -> None:
        spec = next(b for b in config.brokers if b.name == broker)
        self.broker = make_broker(config, spec, index)

    async def call(self, method: str, *args: Any) -> tuple[Any, FluxtradeError | None]:
        return await _guarded(self.broker, method, args)

    async def ping(self) -> float:
        return await self.broker.ping()


class RayPool(BrokerPool):
    """Members as named async actors, looked up in the run's namespace."""

    def __init__(self, config: FluxtradeConfig) -> None:
        super().__init__(config)
        self.namespace = config.ray.namespace
        self.handles: dict[str, Any] = {}

    def _handle(self, member: str) -> Any:
        if member not in self.handles:
            self.handles[member] = ray.get_actor(member, namespace=self.namespace)
        return self.handles[member]

    def call_many(self, calls: list[PoolCall], timeout_s: float) -> list[PoolResult]:
        refs: list[Any] = []
        early: dict[int, FluxtradeError] = {}
        for i, call in enumerate(calls):
            try:
                refs.append(self._handle(call.member).call.remote(call.method, *call.args))
            except ValueError as error:
                early[i] = BrokerUnavailableError(f"{call.member} is not running: {error}")
                refs.append(None)
        pending = [r for r in refs if r is not None]
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=timeout_s) if pending else ([], [])
        ready_set = set(ready)
        results = []
        for i, (call, ref) in enumerate(zip(calls, refs, strict=True)):
            if i in early:
                results.append(PoolResult(call, error=early[i]))
            elif ref not in ready_set:
                ray.cancel(ref)
                results.append(
                    PoolResult(call, error=BrokerTimeoutError(f"{call.member}.{call.method}: no answer in {timeout_s}s"))
                )
            else:
                results.append(self._collect(call, ref))
        return results

    def _collect(self, call: PoolCall, ref: Any) -> PoolResult:
        try:
            value, error = ray.get(ref)
        except RayActorError as error:
            self.handles.pop(call.member, None)
            return PoolResult(call, error=_lost(call, error))
        except GetTimeoutError as error:
            return PoolResult(call, error=_timeout(call, error))
        return PoolResult(call, value, error)


def _lost(call: PoolCall, error: Exception) -> BrokerUnavailableError:
    try:
        raise BrokerUnavailableError(f"{call.member} died during {call.method}") from error
    except BrokerUnavailableError as translated:
        return translated


def _timeout(call: PoolCall, error: Exception) -> BrokerTimeoutError:
    try:
        raise BrokerTimeoutError(f"{call.member}.{call.method} timed out") from error
    except BrokerTimeoutError as translated:
        return translated
